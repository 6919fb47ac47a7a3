//! `zk-snaprepair`: `check` says what is wrong with a data directory;
//! `repair` rebuilds a consistent one from the newest usable snapshot plus
//! the longest intact log after it, into a new directory or in place. A
//! RocksDB-backend data directory goes to `rocks_snaprepair` (feature
//! `rocksdb`); without the feature it is refused, saying how to rebuild.
//!
//! Not a log editor: records are never patched, only copied whole (crc
//! checked) into a fresh WAL written by `wal::Wal`, so the result is in
//! exactly the format the server writes. Nothing after the first damaged
//! record the chosen snapshot needs is kept, because a txn applied without
//! its predecessor would make a state no server ever had; what that gives up
//! is printed as a zxid range. Damage wholly before the snapshot's start
//! costs nothing.
//!
//! Invariants: `check` and a repair without `apply` write nothing; with it,
//! no original file is deleted (in place, they move to
//! `DATA_DIR/quarantine-<unix ms>/`), and the snapshot kept is one that
//! passed a full verification and whose fuzzy range the kept log covers.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::inspect::{self, Salvage, SegmentEnd, SegmentInfo, SnapshotInfo, SnapshotState};
use crate::{hex, zxid_follows, Progress, Unit, EXIT_ERROR, EXIT_OK, EXIT_PROBLEMS};

/// Records handed to the WAL per append when rewriting the log.
const REWRITE_BATCH_BYTES: usize = 4 << 20;
/// Preallocation of the rewritten segments; the server grows them later in
/// its own `preAllocSize` steps.
const REWRITE_PRE_ALLOC_BYTES: u64 = 4 << 20;

/// Where the server keeps its files: snapshots and `database_id` in
/// `dataDir`, segments in `dataLogDir` (which defaults to `dataDir`).
#[derive(Debug, Clone)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl Layout {
    pub fn new(data_dir: PathBuf, log_dir: Option<PathBuf>) -> Layout {
        let log_dir = log_dir.unwrap_or_else(|| data_dir.clone());
        Layout { data_dir, log_dir }
    }
}

/// Everything found in a data directory, and what is wrong with it.
struct Analysis {
    database_id: Option<u64>,
    /// Newest first.
    snapshots: Vec<SnapshotInfo>,
    /// Oldest first.
    segments: Vec<SegmentInfo>,
    salvage: Salvage,
    /// What `log_cut` says (None: no marker).
    log_cut: Option<u64>,
    /// Human lines, one per finding, in the order printed.
    lines: Vec<String>,
    problems: usize,
}

impl Analysis {
    fn problem(&mut self, line: String) {
        self.lines.push(format!("PROBLEM: {line}"));
        self.problems += 1;
    }

    fn note(&mut self, line: String) {
        self.lines.push(line);
    }

    /// Valid snapshots of this database, newest first: (start, end, path).
    fn usable_snapshots(&self) -> Vec<(u64, u64, PathBuf)> {
        self.snapshots
            .iter()
            .filter_map(|info| match info.state {
                SnapshotState::Valid {
                    start_zxid,
                    end_zxid,
                    database_id,
                    ..
                } if Some(database_id) == self.database_id || self.database_id.is_none() => {
                    Some((start_zxid, end_zxid, info.path.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// The first zxid an ensemble assigns: epoch 1, counter 1.
const FIRST_ENSEMBLE_ZXID: u64 = (1 << 32) | 1;

/// Whether the salvaged log completes a snapshot that starts at `start` and
/// is fuzzy up to `end` (no snapshot: 0 and 0), by the server's rules.
/// `log_cut` is the directory's marker. `Err` says why not.
///
/// From the empty state the log must hold every txn there ever was: a
/// marker above 0 says it does not, and without a marker it must begin at
/// the very first zxid (a first txn of a later epoch also "follows" the
/// empty state, but what came before it in earlier epochs is gone).
fn covers(salvage: &Salvage, start: u64, end: u64, log_cut: Option<u64>) -> Result<(), String> {
    if start == 0 {
        if let Some(cut) = log_cut.filter(|&cut| cut > 0) {
            return Err(format!(
                "the log was cut behind a snapshot at {}: without a snapshot the state before \
                 it is gone (move the data directory away to resync this member from the \
                 ensemble, or restore a snapshot)",
                hex(cut)
            ));
        }
    }
    if let Some(first) = salvage.first_zxid {
        let continues = if start == 0 {
            log_cut == Some(0) || first == FIRST_ENSEMBLE_ZXID
        } else {
            zxid_follows(start, first)
        };
        if first > start.saturating_add(1) && !continues {
            return Err(format!(
                "the log starts at {} but must reach back to {}",
                hex(first),
                hex(start.saturating_add(1))
            ));
        }
    }
    if end > start && !matches!(salvage.last_zxid, Some(last) if last >= end) {
        return Err(format!(
            "the snapshot is fuzzy up to {} but the intact log ends at {}",
            hex(end),
            salvage.last_zxid.map_or_else(|| "nothing".to_string(), hex)
        ));
    }
    Ok(())
}

/// Bytes of the files in `dir` whose names start with `prefix` (0 if it
/// cannot be listed: only progress lines depend on it).
fn directory_bytes(dir: &Path, prefix: &str) -> u64 {
    files_with_prefix(dir, prefix)
        .unwrap_or_default()
        .iter()
        .filter_map(|path| fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum()
}

fn analyse(layout: &Layout) -> Result<Analysis, String> {
    for dir in [&layout.data_dir, &layout.log_dir] {
        if !dir.is_dir() {
            return Err(format!("{}: not a directory", dir.display()));
        }
    }
    if let Some(notice) = inspect::rocksdb_notice(&layout.data_dir)
        .or_else(|| inspect::pending_install_notice(&layout.data_dir))
    {
        return Err(notice);
    }
    // Snapshots are verified whole and segments scanned whole: on a large
    // directory that takes a while, so progress counts their bytes.
    let total_bytes = directory_bytes(&layout.data_dir, "snapshot.")
        .saturating_add(directory_bytes(&layout.log_dir, "log."));
    let mut progress = Progress::counting("zk-snaprepair", "checked", Unit::Bytes, total_bytes);
    let snapshots =
        inspect::snapshots_with(&layout.data_dir, &mut |bytes| progress.advance(bytes))?;
    let mut analysis = Analysis {
        database_id: None,
        snapshots,
        segments: Vec::new(),
        salvage: Salvage::default(),
        log_cut: None,
        lines: Vec::new(),
        problems: 0,
    };
    match inspect::read_database_id(&layout.data_dir) {
        Ok(Some(id)) => analysis.database_id = Some(id),
        Ok(None) => {}
        Err(error) => analysis.problem(error),
    }
    match inspect::read_log_cut(&layout.data_dir) {
        Ok(cut) => analysis.log_cut = cut,
        Err(error) => analysis.problem(error),
    }
    let segments = inspect::segments_with(&layout.log_dir, analysis.database_id, &mut |bytes| {
        progress.advance(bytes)
    })?;
    progress.finish();
    if analysis.database_id.is_none() {
        // Fall back to what the files say, newest snapshot first.
        analysis.database_id = analysis
            .snapshots
            .iter()
            .find_map(|info| match info.state {
                SnapshotState::Valid { database_id, .. } => Some(database_id),
                SnapshotState::Corrupt(_) => None,
            })
            .or_else(|| segments.iter().find_map(|segment| segment.database_id));
        if !analysis.snapshots.is_empty() || !segments.is_empty() {
            analysis.problem(format!(
                "{}: missing; the files say database {}",
                layout.data_dir.join(inspect::DATABASE_ID_FILE).display(),
                analysis
                    .database_id
                    .map_or_else(|| "unknown".to_string(), |id| format!("{id:016x}"))
            ));
        }
    }
    analysis.note(format!(
        "data dir {} (database id {}), log dir {}",
        layout.data_dir.display(),
        analysis
            .database_id
            .map_or_else(|| "none".to_string(), |id| format!("{id:016x}")),
        layout.log_dir.display()
    ));

    let snapshot_lines: Vec<(bool, String)> = analysis
        .snapshots
        .iter()
        .map(|info| {
            let file = info.path.display();
            match &info.state {
                SnapshotState::Valid {
                    start_zxid,
                    end_zxid,
                    database_id,
                    entries,
                } => {
                    if analysis.database_id.is_some_and(|id| id != *database_id) {
                        (
                            true,
                            format!("snapshot {file}: belongs to database {database_id:016x}"),
                        )
                    } else {
                        (
                            false,
                            format!(
                                "snapshot {file}: valid, start {}, end {}, {entries} entries",
                                hex(*start_zxid),
                                hex(*end_zxid)
                            ),
                        )
                    }
                }
                SnapshotState::Corrupt(why) => (true, format!("snapshot {file}: corrupt: {why}")),
            }
        })
        .collect();
    for (is_problem, line) in snapshot_lines {
        if is_problem {
            analysis.problem(line);
        } else {
            analysis.note(line);
        }
    }
    if analysis.snapshots.is_empty() {
        analysis.note("no snapshots".to_string());
    }

    let count = segments.len();
    for (index, info) in segments.iter().enumerate() {
        let newest = index + 1 == count;
        let file = info.path.display();
        let range = match (info.first_zxid, info.last_zxid) {
            (Some(first), Some(last)) => format!("zxids {}–{}", hex(first), hex(last)),
            _ => "no records".to_string(),
        };
        let records = info.records;
        match &info.end {
            SegmentEnd::Clean => {
                analysis.note(format!("segment {file}: valid, {records} records, {range}"))
            }
            SegmentEnd::Torn { offset, why } if newest => analysis.note(format!(
                "segment {file}: {records} records, {range}; torn tail at offset {offset} \
                 ({why}): an unfinished write the server truncates at start-up"
            )),
            SegmentEnd::Torn { offset, why } => analysis.problem(format!(
                "segment {file}: torn record at offset {offset} ({why}) in a segment that is \
                 not the newest; {records} intact records before it, {range}"
            )),
            SegmentEnd::Corrupt { offset, why } => analysis.problem(format!(
                "segment {file}: corrupt at offset {offset} ({why}), valid records follow; \
                 {records} intact records before it, {range}"
            )),
            SegmentEnd::BadHeader(why) => {
                analysis.problem(format!("segment {file}: bad header at offset 0: {why}"))
            }
        }
    }
    if segments.is_empty() {
        analysis.note("no log segments".to_string());
    }
    analysis.segments = segments;
    // The newest valid snapshot is where the server starts; the log must
    // complete it.
    let newest = analysis.usable_snapshots().into_iter().next();
    let (start, end) = newest
        .as_ref()
        .map_or((0, 0), |(start, end, _)| (*start, *end));
    analysis.salvage = inspect::salvage(&analysis.segments, start)?;
    if let Some(damage) = analysis.salvage.damage.clone() {
        let already_reported = analysis.segments.get(damage.segment).is_some_and(|info| {
            !matches!(info.end, SegmentEnd::Clean) && info.end.bad_offset() == Some(damage.offset)
        });
        if !already_reported {
            analysis.problem(format!(
                "segment {}: {} at offset {}",
                damage.file.display(),
                damage.why,
                damage.offset
            ));
        }
    }

    for damage in &analysis.salvage.harmless {
        analysis.lines.push(format!(
            "  (the damage in {} at offset {} lies before the snapshot's start: a repair \
             loses nothing to it)",
            damage.file.display(),
            damage.offset
        ));
    }
    let base = newest.as_ref().map_or_else(
        || "no snapshot".to_string(),
        |(_, _, path)| format!("snapshot {}", path.display()),
    );
    match covers(&analysis.salvage, start, end, analysis.log_cut) {
        Ok(()) => {
            let reach = analysis
                .salvage
                .last_zxid
                .map_or_else(|| "no txns".to_string(), hex);
            analysis.note(format!(
                "{base}: the intact log covers it (log reaches {reach})"
            ))
        }
        Err(why) => analysis.problem(format!("gap after {base}: {why}")),
    }
    if let Some(lost) = analysis.salvage.lost(end) {
        analysis.note(format!(
            "intact records after the damage: zxids {}–{} would be lost ({} txns)",
            hex(lost.low),
            hex(lost.high),
            lost.count
        ));
    }
    Ok(analysis)
}

fn print(out: &mut dyn Write, line: &str) -> Result<(), String> {
    writeln!(out, "{line}").map_err(|error| format!("writing output: {error}"))
}

/// `zk-snaprepair check`: prints the findings; returns the exit status.
pub fn check(layout: &Layout, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    #[cfg(feature = "rocksdb")]
    if let Some(dir) = inspect::rocksdb_dir(&layout.data_dir) {
        return crate::rocks_snaprepair::check(&dir, out, err);
    }
    let result = analyse(layout).and_then(|analysis| {
        for line in &analysis.lines {
            print(out, line)?;
        }
        if analysis.problems == 0 {
            print(out, "clean: no problems found")?;
            Ok(EXIT_OK)
        } else {
            print(out, &format!("{} problem(s) found", analysis.problems))?;
            Ok(EXIT_PROBLEMS)
        }
    });
    result.unwrap_or_else(|message| {
        let _ = writeln!(err, "zk-snaprepair: {message}");
        EXIT_ERROR
    })
}

/// What `repair` will do.
struct Plan {
    /// (start, end, path) of the snapshot kept, if any.
    base: Option<(u64, u64, PathBuf)>,
    /// Records kept are those with zxids in (after, upto].
    after: u64,
    upto: Option<u64>,
    kept: u64,
    lost: Option<inspect::Lost>,
    salvage: Salvage,
}

fn plan(analysis: &Analysis) -> Result<Plan, String> {
    let mut reasons = Vec::new();
    // Newest first: a newer snapshot holds more, and the log it needs is a
    // suffix of what an older one needs, so it never loses more.
    let candidates = analysis
        .usable_snapshots()
        .into_iter()
        .map(Some)
        .chain([None]);
    for candidate in candidates {
        let (after, end) = candidate
            .as_ref()
            .map_or((0, 0), |(start, end, _)| (*start, *end));
        let salvage = inspect::salvage(&analysis.segments, after)?;
        match covers(&salvage, after, end, analysis.log_cut) {
            Ok(()) => {
                return Ok(Plan {
                    lost: salvage.lost(end.max(after)),
                    kept: salvage.records(),
                    upto: salvage.last_zxid,
                    base: candidate,
                    after,
                    salvage,
                })
            }
            Err(why) => {
                let name = candidate.as_ref().map_or_else(
                    || "without a snapshot".to_string(),
                    |(_, _, path)| path.display().to_string(),
                );
                reasons.push(format!("{name}: {why}"));
            }
        }
    }
    Err(format!(
        "no snapshot plus intact log gives a consistent state:\n  {}",
        reasons.join("\n  ")
    ))
}

/// Calls `each` for every kept record, in order, reading each segment once.
fn for_each_kept(
    analysis: &Analysis,
    plan: &Plan,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut open: Option<(usize, wal::SegmentFile)> = None;
    for (index, offset) in &plan.salvage.kept {
        if open.as_ref().map(|(at, _)| *at) != Some(*index) {
            let info = analysis
                .segments
                .get(*index)
                .ok_or_else(|| format!("segment {index} vanished from the listing"))?;
            let file = wal::SegmentFile::open(&info.path).map_err(|error| error.to_string())?;
            open = Some((*index, file));
        }
        let Some((_, file)) = open.as_ref() else {
            continue;
        };
        let mut scan = wal::SegmentScan::resume(file.bytes(), *offset, None);
        let record = scan.next().ok_or_else(|| {
            format!(
                "{}: the record at offset {offset} no longer reads back",
                file.path().display()
            )
        })?;
        each(record.zxid, record.payload)?;
    }
    Ok(())
}

/// Writes the kept records into a fresh WAL in `dir` (which should hold no
/// segments) with the same database id, and waits until they are durable.
fn write_log(analysis: &Analysis, plan: &Plan, dir: &Path, database_id: u64) -> Result<(), String> {
    if plan.kept == 0 {
        return fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()));
    }
    let config = wal::WalConfig {
        pre_alloc_bytes: REWRITE_PRE_ALLOC_BYTES,
        force_sync: true,
        database_id,
        io: wal::IoMode::Pwrite,
        ..wal::WalConfig::new(dir)
    };
    let (log, _) = wal::Wal::open(config).map_err(|error| error.to_string())?;
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    let mut last_seq = None;
    for_each_kept(analysis, plan, |zxid, payload| {
        batch.push(wal::Record {
            zxid,
            payload: payload.to_vec(),
        });
        batch_bytes += payload.len();
        if batch_bytes >= REWRITE_BATCH_BYTES {
            last_seq = Some(
                log.append(std::mem::take(&mut batch))
                    .map_err(|error| error.to_string())?,
            );
            batch_bytes = 0;
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        last_seq = Some(log.append(batch).map_err(|error| error.to_string())?);
    }
    if let Some(seq) = last_seq {
        log.wait_durable(seq).map_err(|error| error.to_string())?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| format!("{}: {error}", dir.display()))
}

/// Copies `from` to `to` through a temporary name, synced, so `to` is either
/// absent or complete.
fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    let temp = to.with_extension("repair-tmp");
    let io = |path: &Path, error: std::io::Error| format!("{}: {error}", path.display());
    fs::copy(from, &temp).map_err(|error| io(from, error))?;
    fs::File::open(&temp)
        .and_then(|file| file.sync_all())
        .map_err(|error| io(&temp, error))?;
    fs::rename(&temp, to).map_err(|error| io(to, error))
}

/// Moves a file, copying and then unlinking when a rename cannot cross
/// file systems.
fn move_file(from: &Path, to: &Path) -> Result<(), String> {
    if fs::rename(from, to).is_ok() {
        return Ok(());
    }
    copy_file(from, to)?;
    fs::remove_file(from).map_err(|error| format!("{}: {error}", from.display()))
}

fn write_database_id(dir: &Path, database_id: u64) -> Result<(), String> {
    write_hex_file(dir, inspect::DATABASE_ID_FILE, database_id)
}

/// Records in `log_cut` that the repaired log lacks every txn up to the
/// kept snapshot's start (or what the marker said, if higher), so that a
/// server that later loses that snapshot refuses to rebuild from an empty
/// tree rather than replaying a partial log over it.
fn write_log_cut(dir: &Path, analysis: &Analysis, plan: &Plan) -> Result<(), String> {
    let cut = analysis.log_cut.unwrap_or(0).max(plan.after);
    write_hex_file(dir, inspect::LOG_CUT_FILE, cut)
}

/// Writes `value` as 16 hex digits to `dir/name`, durably: a temp file,
/// fsynced, renamed over it (the caller syncs the directory).
fn write_hex_file(dir: &Path, name: &str, value: u64) -> Result<(), String> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let io = |path: &Path, error: std::io::Error| format!("{}: {error}", path.display());
    fs::write(&temp, format!("{value:016x}\n")).map_err(|error| io(&temp, error))?;
    fs::File::open(&temp)
        .and_then(|file| file.sync_all())
        .map_err(|error| io(&temp, error))?;
    fs::rename(&temp, &path).map_err(|error| io(&path, error))
}

/// Files in `dir` whose names start with `prefix`, sorted.
fn files_with_prefix(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|error| format!("{}: {error}", dir.display()))?;
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(prefix));
        if is_file && named {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

/// Builds the repaired directory at `out_dir`, leaving the originals alone.
fn apply_out(
    analysis: &Analysis,
    plan: &Plan,
    out_dir: &Path,
    database_id: u64,
) -> Result<(), String> {
    let io = |error: std::io::Error| format!("{}: {error}", out_dir.display());
    if out_dir.exists() {
        let mut entries = fs::read_dir(out_dir).map_err(io)?;
        if entries.next().is_some() {
            return Err(format!(
                "{}: exists and is not empty; give a new directory",
                out_dir.display()
            ));
        }
    }
    fs::create_dir_all(out_dir).map_err(io)?;
    write_database_id(out_dir, database_id)?;
    write_log_cut(out_dir, analysis, plan)?;
    if let Some((_, _, path)) = &plan.base {
        let name = path
            .file_name()
            .ok_or_else(|| format!("{}: no file name", path.display()))?;
        copy_file(path, &out_dir.join(name))?;
    }
    write_log(analysis, plan, out_dir, database_id)?;
    sync_dir(out_dir)
}

/// Repairs in place: writes the new log beside the old, moves every
/// original into the quarantine folder (the kept snapshot is copied there
/// and stays in place), then moves the new log in.
fn apply_in_place(
    analysis: &Analysis,
    plan: &Plan,
    layout: &Layout,
    quarantine: &Path,
    database_id: u64,
    out: &mut dyn Write,
) -> Result<(), String> {
    let io = |path: &Path, error: std::io::Error| format!("{}: {error}", path.display());
    fs::create_dir(quarantine).map_err(|error| io(quarantine, error))?;
    let stamp = quarantine
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("quarantine-"))
        .unwrap_or("0")
        .to_string();
    let staging = layout.log_dir.join(format!("repair-staging-{stamp}"));
    write_log(analysis, plan, &staging, database_id)?;

    let id_file = layout.data_dir.join(inspect::DATABASE_ID_FILE);
    if id_file.exists() {
        copy_file(&id_file, &quarantine.join(inspect::DATABASE_ID_FILE))?;
    } else {
        write_database_id(&layout.data_dir, database_id)?;
    }
    let kept_snapshot = plan.base.as_ref().map(|(_, _, path)| path.clone());
    for path in files_with_prefix(&layout.data_dir, "snapshot.")? {
        let Some(name) = path.file_name() else {
            continue;
        };
        if Some(&path) == kept_snapshot.as_ref() {
            copy_file(&path, &quarantine.join(name))?;
        } else {
            move_file(&path, &quarantine.join(name))?;
        }
    }
    // The marker goes first, as the server writes it before any cut.
    let marker = layout.data_dir.join(inspect::LOG_CUT_FILE);
    if marker.exists() {
        copy_file(&marker, &quarantine.join(inspect::LOG_CUT_FILE))?;
    }
    write_log_cut(&layout.data_dir, analysis, plan)?;
    sync_dir(&layout.data_dir)?;
    // From here until the staged log is moved in, the log directory holds
    // no segments; a crash in between leaves the new log in `staging`.
    for path in files_with_prefix(&layout.log_dir, "log.")? {
        let Some(name) = path.file_name() else {
            continue;
        };
        move_file(&path, &quarantine.join(name))?;
    }
    sync_dir(quarantine)?;
    sync_dir(&layout.log_dir)?;
    for path in files_with_prefix(&staging, "log.")? {
        let Some(name) = path.file_name() else {
            continue;
        };
        let target = layout.log_dir.join(name);
        fs::rename(&path, &target).map_err(|error| io(&target, error))?;
    }
    sync_dir(&layout.log_dir)?;
    if let Err(error) = fs::remove_dir(&staging) {
        print(
            out,
            &format!("note: could not remove {}: {error}", staging.display()),
        )?;
    }
    sync_dir(&layout.data_dir)
}

/// `zk-snaprepair repair`: prints the plan and, with `apply`, carries it
/// out. Returns the exit status.
pub fn repair(
    layout: &Layout,
    out_dir: Option<&Path>,
    apply: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    #[cfg(feature = "rocksdb")]
    if let Some(dir) = inspect::rocksdb_dir(&layout.data_dir) {
        return crate::rocks_snaprepair::repair(&dir, &layout.data_dir, out_dir, apply, out, err);
    }
    repair_inner(layout, out_dir, apply, out).unwrap_or_else(|message| {
        let _ = writeln!(err, "zk-snaprepair: {message}");
        EXIT_ERROR
    })
}

fn repair_inner(
    layout: &Layout,
    out_dir: Option<&Path>,
    apply: bool,
    out: &mut dyn Write,
) -> Result<u8, String> {
    let analysis = analyse(layout)?;
    for line in &analysis.lines {
        print(out, line)?;
    }
    if analysis.problems == 0 && out_dir.is_none() {
        print(out, "nothing to repair; nothing lost")?;
        return Ok(EXIT_OK);
    }
    let plan = match plan(&analysis) {
        Ok(plan) => plan,
        Err(why) => {
            print(out, &format!("cannot repair: {why}"))?;
            return Ok(EXIT_PROBLEMS);
        }
    };
    let Some(database_id) = analysis.database_id else {
        print(out, "cannot repair: no database id is known")?;
        return Ok(EXIT_PROBLEMS);
    };
    print(out, "plan:")?;
    match &plan.base {
        Some((start, end, path)) => print(
            out,
            &format!(
                "  keep snapshot {} (start {}, fuzzy to {})",
                path.display(),
                hex(*start),
                hex(*end)
            ),
        )?,
        None => print(out, "  no snapshot: the log is replayed from the start")?,
    }
    match plan.upto {
        Some(upto) => print(
            out,
            &format!(
                "  rewrite the log with {} txns after {} up to {}",
                plan.kept,
                hex(plan.after),
                hex(upto)
            ),
        )?,
        None => print(out, "  rewrite the log empty: no txns after the snapshot")?,
    }
    let lost_line = match plan.lost {
        Some(lost) => format!(
            "lost zxids {}–{} ({} txns)",
            hex(lost.low),
            hex(lost.high),
            lost.count
        ),
        None => "nothing lost".to_string(),
    };
    print(out, &format!("  {lost_line}"))?;
    let quarantine = layout.data_dir.join(format!("quarantine-{}", now_ms()));
    match out_dir {
        Some(dir) => print(
            out,
            &format!(
                "  write the repaired directory to {} (originals untouched)",
                dir.display()
            ),
        )?,
        None => print(
            out,
            &format!(
                "  in place: move the original snapshots and segments to {}",
                quarantine.display()
            ),
        )?,
    }
    if !apply {
        print(out, "dry run: nothing changed; run again with --apply")?;
        return Ok(if analysis.problems == 0 {
            EXIT_OK
        } else {
            EXIT_PROBLEMS
        });
    }
    match out_dir {
        Some(dir) => apply_out(&analysis, &plan, dir, database_id)?,
        None => apply_in_place(&analysis, &plan, layout, &quarantine, database_id, out)?,
    }
    print(out, &format!("repaired: {lost_line}"))?;
    Ok(if plan.lost.is_some() {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salvage(first: Option<u64>, last: Option<u64>) -> Salvage {
        let mut salvage = Salvage::new(0);
        salvage.first_zxid = first;
        salvage.last_zxid = last;
        salvage
    }

    #[test]
    fn coverage_needs_the_log_from_start_plus_one_to_the_fuzzy_end() {
        assert!(covers(&salvage(Some(1), Some(10)), 0, 0, None).is_ok());
        assert!(covers(&salvage(Some(2), Some(10)), 0, 0, None).is_err());
        assert!(covers(&salvage(Some(5), Some(10)), 4, 8, None).is_ok());
        assert!(covers(&salvage(Some(6), Some(10)), 4, 8, None).is_err());
        assert!(covers(&salvage(Some(5), Some(7)), 4, 8, None).is_err());
        assert!(covers(&salvage(None, None), 4, 4, None).is_ok());
        assert!(covers(&salvage(None, None), 4, 5, None).is_err());
        // A new epoch starts at counter 1: no gap.
        assert!(covers(
            &salvage(Some(0x2_0000_0001), Some(0x2_0000_0004)),
            0x1_0000_0009,
            0x1_0000_0009,
            None
        )
        .is_ok());
    }

    #[test]
    fn from_the_empty_state_the_log_must_hold_every_txn_there_ever_was() {
        let ensemble = salvage(Some(0x1_0000_0001), Some(0x1_0000_0009));
        assert!(covers(&ensemble, 0, 0, None).is_ok());
        assert!(covers(&ensemble, 0, 0, Some(0)).is_ok());
        assert!(covers(&ensemble, 0, 0, Some(0x1_0000_0004)).is_err());
        // A later epoch's first txn follows the empty state by its zxid
        // alone, but the epochs before it are gone.
        let later = salvage(Some(0x3_0000_0001), Some(0x3_0000_0009));
        assert!(covers(&later, 0, 0, None).is_err());
        assert!(covers(&later, 0, 0, Some(0x3_0000_01d0)).is_err());
        // A marker of 0 says the log was never cut.
        assert!(covers(&later, 0, 0, Some(0)).is_ok());
    }

    #[test]
    fn missing_directory_is_an_error() {
        let layout = Layout::new(PathBuf::from("/nonexistent/zk-snaprepair"), None);
        let mut out = Vec::new();
        let mut err = Vec::new();
        assert_eq!(check(&layout, &mut out, &mut err), EXIT_ERROR);
    }
}
