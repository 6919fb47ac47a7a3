//! What is on disk in a data directory, as facts both tools act on: each
//! snapshot (valid, or corrupt and why), each WAL segment (its records, zxid
//! range and how its records end), a walk over the log that reports every
//! intact record and every damaged spot (looking past damage), and the log a
//! repair keeps for a given snapshot (`Salvage`).
//!
//! Read-only: nothing here writes, so it is safe beside a live server. Not a
//! policy: `snaprepair` decides what counts as a problem and what to do.
//!
//! Invariant: a `Salvage` keeps only records that passed their crc32c check,
//! strictly increasing in zxid, starting no later than the snapshot needs,
//! with no damaged spot between the first needed zxid and the last kept
//! record (damage is stepped over only when the record after it shows the
//! damaged bytes held nothing the snapshot lacks).

use std::path::{Path, PathBuf};

use wal::format::{self, BadFrame, ScanStop, Tail};
use wal::SegmentFile;

/// The file `engine::native` keeps the database id in, inside `dataDir`.
pub const DATABASE_ID_FILE: &str = "database_id";
/// The server's record of the zxid the log was cut behind (hex), written
/// durably before any purge or install drops segments; 0 in a directory
/// whose log was never cut, absent in one from before the marker.
pub const LOG_CUT_FILE: &str = "log_cut";

/// A short human reason for a frame that is not a record.
pub fn describe_stop(stop: &ScanStop) -> String {
    match stop {
        ScanStop::End { .. } => "non-zero bytes after the end of the records".to_string(),
        ScanStop::Bad { why, .. } => match why {
            BadFrame::ShortHeader => "truncated frame header".to_string(),
            BadFrame::BadLength(len) => format!("impossible length {len}"),
            BadFrame::PastEnd(len) => format!("length {len} runs past the end of the file"),
            BadFrame::BadChecksum => "crc32c mismatch".to_string(),
            BadFrame::ZxidOrder { zxid, previous } => {
                format!("zxid 0x{zxid:x} does not follow 0x{previous:x}")
            }
            BadFrame::BadMarker => "damaged batch commit marker".to_string(),
            BadFrame::MarkerMismatch { last_zxid, .. } => {
                format!("commit marker for 0x{last_zxid:x} does not match its batch")
            }
            BadFrame::NoMarker => "batch ends without its commit marker".to_string(),
        },
    }
}

/// Reads the hex database id `engine::native` wrote; `Ok(None)` if absent.
pub fn read_database_id(data_dir: &Path) -> Result<Option<u64>, String> {
    let path = data_dir.join(DATABASE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16)
            .map(Some)
            .map_err(|_| format!("{}: not a database id: {:?}", path.display(), text.trim())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// The zxid `log_cut` says the log was cut behind, if the file exists.
pub fn read_log_cut(data_dir: &Path) -> Result<Option<u64>, String> {
    let path = data_dir.join(LOG_CUT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16)
            .map(Some)
            .map_err(|_| format!("{}: not a zxid: {:?}", path.display(), text.trim())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// One snapshot file and what a full check of it found.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    /// The zxid its name claims.
    pub name_zxid: u64,
    pub state: SnapshotState,
}

#[derive(Debug, Clone)]
pub enum SnapshotState {
    Valid {
        start_zxid: u64,
        end_zxid: u64,
        database_id: u64,
        entries: u64,
    },
    Corrupt(String),
}

impl SnapshotInfo {
    /// (start, end) zxid of a valid snapshot.
    pub fn range(&self) -> Option<(u64, u64)> {
        match self.state {
            SnapshotState::Valid {
                start_zxid,
                end_zxid,
                ..
            } => Some((start_zxid, end_zxid)),
            SnapshotState::Corrupt(_) => None,
        }
    }
}

/// Every snapshot in `dir`, newest first, each fully verified.
pub fn snapshots(dir: &Path) -> Result<Vec<SnapshotInfo>, String> {
    snapshots_with(dir, &mut |_| {})
}

/// `snapshots`, telling `verified` the size of each file once checked (for
/// progress lines).
pub fn snapshots_with(
    dir: &Path,
    verified: &mut dyn FnMut(u64),
) -> Result<Vec<SnapshotInfo>, String> {
    let listed = snapshot::list(dir).map_err(|error| error.to_string())?;
    Ok(listed
        .into_iter()
        .map(|(name_zxid, path)| {
            let state = match snapshot::SnapshotReader::verify(&path) {
                Ok(summary) => SnapshotState::Valid {
                    start_zxid: summary.header.start_zxid,
                    end_zxid: summary.trailer.end_zxid,
                    database_id: summary.header.database_id,
                    entries: summary.trailer.entry_count,
                },
                Err(error) => SnapshotState::Corrupt(error.to_string()),
            };
            verified(std::fs::metadata(&path).map_or(0, |metadata| metadata.len()));
            SnapshotInfo {
                path,
                name_zxid,
                state,
            }
        })
        .collect())
}

/// How a segment's records end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Only zeros follow the last record.
    Clean,
    /// What an unfinished write leaves (`wal::format::Tail::Torn`): nothing
    /// intact follows the bad frame (a batch, or in version 1 a record).
    Torn { offset: u64, why: String },
    /// A bad frame that intact data follows: damage in the middle.
    Corrupt { offset: u64, why: String },
    /// The header is damaged, names another zxid, or another database.
    BadHeader(String),
}

impl SegmentEnd {
    pub fn bad_offset(&self) -> Option<u64> {
        match self {
            SegmentEnd::Clean => None,
            SegmentEnd::Torn { offset, .. } | SegmentEnd::Corrupt { offset, .. } => Some(*offset),
            SegmentEnd::BadHeader(_) => Some(0),
        }
    }
}

/// One WAL segment and what a full scan of it found.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub name_zxid: u64,
    pub database_id: Option<u64>,
    pub records: u64,
    pub first_zxid: Option<u64>,
    pub last_zxid: Option<u64>,
    pub bytes: u64,
    pub end: SegmentEnd,
}

/// Scans one segment file. `expected_database_id`, when known, is checked
/// against the header. I/O errors are errors; damage is a `SegmentEnd`.
pub fn segment(
    path: &Path,
    name_zxid: Option<u64>,
    expected_database_id: Option<u64>,
) -> Result<SegmentInfo, String> {
    let file = SegmentFile::open(path).map_err(|error| error.to_string())?;
    let bytes = u64::try_from(file.bytes().len()).unwrap_or(u64::MAX);
    let mut info = SegmentInfo {
        path: path.to_path_buf(),
        name_zxid: name_zxid.unwrap_or(0),
        database_id: None,
        records: 0,
        first_zxid: None,
        last_zxid: None,
        bytes,
        end: SegmentEnd::Clean,
    };
    let header = match format::decode_header(file.bytes()) {
        Ok(header) => header,
        Err(error) => {
            info.end = SegmentEnd::BadHeader(format!("damaged header ({error:?})"));
            return Ok(info);
        }
    };
    info.database_id = Some(header.database_id);
    if name_zxid.is_none() {
        info.name_zxid = header.first_zxid;
    }
    if header.first_zxid != info.name_zxid {
        info.end = SegmentEnd::BadHeader(format!(
            "header says first zxid 0x{:x}, the name 0x{:x}",
            header.first_zxid, info.name_zxid
        ));
        return Ok(info);
    }
    if let Some(expected) = expected_database_id {
        if header.database_id != expected {
            info.end = SegmentEnd::BadHeader(format!(
                "belongs to database {:016x}, expected {expected:016x}",
                header.database_id
            ));
            return Ok(info);
        }
    }
    let check = format::classify(file.bytes(), header.first_zxid);
    info.records = check.records;
    info.first_zxid = check.first_record_zxid;
    info.last_zxid = check.last_zxid;
    info.end = match check.tail {
        Tail::Clean => SegmentEnd::Clean,
        Tail::Torn { offset, why, .. } => SegmentEnd::Torn {
            offset,
            why: describe_stop(&why),
        },
        Tail::Corrupt { offset, why } => SegmentEnd::Corrupt {
            offset,
            why: describe_stop(&why),
        },
    };
    Ok(info)
}

/// Every segment in `log_dir`, oldest first.
pub fn segments(log_dir: &Path, database_id: Option<u64>) -> Result<Vec<SegmentInfo>, String> {
    segments_with(log_dir, database_id, &mut |_| {})
}

/// `segments`, telling `scanned` the size of each once scanned.
pub fn segments_with(
    log_dir: &Path,
    database_id: Option<u64>,
    scanned: &mut dyn FnMut(u64),
) -> Result<Vec<SegmentInfo>, String> {
    let listed = wal::segments(log_dir).map_err(|error| error.to_string())?;
    listed
        .iter()
        .map(|(zxid, path)| {
            let info = segment(path, Some(*zxid), database_id)?;
            scanned(info.bytes);
            Ok(info)
        })
        .collect()
}

/// Where the salvageable log stops and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Index into the segment list.
    pub segment: usize,
    pub file: PathBuf,
    pub offset: u64,
    pub why: String,
}

/// What a walk over the log finds, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An intact record (its crc32c checked) at `offset` in segment `segment`.
    Record {
        segment: usize,
        offset: u64,
        zxid: u64,
    },
    /// Bytes that are not a record where one should be. A torn tail of the
    /// newest segment is not reported: it held nothing acknowledged.
    Damage(Damage),
}

/// Walks every segment in order and reports each intact record and each
/// damaged spot, looking past damage for further intact records (so what a
/// repair gives up can be counted, and damage before the part of the log a
/// snapshot needs can be stepped over).
pub fn walk(segments: &[SegmentInfo], mut visit: impl FnMut(Event)) -> Result<(), String> {
    let count = segments.len();
    for (index, info) in segments.iter().enumerate() {
        let newest = index + 1 == count;
        let damage = |offset: u64, why: String| {
            Event::Damage(Damage {
                segment: index,
                file: info.path.clone(),
                offset,
                why,
            })
        };
        let (resume_at, why) = match &info.end {
            SegmentEnd::BadHeader(why) => {
                visit(damage(0, why.clone()));
                continue;
            }
            SegmentEnd::Clean => (None, None),
            SegmentEnd::Torn { .. } if newest => (None, None),
            SegmentEnd::Torn { offset, why } => {
                (None, Some((*offset, format!("torn record: {why}"))))
            }
            SegmentEnd::Corrupt { offset, why } => (Some(*offset), Some((*offset, why.clone()))),
        };
        let file = SegmentFile::open(&info.path).map_err(|error| error.to_string())?;
        let bytes = file.bytes();
        let header = format::decode_header(bytes).map_err(|error| {
            format!(
                "{}: header changed while reading: {error:?}",
                info.path.display()
            )
        })?;
        let mut scan = format::SegmentScan::new(bytes, header.first_zxid);
        for record in scan.by_ref() {
            visit(Event::Record {
                segment: index,
                offset: record.offset,
                zxid: record.zxid,
            });
        }
        if let Some((offset, why)) = why {
            visit(damage(offset, why));
        }
        let Some(offset) = resume_at else {
            continue;
        };
        // Past the damage: every place a valid frame starts, resuming a scan
        // there, until only zeros remain.
        let until = bytes.iter().rposition(|b| *b != 0).map_or(0, |at| at + 1);
        let mut from = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .max(format::HEADER_BYTES)
            .saturating_add(1);
        let mut floor = None;
        while from < until {
            let Some(at) = format::find_record_after(bytes, from, until, floor) else {
                break;
            };
            let mut scan = format::SegmentScan::resume(bytes, at, floor);
            for record in scan.by_ref() {
                visit(Event::Record {
                    segment: index,
                    offset: record.offset,
                    zxid: record.zxid,
                });
            }
            floor = scan.floor();
            let stop = scan.stop().map_or(at, |stop| stop.offset());
            from = usize::try_from(stop)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
        }
    }
    Ok(())
}

/// The log a repair keeps for a snapshot that reflects everything up to
/// `after`: the longest run of intact, increasing records with zxids above
/// it, and what follows the run.
#[derive(Debug, Clone, Default)]
pub struct Salvage {
    pub after: u64,
    /// Where the kept records are: (segment index, offset), in zxid order.
    pub kept: Vec<(usize, u64)>,
    /// First and last kept zxid.
    pub first_zxid: Option<u64>,
    pub last_zxid: Option<u64>,
    /// The last intact zxid at or below `after` seen before any damage.
    pub last_before: Option<u64>,
    /// The damage that ends the kept run, if any.
    pub damage: Option<Damage>,
    /// Damage stepped over because it lies wholly at or below `after`: the
    /// next intact record is `after + 1` or lower.
    pub harmless: Vec<Damage>,
    /// zxids of the intact records after `damage`: lost unless someone mends
    /// the damaged bytes by hand.
    pub lost_zxids: Vec<u64>,
    /// Damage seen before any kept record, not yet known to be harmless.
    pending: Vec<Damage>,
    previous: Option<u64>,
}

/// A range of zxids a repair gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost {
    pub low: u64,
    pub high: u64,
    pub count: u64,
}

impl Salvage {
    pub fn new(after: u64) -> Salvage {
        Salvage {
            after,
            ..Salvage::default()
        }
    }

    /// Takes the next event of a walk.
    pub fn event(&mut self, event: Event) {
        match event {
            Event::Damage(damage) => {
                if self.damage.is_some() {
                    return;
                }
                if self.kept.is_empty() {
                    // Harmless if the next record shows the damaged bytes
                    // held nothing above `after`; decided there.
                    self.pending.push(damage);
                } else {
                    self.damage = Some(damage);
                }
            }
            Event::Record {
                segment,
                offset,
                zxid,
            } => {
                if self.damage.is_some() {
                    self.lost_zxids.push(zxid);
                    return;
                }
                if self.previous.is_some_and(|previous| zxid <= previous) {
                    let previous = self.previous.unwrap_or(0);
                    self.damage = Some(Damage {
                        segment,
                        file: PathBuf::new(),
                        offset,
                        why: format!("zxid 0x{zxid:x} does not follow 0x{previous:x}"),
                    });
                    self.lost_zxids.push(zxid);
                    return;
                }
                self.previous = Some(zxid);
                if !self.pending.is_empty() {
                    let next_needed = self.after.saturating_add(1);
                    if zxid > next_needed && !crate::zxid_follows(self.after, zxid) {
                        // The first damaged spot may have held next_needed.
                        self.damage = self.pending.drain(..).next();
                        self.lost_zxids.push(zxid);
                        return;
                    }
                    self.harmless.append(&mut self.pending);
                }
                if zxid > self.after {
                    self.kept.push((segment, offset));
                    self.first_zxid.get_or_insert(zxid);
                    self.last_zxid = Some(zxid);
                } else {
                    self.last_before = Some(zxid);
                }
            }
        }
    }

    /// Ends the walk: damage with nothing after it still ends the log.
    pub fn finish(&mut self) {
        if let Some(first) = self.pending.drain(..).next() {
            self.damage.get_or_insert(first);
        }
    }

    /// Number of kept records.
    pub fn records(&self) -> u64 {
        u64::try_from(self.kept.len()).unwrap_or(u64::MAX)
    }

    /// The zxids lost when the state is rebuilt from a snapshot reflecting
    /// everything up to `reflected` plus the kept records: from the one after
    /// what is reached (the damaged record) to the last intact one seen after
    /// the damage. Within one epoch zxids are consecutive, so the count is
    /// exact; across epochs it is the intact records plus the damaged one.
    /// `None`: nothing lost.
    pub fn lost(&self, reflected: u64) -> Option<Lost> {
        self.damage.as_ref()?;
        let reached = self
            .last_zxid
            .or(self.last_before)
            .unwrap_or(0)
            .max(reflected);
        let above: Vec<u64> = self
            .lost_zxids
            .iter()
            .copied()
            .filter(|zxid| *zxid > reached)
            .collect();
        let high = above.iter().copied().max()?;
        let low = reached.saturating_add(1).min(high);
        let count = if low >> 32 == high >> 32 {
            high - low + 1
        } else {
            u64::try_from(above.len())
                .unwrap_or(u64::MAX)
                .saturating_add(1)
        };
        Some(Lost { low, high, count })
    }
}

/// The kept log for a snapshot reflecting everything up to `after` (0: no
/// snapshot). Damage entries carry their file names.
pub fn salvage(segments: &[SegmentInfo], after: u64) -> Result<Salvage, String> {
    let mut salvage = Salvage::new(after);
    walk(segments, |event| salvage.event(event))?;
    salvage.finish();
    if let Some(damage) = salvage.damage.as_mut() {
        if let Some(info) = segments.get(damage.segment) {
            damage.file = info.path.clone();
        }
    }
    Ok(salvage)
}

/// If the server committed a whole-state install (Zab SNAP) in `dir` but did
/// not finish it, the sentence to tell the user: the files beside it are
/// the state being replaced, so checking or repairing them would mislead.
pub fn pending_install_notice(dir: &Path) -> Option<String> {
    let ready = dir.join("install.ready");
    ready.is_dir().then(|| {
        format!(
            "{} holds a state install the server committed but did not finish; the \
             snapshots and log beside it are the state it replaces. Start the server once \
             (it finishes the install at start-up), then run this tool again.",
            ready.display()
        )
    })
}

/// The RocksDB database of a RocksDB-backend data directory
/// (`storage.backend=rocksdb`): `dir` itself if it is one, else
/// `dir/rocksdb` if that is one. `None` for anything else.
pub fn rocksdb_dir(dir: &Path) -> Option<PathBuf> {
    // Every RocksDB database has `CURRENT` naming its MANIFEST; a copy
    // made by RocksDB's checkpoint has no `IDENTITY` until first opened.
    let is_rocksdb = |d: &Path| {
        let current = d.join("CURRENT");
        current.is_file()
            && (d.join("IDENTITY").is_file()
                || std::fs::read(&current).is_ok_and(|text| text.starts_with(b"MANIFEST-")))
    };
    if is_rocksdb(dir) {
        return Some(dir.to_path_buf());
    }
    let nested = dir.join("rocksdb");
    is_rocksdb(&nested).then_some(nested)
}

/// If `dir` holds a RocksDB-backend data directory and these tools were
/// built without the `rocksdb` feature, the sentence to tell the user.
pub fn rocksdb_notice(dir: &Path) -> Option<String> {
    let rocks_dir = rocksdb_dir(dir)?;
    Some(format!(
        "{} is a RocksDB data directory (storage.backend=rocksdb), and these tools were built \
         without RocksDB: rebuild them with `cargo build --release -p tools --features rocksdb` \
         (links Debian's librocksdb-dev) to read its log and checkpoint. RocksDB's own `ldb` \
         (Debian package rocksdb-tools) shows raw bytes only, e.g. \
         `ldb --db={} --column_family=log scan --hex`.",
        rocks_dir.display(),
        rocks_dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(zxid: u64) -> Event {
        Event::Record {
            segment: 0,
            offset: zxid * 100,
            zxid,
        }
    }

    fn damage(offset: u64) -> Event {
        Event::Damage(Damage {
            segment: 0,
            file: PathBuf::from("log"),
            offset,
            why: "crc".into(),
        })
    }

    fn run(after: u64, events: Vec<Event>) -> Salvage {
        let mut salvage = Salvage::new(after);
        events.into_iter().for_each(|event| salvage.event(event));
        salvage.finish();
        salvage
    }

    #[test]
    fn clean_log_keeps_everything_after_the_snapshot() {
        let salvage = run(3, (1..=9).map(record).collect());
        assert_eq!(salvage.records(), 6);
        assert_eq!((salvage.first_zxid, salvage.last_zxid), (Some(4), Some(9)));
        assert_eq!(salvage.lost(3), None);
    }

    #[test]
    fn damage_ends_the_kept_run_and_counts_what_follows() {
        let events = vec![record(1), record(2), damage(300), record(4), record(5)];
        let salvage = run(0, events);
        assert_eq!(salvage.last_zxid, Some(2));
        assert_eq!(salvage.lost_zxids, vec![4, 5]);
        let lost = |low, high, count| Some(Lost { low, high, count });
        assert_eq!(salvage.lost(0), lost(3, 5, 3));
        // A snapshot that already reflects up to 4 keeps more.
        assert_eq!(salvage.lost(4), lost(5, 5, 1));
        assert_eq!(salvage.lost(5), None);
    }

    #[test]
    fn damage_below_the_snapshot_is_stepped_over() {
        // The record after the damage is 4 = after + 1: the damaged bytes
        // held zxids up to 3 at most, which the snapshot reflects.
        let events = vec![record(1), damage(200), record(4), record(5)];
        let salvage = run(3, events);
        assert!(salvage.damage.is_none());
        assert_eq!(salvage.harmless.len(), 1);
        assert_eq!(salvage.records(), 2);
        // Without the snapshot the same damage loses 2..=5.
        let events = vec![record(1), damage(200), record(4), record(5)];
        let salvage = run(0, events);
        assert_eq!(
            salvage.lost(0),
            Some(Lost {
                low: 2,
                high: 5,
                count: 4
            })
        );
    }

    #[test]
    fn the_first_of_several_damaged_spots_is_where_loss_starts() {
        let events = vec![record(1), damage(200), damage(300), record(6)];
        let salvage = run(3, events);
        assert_eq!(salvage.damage.as_ref().map(|d| d.offset), Some(200));
        assert_eq!(
            salvage.lost(3),
            Some(Lost {
                low: 4,
                high: 6,
                count: 3
            })
        );
    }

    #[test]
    fn records_out_of_order_are_damage() {
        let salvage = run(0, vec![record(1), record(2), record(2), record(3)]);
        assert_eq!(salvage.last_zxid, Some(2));
        assert!(salvage.damage.is_some());
    }

    #[test]
    fn damage_at_the_end_loses_nothing_intact() {
        let salvage = run(0, vec![record(1), damage(200)]);
        assert!(salvage.damage.is_some());
        assert_eq!(salvage.lost(0), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damage anywhere (header included) never panics, and whatever is
        /// kept is intact, increasing and above the snapshot's zxid.
        #[test]
        fn damaged_segments_salvage_safely(
            flips in proptest::collection::vec((0usize..2048, 0u8..=255), 0..6),
            cut in proptest::option::of(0usize..2048),
            after in 0u64..40,
        ) {
            let mut bytes = format::encode_header(format::SegmentHeader::new(7, 1)).to_vec();
            // Batches of three records, each closed by its commit marker.
            for first in (1..=40u64).step_by(3) {
                let payloads: Vec<(u64, [u8; 30])> = (first..=(first + 2).min(40))
                    .map(|zxid| (zxid, [u8::try_from(zxid).unwrap_or(0); 30]))
                    .collect();
                format::encode_batch(&mut bytes, payloads.iter().map(|(zxid, p)| (*zxid, &p[..])));
            }
            bytes.resize(bytes.len() + 256, 0);
            for (at, value) in &flips {
                if let Some(byte) = bytes.get_mut(*at) {
                    *byte ^= *value;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut);
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("log.0000000000000001");
            std::fs::write(&path, &bytes).expect("write");
            let info = segment(&path, Some(1), Some(7)).expect("readable");
            let salvage = salvage(&[info], after).expect("walks");
            let mut previous = after;
            for (_, offset) in &salvage.kept {
                let at = usize::try_from(*offset).expect("fits");
                let mut scan = format::SegmentScan::resume(&bytes, *offset, None);
                let record = scan.next().expect("a kept record reads back");
                proptest::prop_assert!(record.zxid > previous);
                proptest::prop_assert!(at >= format::HEADER_BYTES);
                previous = record.zxid;
            }
            if let Some(lost) = salvage.lost(after) {
                proptest::prop_assert!(lost.low <= lost.high);
                proptest::prop_assert!(lost.low > salvage.last_zxid.unwrap_or(after).max(after));
            }
        }
    }
}
