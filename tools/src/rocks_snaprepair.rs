//! `zk-snaprepair` on a RocksDB-backend data directory (feature `rocksdb`).
//!
//! `check`: the checkpoint meta reads, the checkpoint's entries decode and
//! restore, the log decodes in zxid order from right after the checkpoint's
//! start, and replaying it over the checkpoint reaches the checkpoint's end
//! with the digest the meta recorded; the same exit codes as for the native
//! backend.
//!
//! `repair` does what can be done for this backend, with the server
//! stopped (it refuses while the database's lock is held):
//! - a damaged log entry after the checkpoint's end (undecodable, a key
//!   that is no zxid, another txn's zxid, a missing zxid): the log is cut
//!   before it, in one synced range delete, because a txn applied without
//!   its predecessor would make a state no server ever had; what that gives
//!   up is printed as a zxid range;
//! - RocksDB itself cannot open or read the database (a damaged MANIFEST or
//!   table file): RocksDB's own repair (`DB::repair`), which rebuilds the
//!   MANIFEST from the table files and sets unreadable ones aside in
//!   `lost/`, then a new check says whether the result is consistent;
//! - damage inside the checkpoint or the part of the log the checkpoint
//!   needs (up to its end) cannot be repaired: RocksDB keeps one
//!   checkpoint, and there is no older one to fall back to.
//!
//! Invariants: `check` and a dry run write nothing; with `--apply` the
//! database as it was is first copied whole to
//! `quarantine-<unix ms>/rocksdb` beside it (or the repair is made on a
//! copy in `--out`), so nothing is lost to the repair itself.

use std::io::Write;
use std::path::Path;

use engine::restore::Replay;
use engine::rocks::{rocksdb_repair, CheckpointMeta, Inspect, Offline};
use engine::storage::StorageError;
use engine::types::Zxid;

use crate::rocks::{describe_meta, scan_checkpoint, scan_log, LogFault, LogScan};
use crate::{hex, Progress, Unit, EXIT_ERROR, EXIT_OK, EXIT_PROBLEMS};

/// Everything found, and what a repair could do about it.
struct Analysis {
    lines: Vec<String>,
    problems: usize,
    /// RocksDB could not open or read the database: its own repair is the
    /// remedy.
    rocksdb_damage: Option<String>,
    /// The log entry to cut the log before, when that restores a
    /// consistent state; with the zxids it gives up.
    cut: Option<Cut>,
    /// Why no repair of ours helps (damage the checkpoint needs).
    beyond_repair: Option<String>,
}

struct Cut {
    key: Vec<u8>,
    fault: LogFault,
    /// Lost zxids: from the one after what the intact log reaches to the
    /// highest one a dropped key names, and the entries dropped.
    low: u64,
    high: u64,
    entries: u64,
}

impl Analysis {
    fn problem(&mut self, line: String) {
        self.lines.push(format!("PROBLEM: {line}"));
        self.problems += 1;
    }

    fn note(&mut self, line: String) {
        self.lines.push(line);
    }
}

fn print(out: &mut dyn Write, line: &str) -> Result<(), String> {
    writeln!(out, "{line}").map_err(|error| format!("writing output: {error}"))
}

/// Whether an open failure is damage RocksDB's repair addresses (rather
/// than a directory that is no database, or a permission problem).
fn is_rocksdb_damage(error: &StorageError) -> bool {
    let text = error.to_string();
    text.contains("Corruption") || text.contains("MANIFEST") || text.contains(".sst")
}

fn analyse(dir: &Path) -> Result<Analysis, String> {
    let mut analysis = Analysis {
        lines: Vec::new(),
        problems: 0,
        rocksdb_damage: None,
        cut: None,
        beyond_repair: None,
    };
    analysis.note(format!(
        "RocksDB database {} (storage.backend=rocksdb)",
        dir.display()
    ));
    let inspect = match Inspect::open(dir) {
        Ok(inspect) => inspect,
        Err(error) if is_rocksdb_damage(&error) => {
            analysis.problem(format!("RocksDB cannot open the database: {error}"));
            analysis.rocksdb_damage = Some(error.to_string());
            return Ok(analysis);
        }
        Err(error) => {
            return Err(format!(
                "a RocksDB data directory that does not open: {error}"
            ))
        }
    };
    let total = inspect
        .estimated_log_entries()
        .saturating_add(inspect.estimated_state_entries());
    let mut progress = Progress::counting("zk-snaprepair", "checked", Unit::Records, total);
    let meta = match inspect.meta() {
        Ok(meta) => meta,
        Err(error) => {
            analysis.problem(format!("the checkpoint meta is unreadable: {error}"));
            analysis.beyond_repair = Some(
                "without its meta the checkpoint cannot be told apart, and RocksDB keeps no \
                 older one"
                    .to_string(),
            );
            return Ok(analysis);
        }
    };
    analysis.note(describe_meta(&meta));
    let checkpoint = scan_checkpoint(&inspect, &meta, &mut progress, |_| {})?;
    let mut tree = None;
    match &checkpoint.fault {
        Some(fault) => {
            if fault.starts_with("RocksDB cannot read") {
                analysis.rocksdb_damage = Some(fault.clone());
            } else {
                analysis.beyond_repair = Some(format!(
                    "the checkpoint is damaged ({fault}) and RocksDB keeps no older one"
                ));
            }
            analysis.problem(format!("checkpoint: {fault}"));
        }
        None => match inspect.restore(&meta) {
            Ok(restored) => {
                analysis.note(format!(
                    "checkpoint: {} entries decode ({} nodes, {} sessions)",
                    checkpoint.entries, checkpoint.nodes, checkpoint.sessions
                ));
                tree = Some(restored);
            }
            Err(error) => {
                analysis.problem(format!("the checkpoint does not restore: {error}"));
                analysis.beyond_repair = Some(format!(
                    "the checkpoint does not restore ({error}) and RocksDB keeps no older one"
                ));
            }
        },
    }
    let (log, replayed) = replay_log(&inspect, &meta, tree, &mut progress)?;
    progress.finish();
    report_log(&mut analysis, &meta, &log, replayed);
    Ok(analysis)
}

/// Walks the log, replaying it over the restored checkpoint (if it
/// restored) up to the first fault. The replay's outcome: `None` if there
/// was no tree to replay over.
fn replay_log(
    inspect: &Inspect,
    meta: &CheckpointMeta,
    tree: Option<engine::tree::DataTree>,
    progress: &mut Progress,
) -> Result<(LogScan, Option<Result<u64, String>>), String> {
    let describe = |error: engine::restore::ReplayError| error.describe("checkpoint");
    let Some(mut tree) = tree else {
        return Ok((scan_log(inspect, meta.start, progress, |_| {})?, None));
    };
    let start = i64::try_from(meta.start).map_err(|_| "start zxid out of range".to_string())?;
    let end = i64::try_from(meta.end).map_err(|_| "end zxid out of range".to_string())?;
    let mut replay = Replay::new(Zxid(start), Some((Zxid(end), meta.digest)));
    let mut failed = replay.begin(&mut tree).err().map(describe);
    let log = scan_log(inspect, meta.start, progress, |txn| {
        if failed.is_none() {
            failed = replay.txn(&mut tree, txn).err().map(describe);
        }
    })?;
    let outcome = match failed {
        Some(why) => Err(why),
        None => replay.finish(&tree).map_err(describe),
    };
    Ok((log, Some(outcome)))
}

fn report_log(
    analysis: &mut Analysis,
    meta: &CheckpointMeta,
    log: &LogScan,
    replayed: Option<Result<u64, String>>,
) {
    let below = if log.below_start > 0 {
        format!(
            " ({} more at or below the checkpoint's start, which recovery never reads)",
            log.below_start
        )
    } else {
        String::new()
    };
    match &log.fault {
        None => analysis.note(format!(
            "log: {} entries, {}{below}",
            log.entries,
            log.range()
        )),
        Some(fault) => {
            analysis.problem(format!(
                "log entry at {}: {}; {} intact entries before it ({})",
                fault.place(),
                fault.why,
                log.intact,
                log.range()
            ));
            if fault.unreadable {
                analysis.rocksdb_damage = Some(fault.why.clone());
            }
        }
    }
    let reach = log.reached(meta.start);
    match replayed {
        None => {}
        Some(Ok(_)) => {
            let what = if meta.written {
                format!(
                    "checkpoint: the log replays it to its end {} with the recorded digest",
                    hex(meta.end)
                )
            } else {
                "no checkpoint: the log replays from the empty tree".to_string()
            };
            analysis.note(format!("{what} (the intact log reaches {})", hex(reach)));
            if let Some(fault) = &log.fault {
                if let (Some(key), false) = (&fault.key, fault.unreadable) {
                    let low = reach.saturating_add(1);
                    let high = log.last_after_fault.unwrap_or(low).max(low);
                    analysis.note(format!(
                        "a repair cuts the log before {}: zxids {}–{} would be lost ({} log \
                         entries)",
                        fault.place(),
                        hex(low),
                        hex(high),
                        log.from_fault
                    ));
                    analysis.cut = Some(Cut {
                        key: key.clone(),
                        fault: fault.clone(),
                        low,
                        high,
                        entries: log.from_fault,
                    });
                }
            }
        }
        Some(Err(why)) => {
            analysis.problem(format!("checkpoint: {why}"));
            if analysis.rocksdb_damage.is_none() {
                analysis.beyond_repair.get_or_insert(format!(
                    "the checkpoint (start {}, end {}) needs the log up to its end, and {}; \
                     RocksDB keeps no older checkpoint to fall back to",
                    hex(meta.start),
                    hex(meta.end),
                    match &log.fault {
                        Some(fault) if fault.zxid.is_none_or(|zxid| zxid <= meta.end) => {
                            format!("it is damaged at {}", fault.place())
                        }
                        _ => why.clone(),
                    }
                ));
            }
        }
    }
}

/// `zk-snaprepair check` on the database in `dir`.
pub(crate) fn check(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = analyse(dir).and_then(|analysis| {
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

/// `zk-snaprepair repair` on the database in `dir`; `data_dir` is where
/// the quarantine folder goes.
pub(crate) fn repair(
    dir: &Path,
    data_dir: &Path,
    out_dir: Option<&Path>,
    apply: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    repair_inner(dir, data_dir, out_dir, apply, out).unwrap_or_else(|message| {
        let _ = writeln!(err, "zk-snaprepair: {message}");
        EXIT_ERROR
    })
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

/// Opens the database for writing, refusing in words while it is in use.
fn offline(dir: &Path) -> Result<Offline, String> {
    Offline::open(dir).map_err(|error| match &error {
        StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::ResourceBusy => {
            format!(
                "{}: in use by a running server (its LOCK is held); stop the server, then run \
                 the repair again",
                dir.display()
            )
        }
        _ => format!("{}: {error}", dir.display()),
    })
}

fn empty_or_new(dir: &Path) -> Result<(), String> {
    let io = |error: std::io::Error| format!("{}: {error}", dir.display());
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io)?;
        if entries.next().is_some() {
            return Err(format!(
                "{}: exists and is not empty; give a new directory",
                dir.display()
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(io)
}

/// Copies a directory tree file by file (for a database RocksDB cannot
/// open, so cannot copy itself), each file synced.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let io = |path: &Path, error: std::io::Error| format!("{}: {error}", path.display());
    std::fs::create_dir_all(to).map_err(|error| io(to, error))?;
    for entry in std::fs::read_dir(from).map_err(|error| io(from, error))? {
        let entry = entry.map_err(|error| io(from, error))?;
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|error| io(&entry.path(), error))?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|error| io(&entry.path(), error))?;
            std::fs::File::open(&target)
                .and_then(|file| file.sync_all())
                .map_err(|error| io(&target, error))?;
        }
    }
    std::fs::File::open(to)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| io(to, error))
}

fn repair_inner(
    dir: &Path,
    data_dir: &Path,
    out_dir: Option<&Path>,
    apply: bool,
    out: &mut dyn Write,
) -> Result<u8, String> {
    let analysis = analyse(dir)?;
    for line in &analysis.lines {
        print(out, line)?;
    }
    print(
        out,
        "what a repair can do for RocksDB: cut the log before a damaged entry after the \
         checkpoint's end; run RocksDB's own repair (DB::repair: rebuilds the MANIFEST from the \
         table files, sets unreadable files aside in lost/) when RocksDB cannot open or read \
         the database; nothing for damage the checkpoint needs, as RocksDB keeps one checkpoint",
    )?;
    if analysis.problems == 0 && out_dir.is_none() {
        print(out, "nothing to repair; nothing lost")?;
        return Ok(EXIT_OK);
    }
    let base = if dir == data_dir {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        data_dir.to_path_buf()
    };
    let quarantine = base.join(format!("quarantine-{}", now_ms()));
    let target = out_dir.map(|out_dir| out_dir.join("rocksdb"));
    print(out, "plan:")?;
    let copy_line = match &target {
        Some(target) => format!(
            "  work on a copy in {} (the original is left alone)",
            target.display()
        ),
        None => format!(
            "  in place: first copy the database as it is to {}",
            quarantine.join("rocksdb").display()
        ),
    };
    enum Action {
        Copy,
        Cut,
        RocksRepair,
    }
    let action = if analysis.rocksdb_damage.is_some() {
        print(out, &copy_line)?;
        print(
            out,
            "  run RocksDB's repair (DB::repair), then check again; what unreadable files held \
             is lost, and a second repair may then cut the log",
        )?;
        Action::RocksRepair
    } else if let Some(why) = &analysis.beyond_repair {
        print(out, &format!("cannot repair: {why}"))?;
        return Ok(EXIT_PROBLEMS);
    } else if let Some(cut) = &analysis.cut {
        print(out, &copy_line)?;
        print(
            out,
            &format!(
                "  cut the log before {}: lost zxids {}–{} ({} log entries)",
                cut.fault.place(),
                hex(cut.low),
                hex(cut.high),
                cut.entries
            ),
        )?;
        Action::Cut
    } else if analysis.problems == 0 {
        print(out, &copy_line)?;
        print(out, "  nothing to change: nothing lost")?;
        Action::Copy
    } else {
        print(
            out,
            "cannot repair: no repair of ours addresses these problems",
        )?;
        return Ok(EXIT_PROBLEMS);
    };
    if !apply {
        print(out, "dry run: nothing changed; run again with --apply")?;
        return Ok(if analysis.problems == 0 {
            EXIT_OK
        } else {
            EXIT_PROBLEMS
        });
    }
    let repaired = target.clone().unwrap_or_else(|| dir.to_path_buf());
    match action {
        Action::RocksRepair => {
            // Refuse while a server holds the database; RocksDB's repair
            // takes the lock too, but a copy made meanwhile would be torn.
            if let Err(StorageError::Io { source, .. }) = Offline::open(dir) {
                if source.kind() == std::io::ErrorKind::ResourceBusy {
                    offline(dir)?;
                }
            }
            match &target {
                Some(target) => {
                    empty_or_new(out_dir.unwrap_or(target))?;
                    copy_tree(dir, target)?;
                }
                None => copy_tree(dir, &quarantine.join("rocksdb"))?,
            }
            rocksdb_repair(&repaired).map_err(|error| error.to_string())?;
        }
        Action::Cut | Action::Copy => {
            let source = offline(dir)?;
            match &target {
                Some(target) => {
                    empty_or_new(out_dir.unwrap_or(target))?;
                    source.copy_to(target).map_err(|error| error.to_string())?;
                }
                None => {
                    std::fs::create_dir_all(&quarantine)
                        .map_err(|error| format!("{}: {error}", quarantine.display()))?;
                    source
                        .copy_to(&quarantine.join("rocksdb"))
                        .map_err(|error| error.to_string())?;
                }
            }
            if let (Action::Cut, Some(cut)) = (&action, &analysis.cut) {
                let writer = if target.is_some() {
                    drop(source);
                    offline(&repaired)?
                } else {
                    source
                };
                writer
                    .drop_log_from(&cut.key)
                    .map_err(|error| error.to_string())?;
            }
        }
    }
    // What the repair left, checked as the server will see it.
    let after = analyse(&repaired)?;
    for line in after
        .lines
        .iter()
        .filter(|line| line.starts_with("PROBLEM"))
    {
        print(out, &format!("after the repair: {line}"))?;
    }
    if after.problems > 0 {
        print(
            out,
            &format!(
                "repaired partly: {} problem(s) remain; run zk-snaprepair repair again",
                after.problems
            ),
        )?;
        return Ok(EXIT_PROBLEMS);
    }
    match &analysis.cut {
        Some(cut) => {
            print(
                out,
                &format!(
                    "repaired: lost zxids {}–{} ({} log entries)",
                    hex(cut.low),
                    hex(cut.high),
                    cut.entries
                ),
            )?;
            Ok(EXIT_PROBLEMS)
        }
        None if analysis.problems == 0 => {
            print(out, "repaired: nothing lost")?;
            Ok(EXIT_OK)
        }
        None => {
            print(out, "repaired: the database checks clean now")?;
            Ok(EXIT_PROBLEMS)
        }
    }
}
