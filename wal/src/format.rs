//! The on-disk byte format of one WAL segment: the header, the record frame,
//! the commit marker that closes each batch, and the scan that walks a
//! segment's bytes and says where the valid records end and why. See
//! `wal/FORMAT.md` for the diagrams.
//!
//! This module is pure: it sees byte slices, never files, so the same code
//! serves `Wal::open`, the `Reader`, `zk-logdump` and the fuzz/proptest
//! targets. It is not the policy that decides what to do with a bad tail; it
//! only reports what it finds (`classify` gathers the evidence, `Wal::open`
//! acts on it).
//!
//! Two versions are read. Version 2 (written) ends every batch with a commit
//! marker, so a batch cut short by a crash (a missing marker, or any damage
//! before it) is told apart from damage to a batch that a later intact batch
//! proves was synced. Version 1 (read only) has no markers; its tail is
//! judged record by record as before.
//!
//! Invariant: every length read from the bytes is checked against the bytes
//! that remain and against `MAX_RECORD_BYTES` before it is used, so no input
//! makes this module panic or allocate.

/// First eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"ZKRSWAL\0";
/// Version of the format written, described in FORMAT.md: batches of
/// records, each closed by a commit marker.
pub const FORMAT_VERSION: u32 = 2;
/// The first version: records without commit markers. Still read, with its
/// own rules for a bad tail; never written.
pub const FORMAT_VERSION_1: u32 = 1;
/// Bytes in the segment header; the first record starts here.
pub const HEADER_BYTES: usize = 32;
/// Bytes of a record frame before the payload: length, crc32c, zxid.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Upper bound of a frame's length field (zxid + payload). A larger value is
/// never written, so reading one means the bytes are not a record.
pub const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;
/// Largest payload one record can carry.
pub const MAX_PAYLOAD_BYTES: usize = MAX_RECORD_BYTES as usize - 8;
/// First word of a commit marker, where a record frame has its length:
/// "CMIT", above `MAX_RECORD_BYTES`, so it is never a record's length.
pub const MARKER_TAG: u32 = u32::from_le_bytes(*b"CMIT");
/// Bytes of a commit marker: tag, crc32c, last zxid, batch bytes.
pub const MARKER_BYTES: usize = 24;

const _: () = assert!(MARKER_TAG > MAX_RECORD_BYTES);

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `FORMAT_VERSION` or `FORMAT_VERSION_1`.
    pub version: u32,
    pub database_id: u64,
    pub first_zxid: u64,
}

impl SegmentHeader {
    /// The header of a new segment, in the version written.
    pub fn new(database_id: u64, first_zxid: u64) -> SegmentHeader {
        SegmentHeader {
            version: FORMAT_VERSION,
            database_id,
            first_zxid,
        }
    }
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    BadMagic,
    UnknownVersion(u32),
    BadChecksum,
}

fn known_version(version: u32) -> bool {
    version == FORMAT_VERSION || version == FORMAT_VERSION_1
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

/// The 32 header bytes of a segment. The version is our own value, so an
/// unknown one is asserted (tests write version 1 to check it is still read).
pub fn encode_header(header: SegmentHeader) -> [u8; HEADER_BYTES] {
    assert!(
        known_version(header.version),
        "segment header of unknown version {}",
        header.version
    );
    let mut out = [0u8; HEADER_BYTES];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&header.version.to_le_bytes());
    let crc = header_checksum(header.version, header.database_id, header.first_zxid);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out[16..24].copy_from_slice(&header.database_id.to_le_bytes());
    out[24..32].copy_from_slice(&header.first_zxid.to_le_bytes());
    out
}

/// Reads the header at the start of `bytes` (either version).
pub fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    let head = bytes.get(..HEADER_BYTES).ok_or(HeaderError::TooShort)?;
    if head.get(0..8) != Some(&MAGIC[..]) {
        return Err(HeaderError::BadMagic);
    }
    let version = read_u32(head, 8).ok_or(HeaderError::TooShort)?;
    if !known_version(version) {
        return Err(HeaderError::UnknownVersion(version));
    }
    let crc = read_u32(head, 12).ok_or(HeaderError::TooShort)?;
    let database_id = read_u64(head, 16).ok_or(HeaderError::TooShort)?;
    let first_zxid = read_u64(head, 24).ok_or(HeaderError::TooShort)?;
    if crc != header_checksum(version, database_id, first_zxid) {
        return Err(HeaderError::BadChecksum);
    }
    Ok(SegmentHeader {
        version,
        database_id,
        first_zxid,
    })
}

/// Whether the segment whose bytes (header included) these are closes its
/// batches with commit markers: every version but 1. Scans take whole
/// segments, so the version travels with the bytes; a header too damaged to
/// say is read by the current rules (callers refuse such a header first).
fn has_markers(bytes: &[u8]) -> bool {
    read_u32(bytes, 8) != Some(FORMAT_VERSION_1)
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

/// crc32c over a marker's last zxid and batch length, as stored.
fn marker_checksum(last_zxid: u64, batch_bytes: u64) -> u32 {
    crc32c::crc32c_append(
        crc32c::crc32c(&last_zxid.to_le_bytes()),
        &batch_bytes.to_le_bytes(),
    )
}

/// Appends the commit marker of the batch whose record frames are the
/// `batch_bytes` bytes just before the marker's place on disk and whose last
/// record has `last_zxid`. A batch holds at least one record, and its marker
/// follows it directly.
pub fn encode_marker(out: &mut Vec<u8>, last_zxid: u64, batch_bytes: usize) {
    assert!(
        batch_bytes >= FRAME_HEADER_BYTES,
        "commit marker for a batch of {batch_bytes} bytes"
    );
    let batch_bytes = to_u64(batch_bytes);
    out.extend_from_slice(&MARKER_TAG.to_le_bytes());
    out.extend_from_slice(&marker_checksum(last_zxid, batch_bytes).to_le_bytes());
    out.extend_from_slice(&last_zxid.to_le_bytes());
    out.extend_from_slice(&batch_bytes.to_le_bytes());
}

/// Appends `records` as one committed batch: the frames, then the marker.
pub fn encode_batch<'p>(out: &mut Vec<u8>, records: impl IntoIterator<Item = (u64, &'p [u8])>) {
    let start = out.len();
    let mut last_zxid = None;
    for (zxid, payload) in records {
        encode_record(out, zxid, payload);
        last_zxid = Some(zxid);
    }
    if let Some(last_zxid) = last_zxid {
        encode_marker(out, last_zxid, out.len() - start);
    }
}

/// One record found in a segment, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Byte offset of the frame within the segment file.
    pub offset: u64,
    pub zxid: u64,
    pub payload: &'a [u8],
}

/// A commit marker: the `batch_bytes` bytes of record frames just before
/// `offset` are one complete batch whose last record has `last_zxid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub offset: u64,
    pub last_zxid: u64,
    pub batch_bytes: u64,
}

/// Why a frame is not a record (or, in version 2, a sound commit marker).
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
    /// A commit marker cut off by the end of the file, or failing its crc32c.
    BadMarker,
    /// A sound commit marker that does not describe the records before it
    /// (another last zxid or batch length, or no record at all).
    MarkerMismatch { last_zxid: u64, batch_bytes: u64 },
    /// The records of a batch end (zeros or the end of the file) without a
    /// commit marker: the batch was not completely written.
    NoMarker,
}

/// How a scan of a segment's records stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStop {
    /// A zero length field (or the end of the file) at `offset` where a
    /// batch may begin: the end of the written records. Bytes after it may
    /// still be non-zero.
    End { offset: u64 },
    /// A frame at `offset` that is not a valid record or marker.
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

/// Decodes the record frame at `at`, requiring its zxid to be above `floor`
/// (`None`: any zxid). Returns the record and the offset after it, or None
/// at the end of the records (a zero length, or only zeros left).
fn decode_record(
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

/// Decodes a commit marker at `at` (its tag already seen): its checksum,
/// not yet whether it matches the batch before it.
fn decode_marker(bytes: &[u8], at: usize) -> Result<Marker, BadFrame> {
    let end = at.checked_add(MARKER_BYTES).ok_or(BadFrame::BadMarker)?;
    let marker = bytes.get(at..end).ok_or(BadFrame::BadMarker)?;
    let stored_crc = read_u32(marker, 4).ok_or(BadFrame::BadMarker)?;
    let last_zxid = read_u64(marker, 8).ok_or(BadFrame::BadMarker)?;
    let batch_bytes = read_u64(marker, 16).ok_or(BadFrame::BadMarker)?;
    if marker_checksum(last_zxid, batch_bytes) != stored_crc {
        return Err(BadFrame::BadMarker);
    }
    Ok(Marker {
        offset: to_u64(at),
        last_zxid,
        batch_bytes,
    })
}

fn is_marker_at(bytes: &[u8], at: usize) -> bool {
    read_u32(bytes, at) == Some(MARKER_TAG)
}

/// How much of a segment a scan has seen committed. In version 2 a batch is
/// committed once its marker is read and matches it; in version 1 every
/// valid record counts as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Offset just past the last committed batch (its marker), or where the
    /// scan began.
    pub end: u64,
    /// zxid of the first and the last committed record.
    pub first_zxid: Option<u64>,
    pub last_zxid: Option<u64>,
    /// Committed records seen by this scan.
    pub records: u64,
}

/// Iterates the records of one segment's bytes (header included), in order,
/// passing over commit markers, stopping at the first frame that is neither
/// a valid record nor a marker that matches its batch; `stop()` then says
/// why, and `committed()` how far complete batches reach. The records of a
/// batch are returned before its marker is checked, so the last ones may
/// belong to an unfinished batch. Never panics, never allocates.
pub struct SegmentScan<'a> {
    bytes: &'a [u8],
    position: usize,
    /// zxid of the previous record, or the header's first zxid minus one.
    floor: Option<u64>,
    stop: Option<ScanStop>,
    /// Version 2: batches end with commit markers.
    markers: bool,
    /// Where the batch being read starts; unknown after `resume` until the
    /// next marker.
    batch_start: Option<usize>,
    /// Records read since the batch start (or the resume point).
    batch_records: u64,
    batch_first_zxid: Option<u64>,
    committed: Committed,
}

impl<'a> SegmentScan<'a> {
    /// Scans records after the header. `first_zxid` is the header's: every
    /// record's zxid must be at least that and strictly increasing. The
    /// header's version (in `bytes`) says whether markers close batches.
    pub fn new(bytes: &'a [u8], first_zxid: u64) -> SegmentScan<'a> {
        let position = HEADER_BYTES.min(bytes.len());
        SegmentScan::start(bytes, position, first_zxid.checked_sub(1), Some(position))
    }

    /// Resumes a scan at `position` (an offset a previous scan reported: a
    /// record's, a marker's, or where the records end) with `floor` the zxid
    /// of the record before it. `bytes` is still the whole segment.
    pub fn resume(bytes: &'a [u8], position: u64, floor: Option<u64>) -> SegmentScan<'a> {
        let position = usize::try_from(position).unwrap_or(usize::MAX);
        SegmentScan::start(bytes, position, floor, None)
    }

    fn start(
        bytes: &'a [u8],
        position: usize,
        floor: Option<u64>,
        batch_start: Option<usize>,
    ) -> SegmentScan<'a> {
        SegmentScan {
            bytes,
            position,
            floor,
            stop: None,
            markers: has_markers(bytes),
            batch_start,
            batch_records: 0,
            batch_first_zxid: None,
            committed: Committed {
                end: to_u64(position),
                first_zxid: None,
                last_zxid: floor,
                records: 0,
            },
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

    /// Offset just past the last valid record or marker read so far.
    pub fn data_end(&self) -> u64 {
        to_u64(self.position)
    }

    /// How far complete batches reach, as far as the scan has read. Its
    /// `last_zxid` starts as the floor the scan was given.
    pub fn committed(&self) -> Committed {
        self.committed
    }

    fn commit(&mut self, end: usize) {
        let committed = &mut self.committed;
        committed.end = to_u64(end);
        committed.last_zxid = self.floor;
        committed.records += self.batch_records;
        if committed.first_zxid.is_none() {
            committed.first_zxid = self.batch_first_zxid;
        }
        self.batch_start = Some(end);
        self.batch_records = 0;
        self.batch_first_zxid = None;
    }

    /// Checks a sound marker at the scan position against the batch read.
    fn accept_marker(&self, marker: &Marker) -> Result<(), BadFrame> {
        let mismatch = BadFrame::MarkerMismatch {
            last_zxid: marker.last_zxid,
            batch_bytes: marker.batch_bytes,
        };
        let read = match self.batch_start {
            // Known start: the marker closes exactly the records read.
            Some(start) => {
                if self.batch_records == 0 {
                    return Err(mismatch);
                }
                Some(to_u64(self.position - start))
            }
            // Resumed mid-batch: its start is unknown, but it cannot lie
            // before the first record.
            None => None,
        };
        let length_fits = match read {
            Some(read) => marker.batch_bytes == read,
            None => {
                marker.batch_bytes >= to_u64(FRAME_HEADER_BYTES)
                    && marker.batch_bytes <= to_u64(self.position.saturating_sub(HEADER_BYTES))
            }
        };
        if !length_fits || self.floor != Some(marker.last_zxid) {
            return Err(mismatch);
        }
        Ok(())
    }

    fn halt(&mut self, stop: ScanStop) -> Option<RecordRef<'a>> {
        self.stop = Some(stop);
        None
    }
}

impl<'a> Iterator for SegmentScan<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        loop {
            if self.stop.is_some() {
                return None;
            }
            let at = self.position;
            if self.markers && is_marker_at(self.bytes, at) {
                let checked = decode_marker(self.bytes, at)
                    .and_then(|marker| self.accept_marker(&marker).map(|()| marker));
                match checked {
                    Ok(_) => {
                        let end = at + MARKER_BYTES;
                        self.position = end;
                        self.commit(end);
                        continue;
                    }
                    Err(why) => {
                        let offset = to_u64(at);
                        return self.halt(ScanStop::Bad { offset, why });
                    }
                }
            }
            return match decode_record(self.bytes, at, self.floor) {
                Ok(Some((record, next))) => {
                    debug_assert!(next > at);
                    self.position = next;
                    self.floor = Some(record.zxid);
                    self.batch_records += 1;
                    self.batch_first_zxid.get_or_insert(record.zxid);
                    if !self.markers {
                        // Version 1: each record stands alone.
                        self.commit(next);
                    }
                    Some(record)
                }
                Ok(None) => {
                    let offset = to_u64(at);
                    if self.batch_records > 0 {
                        return self.halt(ScanStop::Bad {
                            offset,
                            why: BadFrame::NoMarker,
                        });
                    }
                    self.halt(ScanStop::End { offset })
                }
                Err(why) => {
                    let offset = to_u64(at);
                    self.halt(ScanStop::Bad { offset, why })
                }
            };
        }
    }
}

/// Looks for any valid record frame with a zxid above `floor` starting at
/// an offset in `from..until`: in a version 1 segment, evidence that a bad
/// frame before it is damage in the middle of the log rather than the torn
/// tail of an unfinished write. (A record's length field is non-zero, so no
/// record starts at or after the last non-zero byte: callers pass that as
/// `until`.) A checksum is computed only where a plausible length is found.
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
            if let Ok(Some((record, _))) = decode_record(bytes, at, floor) {
                return Some(record.offset);
            }
        }
        at += 1;
    }
    None
}

/// Whether `marker` closes an intact batch that starts at or after `from`:
/// record frames with zxids increasing above `floor`, back to back from the
/// batch start to the marker, the last with the marker's zxid.
fn intact_batch(bytes: &[u8], marker: &Marker, from: usize, floor: Option<u64>) -> bool {
    let (Ok(marker_at), Ok(batch_bytes)) = (
        usize::try_from(marker.offset),
        usize::try_from(marker.batch_bytes),
    ) else {
        return false;
    };
    let Some(start) = marker_at.checked_sub(batch_bytes) else {
        return false;
    };
    if start < from || start == marker_at {
        return false;
    }
    let mut at = start;
    let mut previous = floor;
    while at < marker_at {
        match decode_record(bytes, at, previous) {
            Ok(Some((record, next))) => {
                at = next;
                previous = Some(record.zxid);
            }
            _ => return false,
        }
    }
    at == marker_at && previous == Some(marker.last_zxid)
}

/// Looks for an intact committed batch (see `intact_batch`) that starts at
/// or after `from` and whose marker starts before `until`: in a version 2
/// segment, proof that damage before it is in a batch that was synced (the
/// writer starts a batch only after the previous one's fsync returned), so
/// it is corruption, not a torn write. Returns the marker's offset. Only a
/// marker tag makes it look further, so the search is cheap.
pub fn find_batch_after(
    bytes: &[u8],
    from: usize,
    until: usize,
    floor: Option<u64>,
) -> Option<u64> {
    let mut at = from;
    while at < until && at.saturating_add(MARKER_BYTES) <= bytes.len() {
        if is_marker_at(bytes, at) {
            if let Ok(marker) = decode_marker(bytes, at) {
                if intact_batch(bytes, &marker, from, floor) {
                    return Some(marker.offset);
                }
            }
        }
        at += 1;
    }
    None
}

/// What the tail of a segment looks like after its last committed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Only zeros follow the last committed record.
    Clean,
    /// What an unfinished write leaves: in version 2 a last batch without a
    /// sound marker, or damaged before it, and no intact batch after it; in
    /// version 1 garbage with no valid record after it. Everything from
    /// `offset` (the start of the unfinished batch, or in version 1 the bad
    /// frame) to `garbage_end` (one past the last non-zero byte) goes.
    Torn {
        offset: u64,
        garbage_end: u64,
        why: ScanStop,
    },
    /// Damage with an intact committed batch (version 1: a valid record)
    /// after it: damage in the middle. `offset` is the first bad frame's.
    Corrupt { offset: u64, why: ScanStop },
}

/// Everything `Wal::open` needs to know about one segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCheck {
    /// Committed records (version 1: valid records before the first bad one).
    pub records: u64,
    pub first_record_zxid: Option<u64>,
    pub last_zxid: Option<u64>,
    /// Offset one past the last committed batch: where appends go.
    pub data_end: u64,
    pub tail: Tail,
}

/// Scans a whole segment (header already decoded) and classifies its tail.
pub fn classify(bytes: &[u8], first_zxid: u64) -> SegmentCheck {
    let mut scan = SegmentScan::new(bytes, first_zxid);
    for _ in scan.by_ref() {}
    let data_end = scan.data_end();
    // `next()` returned None, so the scan has stopped.
    let stop = scan.stop().unwrap_or(ScanStop::End { offset: data_end });
    let committed = scan.committed();
    let floor = committed.last_zxid;
    // Version 1 commits every record, so there this is the first bad frame.
    let start = usize::try_from(committed.end).unwrap_or(bytes.len());
    let rest = bytes.get(start..).unwrap_or(&[]);
    let tail = match rest.iter().rposition(|b| *b != 0) {
        None => Tail::Clean,
        Some(last_nonzero) => {
            let garbage_end = start.saturating_add(last_nonzero).saturating_add(1);
            // What follows must start after the first bad frame, which lies
            // in the damaged batch (everything before it is intact).
            let bad = usize::try_from(stop.offset()).unwrap_or(bytes.len());
            let later = if scan.markers {
                find_batch_after(bytes, bad.saturating_add(1), garbage_end, floor)
            } else {
                find_record_after(bytes, bad.saturating_add(1), garbage_end, floor)
            };
            match later {
                Some(_) => Tail::Corrupt {
                    offset: stop.offset(),
                    why: stop,
                },
                None => Tail::Torn {
                    offset: committed.end,
                    garbage_end: to_u64(garbage_end),
                    why: stop,
                },
            }
        }
    };
    SegmentCheck {
        records: committed.records,
        first_record_zxid: committed.first_zxid,
        last_zxid: committed.last_zxid.filter(|_| committed.records > 0),
        data_end: committed.end,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(version: u32, first_zxid: u64) -> Vec<u8> {
        encode_header(SegmentHeader {
            version,
            database_id: 7,
            first_zxid,
        })
        .to_vec()
    }

    /// A version 1 segment: records, no markers.
    fn segment_v1(first_zxid: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut bytes = header(FORMAT_VERSION_1, first_zxid);
        for (zxid, payload) in records {
            encode_record(&mut bytes, *zxid, payload);
        }
        bytes
    }

    /// A version 2 segment: each inner slice is one committed batch.
    fn segment(first_zxid: u64, batches: &[&[(u64, &[u8])]]) -> Vec<u8> {
        let mut bytes = header(FORMAT_VERSION, first_zxid);
        for batch in batches {
            encode_batch(
                &mut bytes,
                batch.iter().map(|(zxid, payload)| (*zxid, *payload)),
            );
        }
        bytes
    }

    /// Every record the scan returns, the committed ones, and the tail.
    #[track_caller]
    fn check(bytes: &[u8], expected_zxids: &[u64], expected_committed: u64, expected_tail: &str) {
        let header = decode_header(bytes).expect("header");
        let zxids: Vec<u64> = SegmentScan::new(bytes, header.first_zxid)
            .map(|r| r.zxid)
            .collect();
        assert_eq!(zxids, expected_zxids, "records scanned");
        let check = classify(bytes, header.first_zxid);
        assert_eq!(check.records, expected_committed, "records committed");
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

    const RECORD: usize = FRAME_HEADER_BYTES + 3;

    /// The tail `check` expects for a torn write from `offset`: up to the
    /// last non-zero byte.
    fn torn(offset: usize, bytes: &[u8]) -> String {
        let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |at| at + 1);
        format!("torn {offset}..{end}")
    }

    // Both versions' headers round-trip; a damaged or unknown one is
    // refused, not misread.
    #[test]
    fn header_round_trip_and_damage() {
        for version in [FORMAT_VERSION, FORMAT_VERSION_1] {
            let header = SegmentHeader {
                version,
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
        let mut bytes = encode_header(SegmentHeader::new(1, 1));
        bytes[8] = 3;
        assert_eq!(decode_header(&bytes), Err(HeaderError::UnknownVersion(3)));
    }

    // Preallocated zeros after the last batch are the clean end.
    #[test]
    fn zeros_end_the_segment() {
        let mut bytes = segment(1, &[&[(1, b"a"), (2, b"")], &[(3, b"ccc")]]);
        bytes.resize(bytes.len() + 100, 0);
        check(&bytes, &[1, 2, 3], 3, "clean");
        let mut bytes = segment_v1(1, &[(1, b"a"), (2, b""), (3, b"ccc")]);
        bytes.resize(bytes.len() + 100, 0);
        check(&bytes, &[1, 2, 3], 3, "clean");
    }

    // Version 2: whatever is wrong with the last batch (no marker, a torn
    // record, a damaged marker, an earlier record lost while later ones and
    // the marker made it) it is a torn tail cut at the batch's start, and
    // the whole batch goes, intact records included.
    #[test]
    fn damaged_last_batch_is_torn() {
        let full = segment(1, &[&[(1, b"one")], &[(2, b"two"), (3, b"thr")]]);
        let batch = 32 + RECORD + MARKER_BYTES;
        let end = full.len();
        // Records complete, marker missing.
        let cut = &full[..end - MARKER_BYTES];
        check(cut, &[1, 2, 3], 1, &torn(batch, cut));
        // Marker cut short, or one byte of it wrong.
        let cut = &full[..end - 3];
        check(cut, &[1, 2, 3], 1, &torn(batch, cut));
        let mut flipped = full.clone();
        flipped[end - 20] ^= 0x01;
        check(&flipped, &[1, 2, 3], 1, &torn(batch, &flipped));
        // A record cut short.
        let cut = &full[..batch + 5];
        check(cut, &[1], 1, &torn(batch, cut));
        // The first record of the batch lost (zeros), the rest on disk.
        let mut reordered = full.clone();
        reordered[batch..batch + RECORD].fill(0);
        check(&reordered, &[1], 1, &torn(batch, &reordered));
        // The middle of a record lost.
        let mut reordered = full.clone();
        reordered[batch + RECORD + 17] = 0;
        check(&reordered, &[1, 2], 1, &torn(batch, &reordered));
    }

    // Version 2: damage in a batch that an intact batch follows is
    // corruption at the first bad frame, a marker's included.
    #[test]
    fn damage_before_an_intact_batch_is_corrupt() {
        let full = segment(1, &[&[(1, b"one"), (2, b"two")], &[(3, b"thr")]]);
        let marker = 32 + 2 * RECORD;
        let mut flipped = full.clone();
        flipped[32 + RECORD + 17] ^= 0x10; // payload of record 2
        check(&flipped, &[1], 0, &format!("corrupt {}", 32 + RECORD));
        let mut flipped = full.clone();
        flipped[marker + 9] ^= 0x10; // the marker's last zxid
        check(&flipped, &[1, 2], 0, &format!("corrupt {marker}"));
        let mut lost = full.clone();
        lost[marker..marker + MARKER_BYTES].fill(0); // the marker's page lost
        check(&lost, &[1, 2], 0, &format!("corrupt {marker}"));
    }

    // A marker with a sound checksum that describes other records is not
    // taken: it must close exactly the batch read.
    #[test]
    fn marker_must_match_its_batch() {
        let mut bytes = header(FORMAT_VERSION, 1);
        encode_record(&mut bytes, 1, b"one");
        encode_record(&mut bytes, 2, b"two");
        encode_marker(&mut bytes, 2, RECORD); // covers only record 2
        check(&bytes, &[1, 2], 0, &torn(32, &bytes));
        let mut scan = SegmentScan::new(&bytes, 1);
        for _ in scan.by_ref() {}
        assert_eq!(
            scan.stop(),
            Some(ScanStop::Bad {
                offset: to_u64(32 + 2 * RECORD),
                why: BadFrame::MarkerMismatch {
                    last_zxid: 2,
                    batch_bytes: to_u64(RECORD)
                }
            })
        );
        let mut bytes = header(FORMAT_VERSION, 1);
        encode_record(&mut bytes, 1, b"one");
        encode_marker(&mut bytes, 9, RECORD); // another last zxid
        check(&bytes, &[1], 0, &torn(32, &bytes));
    }

    // A resumed scan (the reader's way) passes markers it meets.
    #[test]
    fn resume_passes_markers() {
        let bytes = segment(1, &[&[(1, b"one")], &[(2, b"two"), (3, b"thr")]]);
        let second = to_u64(32 + RECORD);
        let zxids: Vec<u64> = SegmentScan::resume(&bytes, second, Some(1))
            .map(|r| r.zxid)
            .collect();
        assert_eq!(zxids, [2, 3]);
        let mut scan = SegmentScan::resume(&bytes, second, Some(1));
        assert_eq!(scan.next().map(|r| r.zxid), Some(2));
        let mut scan = SegmentScan::resume(&bytes, scan.data_end(), scan.floor());
        assert_eq!(scan.next().map(|r| r.zxid), Some(3));
        assert_eq!(scan.next(), None);
        assert_eq!(
            scan.stop(),
            Some(ScanStop::End {
                offset: to_u64(bytes.len())
            })
        );
    }

    // Version 1 keeps its rules: a partial last frame is a torn tail (whole
    // records before it stay), a damaged frame followed by a good one is
    // corruption, and a marker tag is just a bad length.
    #[test]
    fn version_1_torn_versus_corrupt() {
        let full = segment_v1(1, &[(1, b"one"), (2, b"two"), (3, b"three")]);
        let third = 32 + 2 * RECORD;
        check(
            &full[..full.len() - 2],
            &[1, 2],
            2,
            &format!("torn {third}..{}", full.len() - 2),
        );
        let mut flipped = full.clone();
        flipped[32 + 16 + 1] ^= 0x10; // payload of record 1
        check(&flipped, &[], 0, "corrupt 32");
        let mut marked = full.clone();
        encode_marker(&mut marked, 3, full.len() - 32);
        check(&marked, &[1, 2, 3], 3, &torn(full.len(), &marked));
    }

    // zxids must increase and not precede the header's first zxid.
    #[test]
    fn zxid_order_is_checked() {
        let bytes = segment_v1(5, &[(5, b"x"), (5, b"y")]);
        check(&bytes, &[5], 1, "torn 49..66");
        let bytes = segment_v1(5, &[(4, b"x")]);
        check(&bytes, &[], 0, "torn 32..49");
        let bytes = segment(5, &[&[(5, b"x"), (5, b"y")]]);
        check(&bytes, &[5], 0, &torn(32, &bytes));
        let bytes = segment(5, &[&[(5, b"x")], &[(4, b"y")]]);
        check(&bytes, &[5], 1, &torn(32 + 17 + MARKER_BYTES, &bytes));
    }

    fn batches_strategy() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
        proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..48), 1..4),
            2..6,
        )
    }

    /// A version 2 segment of these payloads, zxids 1, 2, ...; and where
    /// each batch starts and ends.
    fn build(batches: &[Vec<Vec<u8>>]) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut bytes = header(FORMAT_VERSION, 1);
        let mut spans = Vec::new();
        let mut zxid = 0u64;
        for batch in batches {
            let start = bytes.len();
            encode_batch(
                &mut bytes,
                batch.iter().map(|payload| {
                    zxid += 1;
                    (zxid, payload.as_slice())
                }),
            );
            spans.push((start, bytes.len()));
        }
        (bytes, spans)
    }

    proptest! {
        // Arbitrary bytes as a segment, with or without a real header of
        // either version, never panic the scan or the classifier.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            first in any::<u64>(),
            version in 0u32..3,
        ) {
            let bytes = match version {
                0 => bytes,
                v => { let mut b = header(v, first); b.extend_from_slice(&bytes); b }
            };
            let _ = decode_header(&bytes);
            let count = SegmentScan::new(&bytes, first).count();
            prop_assert!(count <= bytes.len() / FRAME_HEADER_BYTES);
            let _ = classify(&bytes, first);
            let _ = find_batch_after(&bytes, 0, bytes.len(), None);
        }

        // Valid records with arbitrary damage after them: the valid prefix
        // still reads back (version 1 and 2), and in version 2 every
        // complete batch stays committed; lengths in the damage never
        // allocate.
        #[test]
        fn valid_prefix_survives_garbage(
            batches in batches_strategy(),
            garbage in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let (mut bytes, _) = build(&batches);
            bytes.extend_from_slice(&garbage);
            let total: usize = batches.iter().map(Vec::len).sum();
            let found: Vec<u64> = SegmentScan::new(&bytes, 1).map(|r| r.zxid).collect();
            prop_assert!(found.len() >= total);
            for (i, zxid) in found.iter().take(total).enumerate() {
                prop_assert_eq!(*zxid, i as u64 + 1);
            }
            prop_assert!(classify(&bytes, 1).records >= total as u64);

            let mut old = header(FORMAT_VERSION_1, 1);
            for (i, payload) in batches.iter().flatten().enumerate() {
                encode_record(&mut old, i as u64 + 1, payload);
            }
            old.extend_from_slice(&garbage);
            prop_assert!(SegmentScan::new(&old, 1).count() >= total);
        }

        // The crash model of a power loss during the last batch's write:
        // each of its bytes reached the disk or stayed zero, in any pattern.
        // Unless every byte made it, the batch is a torn tail cut at its
        // start and every earlier batch is kept.
        #[test]
        fn any_loss_in_the_last_batch_is_torn(
            batches in batches_strategy(),
            lost in proptest::collection::vec((any::<proptest::sample::Index>(), 1usize..64), 1..4),
        ) {
            let (full, spans) = build(&batches);
            let (start, end) = *spans.last().expect("batches");
            let mut bytes = full.clone();
            for (at, len) in &lost {
                let from = start + at.index(end - start);
                let to = (from + len).min(end);
                bytes[from..to].fill(0);
            }
            let kept: usize = batches.iter().rev().skip(1).map(Vec::len).sum();
            let check = classify(&bytes, 1);
            if bytes == full {
                prop_assert_eq!(check.tail, Tail::Clean);
            } else {
                prop_assert_eq!(check.records, kept as u64);
                prop_assert_eq!(check.data_end, to_u64(start));
                if bytes[start..].iter().all(|b| *b == 0) {
                    // None of it reached the disk: the clean end.
                    prop_assert_eq!(check.tail, Tail::Clean);
                } else {
                    let torn = matches!(check.tail, Tail::Torn { offset, .. } if offset == to_u64(start));
                    prop_assert!(torn, "{:?}", check.tail);
                }
            }
        }

        // One changed byte in any batch but the last is corruption at the
        // frame holding it (or before: a damaged length misframes the rest).
        #[test]
        fn damage_before_the_last_batch_is_corrupt(
            batches in batches_strategy(),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let (mut bytes, spans) = build(&batches);
            let last_start = spans[spans.len() - 1].0;
            let target = 32 + at.index(last_start - 32);
            bytes[target] ^= flip;
            let check = classify(&bytes, 1);
            let batch = spans.iter().position(|(s, e)| (*s..*e).contains(&target)).expect("in a batch");
            let kept: usize = batches.iter().take(batch).map(Vec::len).sum();
            prop_assert_eq!(check.records, kept as u64);
            match check.tail {
                Tail::Corrupt { offset, .. } => {
                    prop_assert!(offset >= to_u64(spans[batch].0) && offset <= to_u64(target));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
