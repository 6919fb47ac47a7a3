//! Apache ZooKeeper's jute binary encoding, as its data directories hold it:
//! big-endian ints and longs, a one-byte boolean, and buffers, strings and
//! vectors prefixed by an int length or count (-1 for null). Also the
//! Adler-32 checksum its snapshots and txn logs carry.
//!
//! Not a general jute library: only the primitives the migrate decoders and
//! the snapshot writer need.
//!
//! Invariant: the reader never allocates more than the bytes it has left,
//! whatever a length field claims: a length is checked against the rest of
//! the input before anything is copied, and a vector's count only bounds a
//! loop whose every step consumes input.

use super::Error;

/// A bounded cursor over one decoded input (a decompressed snapshot, one
/// txn entry). `what` names the input in errors.
#[derive(Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'a str) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    /// Offset of the next byte to read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// What the input is called in errors.
    pub fn what(&self) -> &'a str {
        self.what
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    /// The next `n` bytes, which the caller has checked are there (an
    /// empty slice if they are not).
    pub fn buffer_of(&mut self, n: usize) -> &'a [u8] {
        self.take(n, "bytes").unwrap_or_default()
    }

    /// Moves back to `pos`, an offset this reader was at before.
    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos.min(self.pos);
    }

    /// The bytes consumed so far (what a checksum covers).
    pub fn consumed(&self) -> &'a [u8] {
        &self.bytes[..self.pos]
    }

    /// A decoding error at the current offset.
    pub fn error(&self, why: impl Into<String>) -> Error {
        Error::Malformed {
            what: self.what.to_string(),
            offset: self.pos as u64,
            why: why.into(),
        }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "{field}: needs {n} bytes, {} left (truncated)",
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    pub fn byte(&mut self, field: &str) -> Result<u8, Error> {
        Ok(self.take(1, field)?[0])
    }

    pub fn boolean(&mut self, field: &str) -> Result<bool, Error> {
        Ok(self.byte(field)? != 0)
    }

    pub fn int(&mut self, field: &str) -> Result<i32, Error> {
        let bytes = self.take(4, field)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn long(&mut self, field: &str) -> Result<i64, Error> {
        let bytes = self.take(8, field)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    /// A buffer: `None` for length -1 (null data, which is not empty data).
    pub fn buffer(&mut self, field: &str) -> Result<Option<&'a [u8]>, Error> {
        let len = self.int(field)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| self.error(format!("{field}: length {len}")))?;
        self.take(len, field).map(Some)
    }

    /// A string (UTF-8); null is read as `None`.
    pub fn string(&mut self, field: &str) -> Result<Option<String>, Error> {
        match self.buffer(field)? {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(|s| Some(s.to_string()))
                .map_err(|_| self.error(format!("{field}: not UTF-8"))),
        }
    }

    /// A string that must not be null.
    pub fn text(&mut self, field: &str) -> Result<String, Error> {
        self.string(field)?
            .ok_or_else(|| self.error(format!("{field}: null string")))
    }

    /// A vector's element count: -1 (null) reads as 0. The count is not
    /// trusted for allocation; each element must consume at least
    /// `min_element_bytes` of input, so a count larger than that allows is
    /// refused here.
    pub fn count(&mut self, field: &str, min_element_bytes: usize) -> Result<usize, Error> {
        let count = self.int(field)?;
        if count == -1 {
            return Ok(0);
        }
        let count =
            usize::try_from(count).map_err(|_| self.error(format!("{field}: count {count}")))?;
        if count.saturating_mul(min_element_bytes.max(1)) > self.remaining() {
            return Err(self.error(format!(
                "{field}: {count} elements cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(count)
    }
}

/// Appends jute-encoded values to a buffer.
#[derive(Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn int(&mut self, value: i32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    pub fn long(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }
    pub fn boolean(&mut self, value: bool) {
        self.bytes.push(u8::from(value));
    }
    pub fn buffer(&mut self, value: Option<&[u8]>) {
        match value {
            None => self.int(-1),
            Some(bytes) => {
                // A jute length is an i32; the engine bounds data (jute.maxbuffer)
                // far below that.
                self.int(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                self.bytes.extend_from_slice(bytes);
            }
        }
    }
    pub fn string(&mut self, value: &str) {
        self.buffer(Some(value.as_bytes()));
    }
    pub fn count(&mut self, count: usize) {
        self.int(i32::try_from(count).unwrap_or(i32::MAX));
    }
}

/// Adler-32 (RFC 1950), as `java.util.zip.Adler32` computes it; `update`
/// continues a running value, starting from `ADLER32_INIT`.
pub const ADLER32_INIT: u32 = 1;

pub fn adler32_update(value: u32, bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 bytes is the most that can be summed before `b` may overflow u32.
    const CHUNK: usize = 5_552;
    let mut a = value & 0xffff;
    let mut b = value >> 16;
    for chunk in bytes.chunks(CHUNK) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

pub fn adler32(bytes: &[u8]) -> u32 {
    adler32_update(ADLER32_INIT, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let long = vec![0xffu8; 100_000];
        // Split updates agree with one pass.
        let split = adler32_update(adler32(&long[..12_345]), &long[12_345..]);
        assert_eq!(split, adler32(&long));
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_without_allocating() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&i32::MAX.to_be_bytes());
        bytes.extend_from_slice(b"abc");
        let mut reader = Reader::new(&bytes, "test");
        let error = reader.buffer("data").expect_err("huge length");
        assert!(error.to_string().contains("truncated"), "{error}");
        let mut reader = Reader::new(&bytes, "test");
        assert!(reader.count("acls", 8).is_err());
        let negative = (-7i32).to_be_bytes();
        assert!(Reader::new(&negative, "test").buffer("data").is_err());
    }

    #[test]
    fn null_and_empty_differ() {
        let mut writer = Writer::default();
        writer.buffer(None);
        writer.buffer(Some(b""));
        writer.string("/a");
        let mut reader = Reader::new(&writer.bytes, "test");
        assert_eq!(reader.buffer("a").expect("null"), None);
        assert_eq!(reader.buffer("b").expect("empty"), Some(&b""[..]));
        assert_eq!(reader.text("c").expect("string"), "/a");
        assert!(reader.is_empty());
    }
}
