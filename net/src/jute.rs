//! Jute primitives: the big-endian encoding ZooKeeper uses for every client
//! record. `Reader` decodes from a borrowed frame body; the `put_*` functions
//! append to the caller's `Vec<u8>`. Records (what a `CreateRequest` is made
//! of) live in `proto`; this file knows only ints, longs, booleans, buffers,
//! strings and vector counts.
//!
//! Invariant: a `Reader` never panics and never allocates more than the bytes
//! it has left could justify. Every length is checked against the remaining
//! input before anything is allocated, and a vector count is bounded by the
//! remaining bytes divided by the smallest encoding of one element, so a
//! count of 2^31-1 in a 20-byte frame is an error, not a 48 GiB `Vec`.
//! The writers never panic either: a frame whose body does not fit its
//! 4-byte length is removed whole by `try_end_frame`, never sent corrupt,
//! so no reply can take down the I/O thread encoding it.
//!
//! Decoding follows the reference's `BinaryInputArchive`, because clients and
//! differential tests see its quirks: a boolean is true for any non-zero byte;
//! a string or buffer length of -1 is null and any other negative length is
//! an error; a vector count of -1 is null while other negative counts mean an
//! empty vector; strings are decoded as UTF-8 with invalid sequences replaced
//! by U+FFFD (Java's `new String(bytes, UTF_8)`), so a path with bad bytes
//! reaches the tree as a path that simply does not exist.

/// `jute.maxbuffer`'s default: the largest frame body (header included) the
/// reference accepts from a client. The reactor enforces the bound before a
/// frame reaches the decoders.
pub const DEFAULT_MAX_BUFFER: usize = 1048575;

/// Bytes of a frame's length prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Why a frame could not be decoded. Each variant names the field being read
/// and its offset in the frame body, so a log line says what went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated {what} at offset {offset}: needs {needed} bytes, {left} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        left: usize,
    },
    #[error("negative length {length} for {what} at offset {offset}")]
    NegativeLength {
        what: &'static str,
        offset: usize,
        length: i32,
    },
    #[error("{what} count {count} at offset {offset} cannot fit in the {left} bytes left")]
    CountTooLarge {
        what: &'static str,
        offset: usize,
        count: i32,
        left: usize,
    },
    #[error("null {what} at offset {offset}")]
    Null { what: &'static str, offset: usize },
    #[error("invalid {what} {value} at offset {offset}")]
    InvalidValue {
        what: &'static str,
        offset: usize,
        value: i64,
    },
}

/// A cursor over one frame body. Every read either consumes exactly the bytes
/// of its value or fails and leaves the position where the value started.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next byte to read, from the start of the frame body.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n,
                left: self.remaining(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    /// Jute `int`.
    #[inline]
    pub fn read_int(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    /// Jute `long`.
    #[inline]
    pub fn read_long(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Jute `boolean`: one byte, true when non-zero (as Java's `readBoolean`).
    #[inline]
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let [byte] = self.array(what)?;
        Ok(byte != 0)
    }

    /// Reads a string or buffer length: `None` for -1 (null), an error for
    /// other negative values or a length longer than what is left. On error
    /// the position is unchanged.
    fn read_length(&mut self, what: &'static str) -> Result<Option<usize>, DecodeError> {
        let start = self.pos;
        let length = self.read_int(what)?;
        if length == -1 {
            return Ok(None);
        }
        let Ok(length) = usize::try_from(length) else {
            self.pos = start;
            return Err(DecodeError::NegativeLength {
                what,
                offset: start,
                length,
            });
        };
        if length > self.remaining() {
            let left = self.remaining();
            self.pos = start;
            return Err(DecodeError::Truncated {
                what,
                offset: start,
                needed: length.saturating_add(4),
                left: left + 4,
            });
        }
        Ok(Some(length))
    }

    /// Jute `buffer`: `None` when the length is -1.
    pub fn read_buffer(&mut self, what: &'static str) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.read_length(what)? {
            None => Ok(None),
            Some(length) => Ok(Some(self.take(length, what)?.to_vec())),
        }
    }

    /// Jute `ustring`: `None` when the length is -1. Invalid UTF-8 is replaced
    /// by U+FFFD, as the reference does; valid input is copied exactly once.
    pub fn read_ustring(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        match self.read_length(what)? {
            None => Ok(None),
            Some(length) => Ok(Some(utf8_lossy(self.take(length, what)?))),
        }
    }

    /// Steps over a `buffer` or `ustring` (null included) without copying it.
    pub fn skip_buffer(&mut self, what: &'static str) -> Result<(), DecodeError> {
        if let Some(length) = self.read_length(what)? {
            self.take(length, what)?;
        }
        Ok(())
    }

    /// A `ustring` that may not be null.
    pub fn read_string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let offset = self.pos;
        self.read_ustring(what)?
            .ok_or(DecodeError::Null { what, offset })
    }

    /// A vector count. `None` for -1 (null); other negative counts are an
    /// empty vector, as in the reference. A count whose elements, at
    /// `min_element_bytes` each, could not fit in the bytes left is an error,
    /// which is what lets callers `Vec::with_capacity(count)` safely.
    pub fn read_count(
        &mut self,
        what: &'static str,
        min_element_bytes: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let start = self.pos;
        let count = self.read_int(what)?;
        if count == -1 {
            return Ok(None);
        }
        let Ok(elements) = usize::try_from(count) else {
            return Ok(Some(0));
        };
        let left = self.remaining();
        if elements > left / min_element_bytes.max(1) {
            self.pos = start;
            return Err(DecodeError::CountTooLarge {
                what,
                offset: start,
                count,
                left,
            });
        }
        Ok(Some(elements))
    }

    /// Jute `vector<ustring>`; null elements are an error (no client sends
    /// them, and the reference fails such requests too).
    pub fn read_string_vector(
        &mut self,
        what: &'static str,
    ) -> Result<Option<Vec<String>>, DecodeError> {
        let Some(count) = self.read_count(what, 4)? else {
            return Ok(None);
        };
        let mut strings = Vec::with_capacity(count);
        for _ in 0..count {
            strings.push(self.read_string(what)?);
        }
        Ok(Some(strings))
    }
}

/// Converts with one copy when the bytes are valid UTF-8 (the common case),
/// replacing invalid sequences otherwise.
fn utf8_lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Appends a jute `int`.
#[inline]
pub fn put_int(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a jute `long`.
#[inline]
pub fn put_long(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a jute `boolean` (0 or 1).
#[inline]
pub fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

/// Appends a length or count. Never panics: a length past `i32::MAX` is
/// written as `i32::MAX`, which cannot reach a peer, because a length that
/// large (of bytes, or of elements of at least one byte) only occurs inside
/// a frame larger than `i32::MAX`, and `end_frame` refuses such a frame and
/// removes it whole.
#[inline]
pub fn put_len(out: &mut Vec<u8>, length: usize) {
    put_int(out, i32::try_from(length).unwrap_or(i32::MAX));
}

/// Appends a jute `buffer`.
#[inline]
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a jute `buffer` that may be null (length -1).
#[inline]
pub fn put_buffer(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => put_bytes(out, bytes),
        None => put_int(out, -1),
    }
}

/// Appends a jute `ustring`.
#[inline]
pub fn put_string(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

/// Appends a `vector<ustring>`.
pub fn put_string_vector<S: AsRef<str>>(out: &mut Vec<u8>, strings: &[S]) {
    put_len(out, strings.len());
    for text in strings {
        put_string(out, text.as_ref());
    }
}

/// Bytes a `vector<ustring>` takes on the wire, for reserving up front.
pub fn string_vector_size<S: AsRef<str>>(strings: &[S]) -> usize {
    strings
        .iter()
        .fold(4, |total, text| total + 4 + text.as_ref().len())
}

/// A frame whose body does not fit the 4-byte length prefix. Only a bug
/// or a missing bound upstream builds one (reads are bounded by
/// `maxResponseBytes`); the frame is dropped, never sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame of {body_bytes} bytes does not fit a jute length")]
pub struct FrameTooLarge {
    pub body_bytes: usize,
}

/// Starts a frame: reserves room for `body_hint` bytes and writes a
/// placeholder length prefix. Returns the prefix's position for `end_frame`.
#[inline]
pub fn begin_frame(out: &mut Vec<u8>, body_hint: usize) -> usize {
    out.reserve(FRAME_PREFIX_BYTES.saturating_add(body_hint));
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    start
}

/// Back-patches the length prefix written by `begin_frame` at `start`.
/// Never panics: a body that does not fit an `i32` (or a `start` that is
/// not a frame's) removes everything from `start` on, so `out` holds only
/// whole frames, and the caller decides what the peer gets instead.
#[inline]
pub fn try_end_frame(out: &mut Vec<u8>, start: usize) -> Result<(), FrameTooLarge> {
    let body_bytes = out
        .len()
        .saturating_sub(start.saturating_add(FRAME_PREFIX_BYTES));
    let prefix = i32::try_from(body_bytes).ok().and_then(|body| {
        let end = start.checked_add(FRAME_PREFIX_BYTES)?;
        out.get_mut(start..end).map(|slot| (slot, body))
    });
    match prefix {
        Some((slot, body)) => {
            slot.copy_from_slice(&body.to_be_bytes());
            Ok(())
        }
        None => {
            out.truncate(start);
            Err(FrameTooLarge { body_bytes })
        }
    }
}

/// `try_end_frame` for frames bounded by construction (an event's path, a
/// handshake): one that is not is dropped rather than sent corrupt, and
/// never panics.
#[inline]
pub fn end_frame(out: &mut Vec<u8>, start: usize) {
    // Dropping is the documented outcome; there is nothing else to do here.
    let _ = try_end_frame(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_primitives_big_endian() {
        let bytes = [
            0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 7, 0,
        ];
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.read_int("a"), Ok(258));
        assert_eq!(reader.read_long("b"), Ok(-2));
        // Any non-zero byte is true, as Java's readBoolean.
        assert_eq!(reader.read_bool("c"), Ok(true));
        assert_eq!(reader.read_bool("d"), Ok(false));
        assert!(reader.is_empty());
        assert_eq!(
            reader.read_int("path"),
            Err(DecodeError::Truncated {
                what: "path",
                offset: 14,
                needed: 4,
                left: 0
            })
        );
    }

    #[test]
    fn null_and_negative_lengths() {
        let mut out = Vec::new();
        put_int(&mut out, -1);
        put_int(&mut out, -2);
        let mut reader = Reader::new(&out);
        assert_eq!(reader.read_ustring("path"), Ok(None));
        assert_eq!(
            reader.read_buffer("data"),
            Err(DecodeError::NegativeLength {
                what: "data",
                offset: 4,
                length: -2
            })
        );
        assert_eq!(
            reader.offset(),
            4,
            "a failed read leaves the position alone"
        );
        let mut reader = Reader::new(&out);
        assert_eq!(
            reader.read_string("path"),
            Err(DecodeError::Null {
                what: "path",
                offset: 0
            })
        );
    }

    #[test]
    fn length_longer_than_input_is_an_error_before_allocating() {
        let mut out = Vec::new();
        put_int(&mut out, i32::MAX);
        out.extend_from_slice(b"abc");
        let error = Reader::new(&out).read_buffer("data").unwrap_err();
        assert_eq!(
            error.to_string(),
            "truncated data at offset 0: needs 2147483651 bytes, 7 left"
        );
    }

    #[test]
    fn vector_counts_are_bounded_by_the_input() {
        let mut out = Vec::new();
        put_int(&mut out, i32::MAX);
        out.extend_from_slice(&[0; 16]);
        assert_eq!(
            Reader::new(&out).read_string_vector("children"),
            Err(DecodeError::CountTooLarge {
                what: "children",
                offset: 0,
                count: i32::MAX,
                left: 16
            })
        );
        // -1 is null; other negative counts are an empty vector (the reference's
        // BinaryIndex is done at once).
        let mut out = Vec::new();
        put_int(&mut out, -1);
        put_int(&mut out, -7);
        let mut reader = Reader::new(&out);
        assert_eq!(reader.read_string_vector("w"), Ok(None));
        assert_eq!(reader.read_string_vector("w"), Ok(Some(vec![])));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let mut out = Vec::new();
        put_bytes(&mut out, b"/a\xffb");
        assert_eq!(
            Reader::new(&out).read_string("path"),
            Ok("/a\u{fffd}b".to_string())
        );
    }

    #[test]
    fn frame_prefix_is_back_patched() {
        let mut out = vec![9];
        let start = begin_frame(&mut out, 8);
        put_string(&mut out, "/zk");
        end_frame(&mut out, start);
        assert_eq!(out, [9, 0, 0, 0, 7, 0, 0, 0, 3, b'/', b'z', b'k']);
    }

    // Review 1.4: no frame, however large, panics the thread encoding it.
    // The body past i32::MAX is a calloc'd zero buffer: its pages are never
    // touched, so the test costs address space, not memory.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn frames_past_i32_are_removed_not_panicked_on() {
        let mut out = Vec::new();
        let first = begin_frame(&mut out, 4);
        put_int(&mut out, 1);
        assert_eq!(try_end_frame(&mut out, first), Ok(()));
        let whole = out.clone();

        let mut huge = vec![0u8; FRAME_PREFIX_BYTES + i32::MAX as usize + 1];
        assert_eq!(
            try_end_frame(&mut huge, 0),
            Err(FrameTooLarge {
                body_bytes: i32::MAX as usize + 1
            })
        );
        assert!(huge.is_empty(), "the refused frame is removed");
        drop(huge);

        // A start that is not a frame's (a caller bug) is refused too, and
        // earlier frames stay whole.
        let len = out.len();
        assert!(try_end_frame(&mut out, len + 1).is_err());
        assert_eq!(out, whole);
        // The infallible form drops instead of panicking.
        end_frame(&mut out, len + 1);
        assert_eq!(out, whole);
    }

    #[test]
    fn lengths_past_i32_saturate() {
        let mut lengths = Vec::new();
        put_len(&mut lengths, usize::MAX);
        put_len(&mut lengths, 1 << 31);
        put_len(&mut lengths, 7);
        assert_eq!(
            lengths,
            [0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 7]
        );
    }

    proptest! {
        #[test]
        fn primitives_round_trip(
            int in any::<i32>(),
            long in any::<i64>(),
            flag in any::<bool>(),
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            text in ".{0,20}",
            strings in proptest::collection::vec(".{0,8}", 0..6),
        ) {
            let mut out = Vec::new();
            put_int(&mut out, int);
            put_long(&mut out, long);
            put_bool(&mut out, flag);
            put_buffer(&mut out, data.as_deref());
            put_string(&mut out, &text);
            put_string_vector(&mut out, &strings);
            prop_assert_eq!(out.len(), 4 + 8 + 1 + data.as_ref().map_or(4, |d| 4 + d.len())
                + 4 + text.len() + string_vector_size(&strings));
            let mut reader = Reader::new(&out);
            prop_assert_eq!(reader.read_int("int")?, int);
            prop_assert_eq!(reader.read_long("long")?, long);
            prop_assert_eq!(reader.read_bool("bool")?, flag);
            prop_assert_eq!(reader.read_buffer("buffer")?, data);
            prop_assert_eq!(reader.read_string("string")?, text);
            prop_assert_eq!(reader.read_string_vector("vector")?, Some(strings));
            prop_assert!(reader.is_empty());
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut reader = Reader::new(&bytes);
            let _ = reader.read_string_vector("v");
            let _ = reader.read_buffer("b");
            let _ = reader.read_ustring("s");
            let _ = reader.read_long("l");
            let _ = reader.take(usize::MAX, "t");
            prop_assert!(reader.offset() <= bytes.len());
        }
    }
}
