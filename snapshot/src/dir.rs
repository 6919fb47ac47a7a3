//! A directory of snapshots: listing, choosing the one recovery starts from,
//! and retention (ZooKeeper's `autopurge.snapRetainCount`).
//!
//! It is not the WAL's purge: it reports the oldest start zxid it kept so the
//! caller can drop log segments that only older snapshots needed.
//!
//! Invariant: `purge` never leaves fewer than `MIN_RETAIN_COUNT` snapshots
//! that pass the open-time checks, never removes a snapshot newer than one it
//! keeps, and never removes a temp file that could belong to a write still in
//! progress (one newer than every complete snapshot).

use std::path::{Path, PathBuf};

use crate::format::{classify, FileKind};
use crate::reader::{SnapshotReader, Summary};
use crate::writer::sync_dir;
use crate::Error;

/// Retention never keeps fewer snapshots than this, whatever the caller
/// asks, as ZooKeeper's `PurgeTxnLog` insists on at least three.
pub const MIN_RETAIN_COUNT: usize = 3;

/// What [`purge`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Files removed: older snapshots and abandoned temp files.
    pub removed: Vec<PathBuf>,
    /// Complete snapshots still in the directory, newest first, including any
    /// that failed the open-time checks but are newer than one kept.
    pub retained: Vec<(u64, PathBuf)>,
    /// The smallest start zxid among `retained`: log entries at or before it
    /// are needed by no remaining snapshot. `None` if no snapshot remains, in
    /// which case the caller must keep the whole log.
    pub oldest_retained_zxid: Option<u64>,
}

/// A snapshot that passed [`SnapshotReader::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSnapshot {
    pub start_zxid: u64,
    pub path: PathBuf,
    pub summary: Summary,
}

/// Every file in `dir` (including temp files) that this crate owns.
fn scan(dir: &Path) -> Result<Vec<(FileKind, PathBuf)>, Error> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| Error::io(dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::io(dir, source))?;
        let path = entry.path();
        let Some(kind) = classify(&path) else {
            continue;
        };
        // A directory that happens to carry a snapshot's name is not ours.
        let file_type = entry
            .file_type()
            .map_err(|source| Error::io(&path, source))?;
        if file_type.is_file() {
            found.push((kind, path));
        }
    }
    Ok(found)
}

/// The complete snapshots in `dir`, by name, newest (highest start zxid)
/// first. Temp files from unfinished writes are not listed. Contents are not
/// checked.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut snapshots: Vec<(u64, PathBuf)> = scan(dir)?
        .into_iter()
        .filter_map(|(kind, path)| match kind {
            FileKind::Snapshot(zxid) => Some((zxid, path)),
            FileKind::Temp(_) => None,
        })
        .collect();
    snapshots.sort_by_key(|(zxid, _)| std::cmp::Reverse(*zxid));
    Ok(snapshots)
}

/// The newest snapshot in `dir` that passes a full check, or `None` if there
/// is none. Each one skipped is logged as a warning: recovery falls back to
/// an older snapshot and a longer log replay, which is correct as long as the
/// log still reaches back that far (purge keeps it so).
///
/// This decodes the chosen file completely, and recovery decodes it again to
/// load it; the price of never starting from a snapshot that fails halfway.
pub fn newest_valid(dir: &Path) -> Result<Option<ValidSnapshot>, Error> {
    for (start_zxid, path) in list(dir)? {
        match SnapshotReader::verify(&path) {
            Ok(summary) => {
                return Ok(Some(ValidSnapshot {
                    start_zxid,
                    path,
                    summary,
                }))
            }
            Err(error) => {
                tracing::warn!(
                    snapshot = %path.display(),
                    %error,
                    "skipping invalid snapshot; recovery falls back to an older one"
                );
            }
        }
    }
    Ok(None)
}

/// Removes all but the newest `retain_count` snapshots in `dir` (at least
/// [`MIN_RETAIN_COUNT`]), counting only those that pass the open-time checks
/// (header, trailer, sizes: cheap, no decompression), and removes temp files
/// left by crashed writes. Newer files that fail the checks are left for
/// `zk-snaprepair`, not deleted.
pub fn purge(dir: &Path, retain_count: usize) -> Result<PurgeReport, Error> {
    let retain_count = retain_count.max(MIN_RETAIN_COUNT);
    let files = scan(dir)?;
    let mut snapshots: Vec<(u64, PathBuf)> = files
        .iter()
        .filter_map(|(kind, path)| match kind {
            FileKind::Snapshot(zxid) => Some((*zxid, path.clone())),
            FileKind::Temp(_) => None,
        })
        .collect();
    snapshots.sort_by_key(|(zxid, _)| std::cmp::Reverse(*zxid));

    // Walk newest first until `retain_count` good ones are kept; everything
    // after that point is older than every kept snapshot.
    let mut kept_valid = 0usize;
    let mut cut = snapshots.len();
    for (index, (_, path)) in snapshots.iter().enumerate() {
        if kept_valid == retain_count {
            cut = index;
            break;
        }
        match SnapshotReader::open(path) {
            Ok(_) => kept_valid += 1,
            Err(error) => tracing::warn!(
                snapshot = %path.display(),
                %error,
                "invalid snapshot does not count towards retention"
            ),
        }
    }
    let mut report = PurgeReport::default();
    let newest_complete = snapshots.first().map(|(zxid, _)| *zxid);
    let older = snapshots.split_off(cut);
    report.retained = snapshots;
    report.oldest_retained_zxid = report.retained.last().map(|(zxid, _)| *zxid);

    let mut doomed: Vec<PathBuf> = older.into_iter().map(|(_, path)| path).collect();
    // A temp file newer than every complete snapshot may be a write that is
    // running right now on another thread; anything else is a crash's leftover.
    for (kind, path) in files {
        if let FileKind::Temp(zxid) = kind {
            if newest_complete.is_some_and(|newest| zxid < newest) {
                doomed.push(path);
            }
        }
    }
    for path in doomed {
        match std::fs::remove_file(&path) {
            Ok(()) => report.removed.push(path),
            // Someone else removed it first: the outcome we wanted.
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::io(&path, source)),
        }
    }
    if !report.removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{file_name, temp_file_name, Section, HEADER_BYTES};
    use crate::SnapshotWriter;

    /// Writes a small snapshot starting at `zxid` and returns its path.
    fn write(dir: &Path, zxid: u64) -> PathBuf {
        let mut writer = SnapshotWriter::create(dir, zxid, 1, 3).unwrap();
        for i in 0..20u32 {
            writer
                .entry(Section::Nodes, format!("/node{i}@{zxid}").as_bytes())
                .unwrap();
        }
        writer.finish(zxid, zxid).unwrap()
    }

    /// Leaves a temp file as a crash mid-write would.
    fn leave_temp(dir: &Path, zxid: u64) -> PathBuf {
        let path = dir.join(temp_file_name(zxid));
        std::fs::write(&path, b"half a snapshot").unwrap();
        path
    }

    fn zxids(listed: &[(u64, PathBuf)]) -> Vec<u64> {
        listed.iter().map(|(zxid, _)| *zxid).collect()
    }

    fn flip_stream_bit(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        // Middle of the file: inside the compressed stream, past the zstd
        // frame header.
        let middle = bytes.len() / 2;
        assert!(middle > HEADER_BYTES);
        bytes[middle] ^= 0x10;
        std::fs::write(path, bytes).unwrap();
    }

    /// Newest first; temp files, foreign files and directories are not listed.
    #[test]
    fn list_ignores_temp_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        for zxid in [5, 0x1_0000_0000, 17] {
            write(dir.path(), zxid);
        }
        leave_temp(dir.path(), 0x2_0000_0000);
        std::fs::write(dir.path().join("log.0000000000000001"), b"wal").unwrap();
        std::fs::write(dir.path().join("snapshot.12"), b"zookeeper's own").unwrap();
        std::fs::create_dir(dir.path().join(file_name(0x3_0000_0000))).unwrap();
        assert_eq!(zxids(&list(dir.path()).unwrap()), [0x1_0000_0000, 17, 5]);
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        assert!(matches!(list(&missing), Err(Error::Io { .. })));
        assert!(matches!(newest_valid(&missing), Err(Error::Io { .. })));
        assert!(matches!(purge(&missing, 3), Err(Error::Io { .. })));
    }

    /// Recovery skips a corrupt newest snapshot (a flipped bit deep in the
    /// stream, a truncated one) and starts from the previous good one.
    #[test]
    fn newest_valid_skips_bad_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_valid(dir.path()).unwrap(), None);
        write(dir.path(), 10);
        write(dir.path(), 20);
        let flipped = write(dir.path(), 30);
        flip_stream_bit(&flipped);
        let truncated = write(dir.path(), 40);
        let bytes = std::fs::read(&truncated).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() - 1]).unwrap();
        leave_temp(dir.path(), 50);

        let chosen = newest_valid(dir.path()).unwrap().unwrap();
        assert_eq!(chosen.start_zxid, 20);
        assert_eq!(chosen.path, dir.path().join(file_name(20)));
        assert_eq!(chosen.summary.trailer.entry_count, 20);
        assert_eq!(chosen.summary.sections[&Section::Nodes].entries, 20);
    }

    /// Keeps the newest `retain_count` snapshots, never fewer than three, and
    /// reports the oldest kept zxid for WAL purging.
    #[test]
    fn purge_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let report = purge(dir.path(), 3).unwrap();
        assert_eq!(report, PurgeReport::default());
        for zxid in 1..=8 {
            write(dir.path(), zxid * 100);
        }
        let report = purge(dir.path(), 5).unwrap();
        assert_eq!(zxids(&report.retained), [800, 700, 600, 500, 400]);
        assert_eq!(report.oldest_retained_zxid, Some(400));
        assert_eq!(report.removed.len(), 3);
        assert_eq!(zxids(&list(dir.path()).unwrap()), [800, 700, 600, 500, 400]);

        // Asking for fewer than three keeps three.
        for asked in [0, 1, 2] {
            let report = purge(dir.path(), asked).unwrap();
            assert_eq!(report.oldest_retained_zxid, Some(600));
            assert_eq!(zxids(&list(dir.path()).unwrap()), [800, 700, 600]);
        }
        // Nothing to do when there are not more than asked for.
        let report = purge(dir.path(), 10).unwrap();
        assert!(report.removed.is_empty());
        assert_eq!(report.oldest_retained_zxid, Some(600));
    }

    /// A snapshot that fails its checks does not count towards retention and
    /// is not deleted when newer than the kept ones.
    #[test]
    fn purge_counts_only_valid_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        for zxid in 1..=6 {
            write(dir.path(), zxid);
        }
        let broken = dir.path().join(file_name(5));
        let bytes = std::fs::read(&broken).unwrap();
        std::fs::write(&broken, &bytes[..bytes.len() - 3]).unwrap();
        let report = purge(dir.path(), 3).unwrap();
        assert_eq!(zxids(&report.retained), [6, 5, 4, 3]);
        assert_eq!(report.oldest_retained_zxid, Some(3));
        assert_eq!(zxids(&list(dir.path()).unwrap()), [6, 5, 4, 3]);
    }

    /// Temp files a crash left behind are removed once a newer snapshot is
    /// complete; a temp newer than every snapshot may be a write in progress
    /// and stays.
    #[test]
    fn purge_removes_crash_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let old_temp = leave_temp(dir.path(), 15);
        for zxid in [10, 20, 30] {
            write(dir.path(), zxid);
        }
        let in_progress = SnapshotWriter::create(dir.path(), 40, 1, 3).unwrap();
        let report = purge(dir.path(), 3).unwrap();
        assert_eq!(report.removed, std::slice::from_ref(&old_temp));
        assert!(!old_temp.exists());
        assert_eq!(zxids(&report.retained), [30, 20, 10]);
        // The concurrent write is untouched and still completes.
        let path = in_progress.finish(0, 40).unwrap();
        assert_eq!(newest_valid(dir.path()).unwrap().unwrap().path, path);
    }
}
