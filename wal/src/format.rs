//! The on-disk byte format of one WAL segment: the header, the record frame,
//! and the scan that walks a segment's bytes and says where the valid records
//! end and why. See `wal/FORMAT.md` for the diagrams.
//!
//! This module is pure: it sees byte slices, never files, so the same code
//! serves `Wal::open`, the `Reader`, `zk-logdump` and the fuzz/proptest
//! targets. It is not the policy that decides whether a bad tail is a torn
//! write or corruption; it only reports what it finds (`classify` gathers the
//! evidence, `Wal::open` acts on it).
//!
//! Invariant: every length read from the bytes is checked against the bytes
//! that remain and against `MAX_RECORD_BYTES` before it is used, so no input
//! makes this module panic or allocate.

/// First eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"ZKRSWAL\0";
/// Version of the format described in FORMAT.md.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in the segment header; the first record starts here.
pub const HEADER_BYTES: usize = 32;
/// Bytes of a record frame before the payload: length, crc32c, zxid.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Upper bound of a frame's length field (zxid + payload). A larger value is
/// never written, so reading one means the bytes are not a record.
pub const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;
/// Largest payload one record can carry.
pub const MAX_PAYLOAD_BYTES: usize = MAX_RECORD_BYTES as usize - 8;

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub database_id: u64,
    pub first_zxid: u64,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    BadMagic,
    UnknownVersion(u32),
    BadChecksum,
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let slice = bytes.get(at..end)?;
    let mut array = [0u8; 4];
    array.copy_from_slice(slice);
    Some(u32::from_le_bytes(array))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    let slice = bytes.get(at..end)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(slice);
    Some(u64::from_le_bytes(array))
}

fn header_checksum(version: u32, database_id: u64, first_zxid: u64) -> u32 {
    let mut crc = crc32c::crc32c(&MAGIC);
    crc = crc32c::crc32c_append(crc, &version.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &database_id.to_le_bytes());
    crc32c::crc32c_append(crc, &first_zxid.to_le_bytes())
}

/// The 32 header bytes of a new segment.
pub fn encode_header(header: SegmentHeader) -> [u8; HEADER_BYTES] {
    let mut out = [0u8; HEADER_BYTES];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = header_checksum(FORMAT_VERSION, header.database_id, header.first_zxid);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out[16..24].copy_from_slice(&header.database_id.to_le_bytes());
    out[24..32].copy_from_slice(&header.first_zxid.to_le_bytes());
    out
}

/// Reads the header at the start of `bytes`.
pub fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let head = bytes.get(..HEADER_BYTES).ok_or(HeaderError::TooShort)?;
    if head.get(0..8) != Some(&MAGIC[..]) {
        return Err(HeaderError::BadMagic);
    }
    let version = read_u32(head, 8).ok_or(HeaderError::TooShort)?;
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnknownVersion(version));
    }
    let crc = read_u32(head, 12).ok_or(HeaderError::TooShort)?;
    let database_id = read_u64(head, 16).ok_or(HeaderError::TooShort)?;
    let first_zxid = read_u64(head, 24).ok_or(HeaderError::TooShort)?;
    if crc != header_checksum(version, database_id, first_zxid) {
        return Err(HeaderError::BadChecksum);
    }
    Ok(SegmentHeader {
        database_id,
        first_zxid,
    })
}

/// crc32c over the zxid (little-endian) and the payload: what a frame stores.
pub fn record_checksum(zxid: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&zxid.to_le_bytes()), payload)
}

/// Bytes one record occupies on disk.
pub fn frame_bytes(payload_len: usize) -> usize {
    FRAME_HEADER_BYTES + payload_len
}

/// Appends one record frame to `out`. The caller has checked
/// `payload.len() <= MAX_PAYLOAD_BYTES` (it is our own state, so asserted).
pub fn encode_record(out: &mut Vec<u8>, zxid: u64, payload: &[u8]) {
    assert!(
        payload.len() <= MAX_PAYLOAD_BYTES,
        "record payload of {} bytes passed the append check",
        payload.len()
    );
    // Fits: MAX_PAYLOAD_BYTES + 8 == MAX_RECORD_BYTES, a u32.
    let length = u32::try_from(payload.len() + 8).unwrap_or(MAX_RECORD_BYTES);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&record_checksum(zxid, payload).to_le_bytes());
    out.extend_from_slice(&zxid.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One record found in a segment, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Byte offset of the frame within the segment file.
    pub offset: u64,
    pub zxid: u64,
    pub payload: &'a [u8],
}

/// Why a frame is not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrame {
    /// Fewer than a frame header's bytes remain, and they are not all zero.
    ShortHeader,
    /// The length field is below 8 (no room for the zxid) or above the bound.
    BadLength(u32),
    /// The length runs past the end of the file.
    PastEnd(u32),
    /// The stored crc32c does not match the zxid and payload.
    BadChecksum,
    /// The zxid does not increase (or precedes the segment's first zxid).
    ZxidOrder { zxid: u64, previous: u64 },
}

/// How a scan of a segment's records stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStop {
    /// A zero length field (or the end of the file) at `offset`: the end of
    /// the written records. Bytes after it may still be non-zero.
    End { offset: u64 },
    /// A frame at `offset` that is not a valid record.
    Bad { offset: u64, why: BadFrame },
}

impl ScanStop {
    pub fn offset(&self) -> u64 {
        match self {
            ScanStop::End { offset } | ScanStop::Bad { offset, .. } => *offset,
        }
    }
}

fn to_u64(n: usize) -> u64 {
    // usize is at most 64 bits on every target we build for.
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Decodes the frame at `at`, requiring its zxid to be above `floor`
/// (`None`: any zxid). Returns the record and the offset after it.
fn decode_frame(
    bytes: &[u8],
    at: usize,
    floor: Option<u64>,
) -> Result<Option<(RecordRef<'_>, usize)>, BadFrame> {
    let rest = bytes.get(at..).unwrap_or(&[]);
    if rest.len() < FRAME_HEADER_BYTES {
        return if rest.iter().all(|b| *b == 0) {
            Ok(None)
        } else {
            Err(BadFrame::ShortHeader)
        };
    }
    let length = read_u32(rest, 0).ok_or(BadFrame::ShortHeader)?;
    if length == 0 {
        return Ok(None);
    }
    if !(8..=MAX_RECORD_BYTES).contains(&length) {
        return Err(BadFrame::BadLength(length));
    }
    let body_len = usize::try_from(length).map_err(|_| BadFrame::BadLength(length))?;
    let end = 8usize
        .checked_add(body_len)
        .ok_or(BadFrame::BadLength(length))?;
    if end > rest.len() {
        return Err(BadFrame::PastEnd(length));
    }
    let stored_crc = read_u32(rest, 4).ok_or(BadFrame::ShortHeader)?;
    let zxid = read_u64(rest, 8).ok_or(BadFrame::ShortHeader)?;
    let payload = rest
        .get(FRAME_HEADER_BYTES..end)
        .ok_or(BadFrame::PastEnd(length))?;
    if record_checksum(zxid, payload) != stored_crc {
        return Err(BadFrame::BadChecksum);
    }
    if let Some(previous) = floor {
        if zxid <= previous {
            return Err(BadFrame::ZxidOrder { zxid, previous });
        }
    }
    let record = RecordRef {
        offset: to_u64(at),
        zxid,
        payload,
    };
    Ok(Some((record, at + end)))
}

/// Iterates the records of one segment's bytes (header included), in order,
/// stopping at the first frame that is not a valid record; `stop()` then
/// says why. Never panics, never allocates.
pub struct SegmentScan<'a> {
    bytes: &'a [u8],
    position: usize,
    /// zxid of the previous record, or the header's first zxid minus one.
    floor: Option<u64>,
    stop: Option<ScanStop>,
}

impl<'a> SegmentScan<'a> {
    /// Scans records after the header. `first_zxid` is the header's: every
    /// record's zxid must be at least that and strictly increasing.
    pub fn new(bytes: &'a [u8], first_zxid: u64) -> SegmentScan<'a> {
        SegmentScan {
            bytes,
            position: HEADER_BYTES.min(bytes.len()),
            floor: first_zxid.checked_sub(1),
            stop: None,
        }
    }

    /// Resumes a scan at `position` (an offset a previous scan reported)
    /// with `floor` the zxid of the record before it.
    pub fn resume(bytes: &'a [u8], position: u64, floor: Option<u64>) -> SegmentScan<'a> {
        SegmentScan {
            bytes,
            position: usize::try_from(position).unwrap_or(usize::MAX),
            floor,
            stop: None,
        }
    }

    /// zxid of the last record returned (or the floor given at the start).
    pub fn floor(&self) -> Option<u64> {
        self.floor
    }

    /// Why the scan stopped, once `next()` has returned `None`.
    pub fn stop(&self) -> Option<ScanStop> {
        self.stop
    }

    /// Offset just past the last valid record returned so far.
    pub fn data_end(&self) -> u64 {
        to_u64(self.position)
    }
}

impl<'a> Iterator for SegmentScan<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        if self.stop.is_some() {
            return None;
        }
        match decode_frame(self.bytes, self.position, self.floor) {
            Ok(Some((record, next))) => {
                debug_assert!(next > self.position);
                self.position = next;
                self.floor = Some(record.zxid);
                Some(record)
            }
            Ok(None) => {
                self.stop = Some(ScanStop::End {
                    offset: self.data_end(),
                });
                None
            }
            Err(why) => {
                self.stop = Some(ScanStop::Bad {
                    offset: self.data_end(),
                    why,
                });
                None
            }
        }
    }
}

/// Looks for any valid record frame with a zxid above `floor` starting at
/// an offset in `from..until`: evidence that a bad frame before it is damage
/// in the middle of the log rather than the torn tail of an unfinished write.
/// (A record's length field is non-zero, so no record starts at or after the
/// last non-zero byte: callers pass that as `until`.) A checksum is computed
/// only where a plausible length is found.
pub fn find_record_after(
    bytes: &[u8],
    from: usize,
    until: usize,
    floor: Option<u64>,
) -> Option<u64> {
    let mut at = from;
    while at < until && at.saturating_add(FRAME_HEADER_BYTES) <= bytes.len() {
        // Skip a zero length word cheaply: preallocated space is zeros.
        if read_u32(bytes, at) != Some(0) {
            if let Ok(Some((record, _))) = decode_frame(bytes, at, floor) {
                return Some(record.offset);
            }
        }
        at += 1;
    }
    None
}

/// What the tail of a segment looks like after its last valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Only zeros follow the last record.
    Clean,
    /// Garbage with no valid record after it: what an unfinished write
    /// leaves. `garbage_end` is one past its last non-zero byte.
    Torn {
        offset: u64,
        garbage_end: u64,
        why: ScanStop,
    },
    /// A bad frame followed by a valid record: damage in the middle.
    Corrupt { offset: u64, why: ScanStop },
}

/// Everything `Wal::open` needs to know about one segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCheck {
    pub records: u64,
    pub first_record_zxid: Option<u64>,
    pub last_zxid: Option<u64>,
    /// Offset one past the last valid record.
    pub data_end: u64,
    pub tail: Tail,
}

/// Scans a whole segment (header already decoded) and classifies its tail.
pub fn classify(bytes: &[u8], first_zxid: u64) -> SegmentCheck {
    let mut scan = SegmentScan::new(bytes, first_zxid);
    let mut records = 0u64;
    let mut first_record_zxid = None;
    let mut last_zxid = None;
    for record in scan.by_ref() {
        records += 1;
        first_record_zxid.get_or_insert(record.zxid);
        last_zxid = Some(record.zxid);
    }
    let data_end = scan.data_end();
    // `next()` returned None, so the scan has stopped.
    let stop = scan.stop().unwrap_or(ScanStop::End { offset: data_end });
    let start = usize::try_from(stop.offset()).unwrap_or(bytes.len());
    let rest = bytes.get(start..).unwrap_or(&[]);
    let tail = match rest.iter().rposition(|b| *b != 0) {
        None => Tail::Clean,
        Some(last_nonzero) => {
            let floor = last_zxid.or(first_zxid.checked_sub(1));
            let garbage_end = start.saturating_add(last_nonzero).saturating_add(1);
            match find_record_after(bytes, start.saturating_add(1), garbage_end, floor) {
                Some(_) => Tail::Corrupt {
                    offset: stop.offset(),
                    why: stop,
                },
                None => Tail::Torn {
                    offset: stop.offset(),
                    garbage_end: to_u64(garbage_end),
                    why: stop,
                },
            }
        }
    };
    SegmentCheck {
        records,
        first_record_zxid,
        last_zxid,
        data_end,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment(first_zxid: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut bytes = encode_header(SegmentHeader {
            database_id: 7,
            first_zxid,
        })
        .to_vec();
        for (zxid, payload) in records {
            encode_record(&mut bytes, *zxid, payload);
        }
        bytes
    }

    #[track_caller]
    fn check(bytes: &[u8], expected_zxids: &[u64], expected_tail: &str) {
        let header = decode_header(bytes).expect("header");
        let zxids: Vec<u64> = SegmentScan::new(bytes, header.first_zxid)
            .map(|r| r.zxid)
            .collect();
        assert_eq!(zxids, expected_zxids);
        let check = classify(bytes, header.first_zxid);
        let tail = match check.tail {
            Tail::Clean => "clean".to_string(),
            Tail::Torn {
                offset,
                garbage_end,
                ..
            } => format!("torn {offset}..{garbage_end}"),
            Tail::Corrupt { offset, .. } => format!("corrupt {offset}"),
        };
        assert_eq!(tail, expected_tail);
    }

    // The header round-trips and a damaged header is refused, not misread.
    #[test]
    fn header_round_trip_and_damage() {
        let header = SegmentHeader {
            database_id: 42,
            first_zxid: 0x1_0000_0005,
        };
        let mut bytes = encode_header(header);
        assert_eq!(decode_header(&bytes), Ok(header));
        bytes[20] ^= 1;
        assert_eq!(decode_header(&bytes), Err(HeaderError::BadChecksum));
        bytes[0] = b'X';
        assert_eq!(decode_header(&bytes), Err(HeaderError::BadMagic));
        assert_eq!(decode_header(&bytes[..10]), Err(HeaderError::TooShort));
    }

    // Preallocated zeros after the records are the clean end.
    #[test]
    fn zeros_end_the_segment() {
        let mut bytes = segment(1, &[(1, b"a"), (2, b""), (3, b"ccc")]);
        bytes.resize(bytes.len() + 100, 0);
        check(&bytes, &[1, 2, 3], "clean");
    }

    // A partial last frame is a torn tail; a damaged frame followed by a good
    // one is corruption in the middle.
    #[test]
    fn torn_versus_corrupt() {
        let full = segment(1, &[(1, b"one"), (2, b"two"), (3, b"three")]);
        let third = 32 + 2 * (16 + 3);
        check(
            &full[..full.len() - 2],
            &[1, 2],
            &format!("torn {third}..{}", full.len() - 2),
        );
        let mut flipped = full.clone();
        flipped[32 + 16 + 1] ^= 0x10; // payload of record 1
        check(&flipped, &[], "corrupt 32");
    }

    // zxids must increase and not precede the header's first zxid.
    #[test]
    fn zxid_order_is_checked() {
        let bytes = segment(5, &[(5, b"x"), (5, b"y")]);
        check(&bytes, &[5], "torn 49..66");
        let bytes = segment(5, &[(4, b"x")]);
        check(&bytes, &[], "torn 32..49");
    }

    proptest! {
        // Arbitrary bytes as a segment never panic the scan or the classifier.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), first in any::<u64>()) {
            let _ = decode_header(&bytes);
            let count = SegmentScan::new(&bytes, first).count();
            prop_assert!(count <= bytes.len() / FRAME_HEADER_BYTES);
            let _ = classify(&bytes, first);
        }

        // A valid segment with arbitrary damage after a valid prefix still
        // yields that prefix, and lengths in the damage never allocate.
        #[test]
        fn valid_prefix_survives_garbage(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            garbage in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let records: Vec<(u64, &[u8])> = payloads.iter().enumerate()
                .map(|(i, p)| (i as u64 + 1, p.as_slice())).collect();
            let mut bytes = segment(1, &records);
            bytes.extend_from_slice(&garbage);
            let found: Vec<u64> = SegmentScan::new(&bytes, 1).map(|r| r.zxid).collect();
            prop_assert!(found.len() >= records.len());
            for (i, zxid) in found.iter().take(records.len()).enumerate() {
                prop_assert_eq!(*zxid, i as u64 + 1);
            }
        }
    }
}
