//! Reading the log: `SegmentFile` maps one segment read-only (for `open`'s
//! checks and for `zk-logdump`), `Reader` iterates records from a zxid across
//! all segments. Files are mapped with `memmap2`, never loaded whole.
//!
//! Not a writer: nothing here changes a file, so a `Reader` is safe beside a
//! live `Wal`. It may see records that are written but not yet durable (the
//! records of a batch come before its commit marker), and a half-written
//! record at the end of the newest segment, which it treats as the end;
//! callers that need durability bound the read by `Wal::durable()`. After
//! `Wal::open` no unfinished batch is left to see.
//!
//! Invariant: every record handed out passed its crc32c check and has a zxid
//! above the one before it.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::dir;
use crate::format::{self, ScanStop, SegmentCheck, SegmentHeader, SegmentScan};
use crate::{Error, Record};

/// One segment file mapped read-only.
pub struct SegmentFile {
    path: PathBuf,
    /// None for an empty file, which cannot be mapped.
    map: Option<Mmap>,
}

impl SegmentFile {
    pub fn open(path: &Path) -> Result<SegmentFile, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the WAL never shrinks a segment file (`open` writes
            // zeros over a torn tail, truncation renames a new file over the
            // old name, purge unlinks: a mapped inode stays whole), so the
            // mapped range stays backed. Another process truncating the file
            // would break this; none should.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?)
        };
        Ok(SegmentFile {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file, header included.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The decoded header (either version); a damaged one is corruption at
    /// offset 0.
    pub fn header(&self) -> Result<SegmentHeader, Error> {
        format::decode_header(self.bytes()).map_err(|_| Error::Corrupt {
            file: self.path.clone(),
            offset: 0,
        })
    }

    /// Records in file order with their offsets; `stop()` on the scan then
    /// tells where and why the records end (the first bad offset, if any).
    pub fn scan(&self) -> Result<SegmentScan<'_>, Error> {
        let header = self.header()?;
        Ok(SegmentScan::new(self.bytes(), header.first_zxid))
    }

    /// Scans the whole segment and classifies what follows its last
    /// committed batch (version 1: its last valid record).
    pub fn check(&self) -> Result<SegmentCheck, Error> {
        let header = self.header()?;
        Ok(format::classify(self.bytes(), header.first_zxid))
    }
}

/// Iterates records with zxid >= a starting zxid, across segments, in order.
/// Yields `Err(Corrupt)` (and then stops) on a bad record in any segment but
/// the newest; in the newest, a bad record ends the iteration quietly since
/// it may be a write in progress.
pub struct Reader {
    segments: Vec<(u64, PathBuf)>,
    /// Index in `segments` of the segment being read.
    index: usize,
    current: Option<SegmentFile>,
    position: u64,
    floor: Option<u64>,
    from_zxid: u64,
    done: bool,
}

impl Reader {
    /// A reader of the segments in `dir` as listed now, from `from_zxid`.
    /// Segments created after this call are not seen. If older segments were
    /// purged, the first record may be above `from_zxid`: callers that need
    /// the log to reach back that far check the first zxid they get.
    pub fn open(dir: &Path, from_zxid: u64) -> Result<Reader, Error> {
        let (segments, _) = dir::list(dir)?;
        // The last segment starting at or before from_zxid holds it.
        let index = segments
            .iter()
            .rposition(|(first_zxid, _)| *first_zxid <= from_zxid)
            .unwrap_or(0);
        Ok(Reader {
            segments,
            index,
            current: None,
            position: 0,
            floor: None,
            from_zxid,
            done: false,
        })
    }

    fn fail(&mut self, error: Error) -> Option<Result<Record, Error>> {
        self.done = true;
        Some(Err(error))
    }
}

impl Iterator for Reader {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Result<Record, Error>> {
        loop {
            if self.done {
                return None;
            }
            let Some(segment) = self.current.as_ref() else {
                let Some((_, path)) = self.segments.get(self.index) else {
                    self.done = true;
                    return None;
                };
                let segment = match SegmentFile::open(path) {
                    Ok(segment) => segment,
                    Err(error) => return self.fail(error),
                };
                let header = match segment.header() {
                    Ok(header) => header,
                    Err(error) => return self.fail(error),
                };
                self.position = u64::try_from(format::HEADER_BYTES).unwrap_or(32);
                // Across segments zxids keep increasing: the floor carries over.
                let header_floor = header.first_zxid.checked_sub(1);
                self.floor = self.floor.max(header_floor);
                self.current = Some(segment);
                continue;
            };
            let mut scan = SegmentScan::resume(segment.bytes(), self.position, self.floor);
            if let Some(record) = scan.next() {
                self.position = scan.data_end();
                self.floor = Some(record.zxid);
                if record.zxid < self.from_zxid {
                    continue;
                }
                return Some(Ok(Record {
                    zxid: record.zxid,
                    payload: record.payload.to_vec(),
                }));
            }
            let newest = self.index + 1 >= self.segments.len();
            if let (Some(ScanStop::Bad { offset, .. }), false) = (scan.stop(), newest) {
                let file = segment.path().to_path_buf();
                return self.fail(Error::Corrupt { file, offset });
            }
            self.current = None;
            self.index += 1;
        }
    }
}
