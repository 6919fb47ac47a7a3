//! The byte layout of a snapshot file: header, entry frames, trailer, and
//! file names. Pure encoding and decoding over byte slices; no I/O here, so
//! every decoder can be fed arbitrary bytes by tests.
//!
//! Invariant: a decoder either returns a value whose every field passed its
//! checks (magic, version, crc32c, ranges) or an error naming what failed; it
//! never indexes past the slice it was given. `FORMAT.md` is the prose version
//! of this file and the two change together.

use std::path::Path;

/// First eight bytes of every snapshot file. The `\r\n` and the high byte
/// catch files mangled by text-mode copies, as PNG's signature does.
pub const HEADER_MAGIC: [u8; 8] = *b"\x89ZKSNP\r\n";
/// Last eight bytes of every complete snapshot file; a file that does not end
/// with them was cut short.
pub const TRAILER_MAGIC: [u8; 8] = *b"ZKSNPEND";
/// The only layout this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Compression of the entry stream: 1 = zstd. Kept in the header so a later
/// format can change it without a new magic.
pub const COMPRESSION_ZSTD: u32 = 1;

/// Header size on disk, in bytes.
pub const HEADER_BYTES: usize = 48;
/// Trailer size on disk, in bytes.
pub const TRAILER_BYTES: usize = 64;
/// Frame prefix in the uncompressed entry stream: tag byte + u32 length.
pub const FRAME_PREFIX_BYTES: usize = 5;

/// The largest payload one entry may carry. A znode is bounded by
/// `jute.maxbuffer` (1 MiB by default) and the engine writes one entry per
/// znode, session or ACL list, so 64 MiB leaves ample room while keeping the
/// allocation a hostile length field can cause bounded.
pub const MAX_ENTRY_BYTES: usize = 64 << 20;

/// The tag byte that ends the entry stream. Not a `Section`: callers never
/// write it, the writer does in `finish`.
pub const END_TAG: u8 = 0xff;

/// Which part of the engine's state an entry belongs to. The snapshot crate
/// does not interpret payloads; the section only tells the reader which
/// decoder the engine should hand them to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Section {
    /// Engine-level facts that are neither nodes, ACLs nor sessions (for
    /// example a format marker or the digest's parameters).
    Meta,
    /// The ACL table (ZooKeeper's reference-counted ACL cache).
    Acls,
    /// Znodes: path, data, stat, ACL reference.
    Nodes,
    /// Sessions and their timeouts.
    Sessions,
}

impl Section {
    /// Every section, in tag order. Used by tests and by summaries.
    pub const ALL: [Section; 4] = [
        Section::Meta,
        Section::Acls,
        Section::Nodes,
        Section::Sessions,
    ];

    /// The tag byte written before each entry of this section.
    pub fn tag(self) -> u8 {
        match self {
            Section::Meta => 1,
            Section::Acls => 2,
            Section::Nodes => 3,
            Section::Sessions => 4,
        }
    }

    /// The section a tag byte names, or `None` for an unknown tag (a corrupt
    /// file, or one from a newer format).
    pub fn from_tag(tag: u8) -> Option<Section> {
        match tag {
            1 => Some(Section::Meta),
            2 => Some(Section::Acls),
            3 => Some(Section::Nodes),
            4 => Some(Section::Sessions),
            _ => None,
        }
    }

    /// Upper-case name as used in FORMAT.md and log lines.
    pub fn name(self) -> &'static str {
        match self {
            Section::Meta => "META",
            Section::Acls => "ACLS",
            Section::Nodes => "NODES",
            Section::Sessions => "SESSIONS",
        }
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The uncompressed header at the start of a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Layout version; always `FORMAT_VERSION` for a file that decoded.
    pub format_version: u32,
    /// Identifies the ensemble's database, as the WAL header does; a snapshot
    /// from another database must not be replayed against this one's log.
    pub database_id: u64,
    /// The last zxid applied when the snapshot began. Replay of the log starts
    /// after it; the file is named by it.
    pub start_zxid: u64,
    /// Wall-clock creation time, milliseconds since the Unix epoch. For
    /// humans and retention tooling only; nothing orders by it.
    pub created_ms: u64,
}

/// The uncompressed trailer at the end of a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Number of entries, not counting the END frame.
    pub entry_count: u64,
    /// Length of the uncompressed entry stream, END frame included.
    pub uncompressed_bytes: u64,
    /// Length of the zstd stream between header and trailer.
    pub compressed_bytes: u64,
    /// crc32c of the uncompressed entry stream, END frame included.
    pub stream_crc32c: u32,
    /// crc32c of the compressed bytes. zstd ignores some header bits and the
    /// uncompressed crc cannot see them, so a flipped bit there would pass
    /// unnoticed without this.
    pub compressed_crc32c: u32,
    /// The caller's digest of the tree, opaque to this crate.
    pub digest: u64,
    /// The last zxid the caller had applied when it finished writing: the tree
    /// kept changing during a fuzzy snapshot, and only after replaying the log
    /// up to here is the restored tree consistent.
    pub end_zxid: u64,
}

/// Why a header or trailer failed to decode. Turned into `Error::Corrupt` by
/// the caller, which knows the file name and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    let array: [u8; 4] = slice.try_into().ok()?;
    Some(u32::from_le_bytes(array))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at.checked_add(8)?)?;
    let array: [u8; 8] = slice.try_into().ok()?;
    Some(u64::from_le_bytes(array))
}

fn short(what: &str) -> DecodeError {
    DecodeError(format!("{what} is cut short"))
}

impl Header {
    /// Encodes the header; the last eight bytes are its crc32c and padding.
    pub(crate) fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0..8].copy_from_slice(&HEADER_MAGIC);
        out[8..12].copy_from_slice(&self.format_version.to_le_bytes());
        out[12..16].copy_from_slice(&COMPRESSION_ZSTD.to_le_bytes());
        out[16..24].copy_from_slice(&self.database_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.start_zxid.to_le_bytes());
        out[32..40].copy_from_slice(&self.created_ms.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..40]);
        out[40..44].copy_from_slice(&crc.to_le_bytes());
        // Bytes 44..48 stay zero: reserved, and checked to be zero on read so
        // a later format can give them a meaning.
        out
    }

    /// Decodes and checks a header from the first `HEADER_BYTES` of `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, DecodeError> {
        let bytes = bytes.get(..HEADER_BYTES).ok_or_else(|| short("header"))?;
        if bytes.get(0..8) != Some(&HEADER_MAGIC[..]) {
            return Err(DecodeError("bad header magic: not a snapshot file".into()));
        }
        let format_version = u32_at(bytes, 8).ok_or_else(|| short("header"))?;
        let compression = u32_at(bytes, 12).ok_or_else(|| short("header"))?;
        let database_id = u64_at(bytes, 16).ok_or_else(|| short("header"))?;
        let start_zxid = u64_at(bytes, 24).ok_or_else(|| short("header"))?;
        let created_ms = u64_at(bytes, 32).ok_or_else(|| short("header"))?;
        let stored_crc = u32_at(bytes, 40).ok_or_else(|| short("header"))?;
        let reserved = u32_at(bytes, 44).ok_or_else(|| short("header"))?;
        let computed_crc = crc32c::crc32c(bytes.get(0..40).ok_or_else(|| short("header"))?);
        // The crc is checked before the fields it covers are believed.
        if stored_crc != computed_crc {
            return Err(DecodeError(format!(
                "header crc32c mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"
            )));
        }
        if format_version != FORMAT_VERSION {
            return Err(DecodeError(format!(
                "unsupported format version {format_version} (this build reads {FORMAT_VERSION})"
            )));
        }
        if compression != COMPRESSION_ZSTD {
            return Err(DecodeError(format!("unknown compression {compression}")));
        }
        if reserved != 0 {
            return Err(DecodeError(format!(
                "reserved header bytes are {reserved:#x}, not zero"
            )));
        }
        Ok(Header {
            format_version,
            database_id,
            start_zxid,
            created_ms,
        })
    }
}

impl Trailer {
    /// Encodes the trailer: fields, their crc32c, then the trailer magic.
    pub(crate) fn encode(&self) -> [u8; TRAILER_BYTES] {
        let mut out = [0u8; TRAILER_BYTES];
        out[0..8].copy_from_slice(&self.entry_count.to_le_bytes());
        out[8..16].copy_from_slice(&self.uncompressed_bytes.to_le_bytes());
        out[16..24].copy_from_slice(&self.compressed_bytes.to_le_bytes());
        out[24..32].copy_from_slice(&self.digest.to_le_bytes());
        out[32..40].copy_from_slice(&self.end_zxid.to_le_bytes());
        out[40..44].copy_from_slice(&self.stream_crc32c.to_le_bytes());
        out[44..48].copy_from_slice(&self.compressed_crc32c.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..48]);
        out[48..52].copy_from_slice(&crc.to_le_bytes());
        // Bytes 52..56 stay zero: reserved, checked on read.
        out[56..64].copy_from_slice(&TRAILER_MAGIC);
        out
    }

    /// Decodes and checks a trailer from exactly the last `TRAILER_BYTES` of
    /// a file (`bytes` longer than that is an error, so callers slice first).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Trailer, DecodeError> {
        if bytes.len() != TRAILER_BYTES {
            return Err(short("trailer"));
        }
        if bytes.get(56..64) != Some(&TRAILER_MAGIC[..]) {
            return Err(DecodeError(
                "bad trailer magic: the file is incomplete (crash while writing?)".into(),
            ));
        }
        let entry_count = u64_at(bytes, 0).ok_or_else(|| short("trailer"))?;
        let uncompressed_bytes = u64_at(bytes, 8).ok_or_else(|| short("trailer"))?;
        let compressed_bytes = u64_at(bytes, 16).ok_or_else(|| short("trailer"))?;
        let digest = u64_at(bytes, 24).ok_or_else(|| short("trailer"))?;
        let end_zxid = u64_at(bytes, 32).ok_or_else(|| short("trailer"))?;
        let stream_crc32c = u32_at(bytes, 40).ok_or_else(|| short("trailer"))?;
        let compressed_crc32c = u32_at(bytes, 44).ok_or_else(|| short("trailer"))?;
        let stored_crc = u32_at(bytes, 48).ok_or_else(|| short("trailer"))?;
        let reserved = u32_at(bytes, 52).ok_or_else(|| short("trailer"))?;
        let computed_crc = crc32c::crc32c(bytes.get(0..48).ok_or_else(|| short("trailer"))?);
        if stored_crc != computed_crc {
            return Err(DecodeError(format!(
                "trailer crc32c mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"
            )));
        }
        if reserved != 0 {
            return Err(DecodeError(format!(
                "reserved trailer bytes are {reserved:#x}, not zero"
            )));
        }
        // Each entry costs at least its frame prefix, and the END frame is
        // always there: a trailer claiming otherwise cannot describe any file.
        let minimum_bytes = entry_count
            .checked_add(1)
            .and_then(|frames| frames.checked_mul(FRAME_PREFIX_BYTES as u64));
        let fits = match minimum_bytes {
            Some(minimum) => uncompressed_bytes >= minimum,
            None => false,
        };
        if !fits {
            return Err(DecodeError(format!(
                "trailer claims {entry_count} entries in {uncompressed_bytes} uncompressed bytes"
            )));
        }
        Ok(Trailer {
            entry_count,
            uncompressed_bytes,
            compressed_bytes,
            stream_crc32c,
            compressed_crc32c,
            digest,
            end_zxid,
        })
    }
}

/// Encodes the prefix of one entry frame. The caller has checked `len`
/// against `MAX_ENTRY_BYTES`, so it fits a u32.
pub fn frame_prefix(tag: u8, len: u32) -> [u8; FRAME_PREFIX_BYTES] {
    let mut out = [0u8; FRAME_PREFIX_BYTES];
    out[0] = tag;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    out
}

/// Splits a frame prefix into tag and payload length.
pub fn decode_frame_prefix(prefix: &[u8; FRAME_PREFIX_BYTES]) -> (u8, u32) {
    let [tag, a, b, c, d] = *prefix;
    (tag, u32::from_le_bytes([a, b, c, d]))
}

/// The prefix every snapshot file name starts with.
pub const FILE_PREFIX: &str = "snapshot.";
/// The suffix of a snapshot being written. Such files are never read.
pub const TEMP_SUFFIX: &str = ".tmp";

/// The file name of the snapshot that starts at `start_zxid`: sixteen
/// lower-case hex digits, so names sort as zxids do.
pub fn file_name(start_zxid: u64) -> String {
    format!("{FILE_PREFIX}{start_zxid:016x}")
}

/// The temp name the writer uses before the rename.
pub fn temp_file_name(start_zxid: u64) -> String {
    format!("{FILE_PREFIX}{start_zxid:016x}{TEMP_SUFFIX}")
}

fn parse_hex16(digits: &str) -> Option<u64> {
    // `from_str_radix` alone would accept a sign and fewer digits; the name
    // format is exactly sixteen hex digits.
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// What a directory entry's name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A complete snapshot, by name, starting at this zxid.
    Snapshot(u64),
    /// A snapshot whose write never reached its rename (or is still running).
    Temp(u64),
}

/// Classifies a file name; `None` for anything this crate does not own.
pub fn classify(name: &Path) -> Option<FileKind> {
    let name = name.file_name()?.to_str()?;
    let rest = name.strip_prefix(FILE_PREFIX)?;
    if let Some(digits) = rest.strip_suffix(TEMP_SUFFIX) {
        return parse_hex16(digits).map(FileKind::Temp);
    }
    parse_hex16(rest).map(FileKind::Snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format_version: FORMAT_VERSION,
            database_id: 0xdead_beef,
            start_zxid: 0x1_0000_0005,
            created_ms: 1_700_000_000_000,
        }
    }

    fn trailer() -> Trailer {
        Trailer {
            entry_count: 3,
            uncompressed_bytes: 100,
            compressed_bytes: 77,
            stream_crc32c: 0x1234_5678,
            compressed_crc32c: 0x9abc_def0,
            digest: 42,
            end_zxid: 0x1_0000_0009,
        }
    }

    #[test]
    fn header_and_trailer_round_trip() {
        assert_eq!(Header::decode(&header().encode()), Ok(header()));
        assert_eq!(Trailer::decode(&trailer().encode()), Ok(trailer()));
    }

    /// Every single-bit flip in the header or trailer is caught: magic, crc or
    /// a range check rejects it.
    #[test]
    fn any_bit_flip_is_rejected() {
        let encoded = header().encode();
        for bit in 0..HEADER_BYTES * 8 {
            let mut bytes = encoded;
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(Header::decode(&bytes).is_err(), "header bit {bit}");
        }
        let encoded = trailer().encode();
        for bit in 0..TRAILER_BYTES * 8 {
            let mut bytes = encoded;
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(Trailer::decode(&bytes).is_err(), "trailer bit {bit}");
        }
    }

    #[test]
    fn short_input_is_an_error() {
        let encoded = header().encode();
        for len in 0..HEADER_BYTES {
            assert!(Header::decode(&encoded[..len]).is_err());
        }
        let encoded = trailer().encode();
        for len in 0..TRAILER_BYTES {
            assert!(Trailer::decode(&encoded[..len]).is_err());
        }
    }

    /// A trailer whose entry count cannot fit its byte count is corrupt even
    /// with a correct crc (a crafted file must not size anything by it).
    #[test]
    fn impossible_counts_are_rejected() {
        let mut bad = trailer();
        bad.entry_count = u64::MAX;
        assert!(Trailer::decode(&bad.encode()).is_err());
        bad.entry_count = 20;
        bad.uncompressed_bytes = 20 * 5;
        assert!(Trailer::decode(&bad.encode()).is_err());
        bad.uncompressed_bytes = 21 * 5;
        assert!(Trailer::decode(&bad.encode()).is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(file_name(0x1_0000_00ff), "snapshot.00000001000000ff");
        assert_eq!(
            classify(Path::new("/d/snapshot.00000001000000ff")),
            Some(FileKind::Snapshot(0x1_0000_00ff))
        );
        assert_eq!(
            classify(Path::new("snapshot.00000001000000FF.tmp")),
            Some(FileKind::Temp(0x1_0000_00ff))
        );
        for other in [
            "snapshot.1",
            "snapshot.+000000000000001",
            "snapshot.00000001000000ff.bak",
            "snapshot.00000001000000ff0",
            "log.0000000100000001",
            "snapshot.",
        ] {
            assert_eq!(classify(Path::new(other)), None, "{other}");
        }
        for section in Section::ALL {
            assert_eq!(Section::from_tag(section.tag()), Some(section));
            assert_ne!(section.tag(), END_TAG);
        }
    }
}
