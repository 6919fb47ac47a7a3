//! `zk-logdump` on a RocksDB-backend data directory (feature `rocksdb`):
//! the txns of the `log` column family with the native log's lines, JSON,
//! filters and `--stats` (rendered by `logdump::dump_record`); `--verify`
//! of the log against the checkpoint and of the checkpoint's entries; and
//! with `--tree` the checkpoint's summary and tree.
//!
//! Read-only and safe beside a live server (`engine::rocks::Inspect`, a
//! secondary instance: the database as of opening). Invariant: the same
//! txns print the same lines on either backend; only the JSON location
//! differs (`file` is the database directory, `key` replaces `offset`).

use std::io::Write;
use std::path::Path;

use engine::persist::SnapshotRecord;
use engine::rocks::{CheckpointMeta, Inspect};
use serde_json::json;

use crate::logdump::{
    dump_record, key_hex, print_tree, write_line, Location, Next, Options, Stats, TreeNode,
};
use crate::rocks::{describe_meta, open, scan_checkpoint, scan_log};
use crate::{hex, Progress, Unit};

/// Runs the asked-for parts on the database in `dir`. True if anything
/// is wrong.
pub(crate) fn run(
    options: &Options,
    dir: &Path,
    stats: &mut Stats,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, String> {
    let inspect = open(dir)?;
    let mut problems = false;
    if options.verify {
        problems |= verify(options, &inspect, out)?;
    }
    if options.stats || !options.verify {
        problems |= dump(options, &inspect, stats, out, err)?;
    }
    if options.tree {
        problems |= tree(options, &inspect, out)?;
    }
    Ok(problems)
}

/// The log's txns, printed or counted. True if an entry in range does not
/// decode or the log cannot be read on.
fn dump(
    options: &Options,
    inspect: &Inspect,
    stats: &mut Stats,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, String> {
    let dir = inspect.dir().display().to_string();
    let mut progress = Progress::counting(
        "zk-logdump",
        "scanned",
        Unit::Records,
        inspect.estimated_log_entries(),
    );
    let mut undecodable: Option<(u64, String)> = None;
    let mut undecodable_count = 0u64;
    let mut bad_keys = 0u64;
    let entries = inspect
        .log(options.from.unwrap_or(0))
        .map_err(|error| error.to_string())?;
    for entry in entries {
        progress.advance(1);
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                progress.finish();
                let _ = writeln!(err, "zk-logdump: {dir}: the log stops: {error}");
                return Ok(true);
            }
        };
        let Some(zxid) = entry.zxid else {
            bad_keys += 1;
            let _ = writeln!(
                err,
                "zk-logdump: {dir}: log key {} is not a zxid ({} bytes)",
                key_hex(&entry.key),
                entry.key.len()
            );
            continue;
        };
        let location = Location::Rocks {
            dir: &dir,
            key: &entry.key,
        };
        let in_range = options.to.is_none_or(|to| zxid <= to);
        if entry.txn.is_err() && in_range {
            undecodable_count += 1;
            undecodable.get_or_insert((zxid, key_hex(&entry.key)));
        }
        let txn = entry.txn.as_ref().map_err(String::as_str);
        if dump_record(options, zxid, entry.bytes, txn, &location, stats, out)? == Next::Stop {
            break;
        }
    }
    progress.finish();
    if let Some((zxid, key)) = &undecodable {
        let _ = writeln!(
            err,
            "zk-logdump: {dir}: {undecodable_count} log entries do not decode, the first at key \
             {key} (zxid {}); see zk-snaprepair",
            hex(*zxid)
        );
    }
    Ok(undecodable.is_some() || bad_keys > 0)
}

/// `--verify`: every log entry decodes, holds the zxid its key names, and
/// they follow each other from right after the checkpoint's start to at
/// least its end; every checkpoint entry decodes. One line for each (or
/// one JSON object). True if anything is wrong.
fn verify(options: &Options, inspect: &Inspect, out: &mut dyn Write) -> Result<bool, String> {
    let file = inspect.dir().display().to_string();
    let mut problems = Vec::new();
    let meta = match inspect.meta() {
        Ok(meta) => Some(meta),
        Err(error) => {
            problems.push(format!("the checkpoint meta is unreadable: {error}"));
            None
        }
    };
    let total = inspect
        .estimated_log_entries()
        .saturating_add(inspect.estimated_state_entries());
    let mut progress = Progress::counting("zk-logdump", "verified", Unit::Records, total);
    let start = meta.map_or(0, |meta| meta.start);
    let scan = scan_log(inspect, start, &mut progress, |_| {})?;
    if let Some(fault) = &scan.fault {
        problems.push(format!("log entry at {}: {}", fault.place(), fault.why));
    }
    if let Some(meta) = &meta {
        let reached = scan.reached(meta.start);
        if scan.fault.is_none() && reached < meta.end {
            problems.push(format!(
                "the log ends at {reached:#x}, before the checkpoint's end {:#x}: the \
                 checkpoint cannot be completed",
                meta.end
            ));
        }
    }
    let checkpoint = match &meta {
        Some(meta) => Some(scan_checkpoint(inspect, meta, &mut progress, |_| {})?),
        None => None,
    };
    progress.finish();
    if let Some(fault) = checkpoint.as_ref().and_then(|scan| scan.fault.as_ref()) {
        problems.push(fault.clone());
    }
    let bad_key = scan
        .fault
        .as_ref()
        .and_then(|fault| fault.key.as_deref())
        .map(key_hex);
    if options.json {
        let value = json!({
            "file": file,
            "backend": "rocksdb",
            "ok": problems.is_empty(),
            "records": scan.intact,
            "entries": scan.entries,
            "first_zxid": scan.first,
            "last_zxid": scan.last,
            "bad_key": bad_key,
            "problems": problems,
            "checkpoint": meta.map(|meta| json!({
                "written": meta.written,
                "generation": meta.generation,
                "start_zxid": meta.start,
                "end_zxid": meta.end,
                "digest": format!("{:016x}", meta.digest),
                "nodes": meta.nodes,
                "entries": checkpoint.as_ref().map(|scan| scan.entries),
            })),
        });
        write_line(out, &value.to_string())?;
        return Ok(!problems.is_empty());
    }
    let range = match (scan.first, scan.last) {
        (Some(first), Some(last)) => format!(", zxids {}–{}", hex(first), hex(last)),
        _ => String::new(),
    };
    if problems.is_empty() {
        write_line(out, &format!("{file}: ok, {} records{range}", scan.intact))?;
        if let (Some(meta), Some(checkpoint)) = (&meta, &checkpoint) {
            write_line(
                out,
                &format!(
                    "{file}: ok, {}, {} entries",
                    describe_meta(meta),
                    checkpoint.entries
                ),
            )?;
        }
        return Ok(false);
    }
    for problem in &problems {
        write_line(out, &format!("{file}: {problem}"))?;
    }
    let first_bad = bad_key.map_or_else(String::new, |key| format!(" (first bad key {key})"));
    write_line(
        out,
        &format!(
            "{file}: {} intact records before the first problem{first_bad}{range}",
            scan.intact
        ),
    )?;
    Ok(true)
}

/// `--tree`: the checkpoint's summary, then its nodes in path order and its
/// sessions, as for a snapshot. True if it does not read or decode.
fn tree(options: &Options, inspect: &Inspect, out: &mut dyn Write) -> Result<bool, String> {
    let file = inspect.dir().display().to_string();
    let meta = match inspect.meta() {
        Ok(meta) => meta,
        Err(error) => {
            write_line(
                out,
                &format!("{file}: the checkpoint meta is unreadable: {error}"),
            )?;
            return Ok(true);
        }
    };
    let mut nodes: Vec<TreeNode> = Vec::new();
    let mut sessions = Vec::new();
    let mut progress = Progress::counting(
        "zk-logdump",
        "read",
        Unit::Records,
        inspect.estimated_state_entries(),
    );
    let scan = scan_checkpoint(inspect, &meta, &mut progress, |record| match record {
        SnapshotRecord::Node {
            path,
            data,
            kind,
            stat,
            ..
        } => nodes.push((path, stat, kind, data.map_or(0, |data| data.len()))),
        SnapshotRecord::Session {
            session,
            timeout_ms,
        } => sessions.push((session, timeout_ms)),
    })?;
    progress.finish();
    summary(options, &file, &meta, scan.entries, scan.bytes, out)?;
    if let Some(fault) = &scan.fault {
        write_line(out, &format!("{file}: corrupt: {fault}"))?;
        return Ok(true);
    }
    print_tree(options, nodes, &sessions, out)?;
    Ok(false)
}

fn summary(
    options: &Options,
    file: &str,
    meta: &CheckpointMeta,
    entries: u64,
    bytes: u64,
    out: &mut dyn Write,
) -> Result<(), String> {
    if options.json {
        let value = json!({
            "checkpoint": file,
            "backend": "rocksdb",
            "written": meta.written,
            "generation": meta.generation,
            "start_zxid": meta.start,
            "end_zxid": meta.end,
            "digest": format!("{:016x}", meta.digest),
            "nodes": meta.nodes,
            "entry_count": entries,
            "bytes": bytes,
        });
        return write_line(out, &value.to_string());
    }
    let lines = [
        format!("checkpoint {file} (RocksDB)"),
        format!(
            "  generation {}, start zxid {}, end zxid {}",
            meta.generation,
            hex(meta.start),
            hex(meta.end)
        ),
        format!(
            "  {} nodes at the end, digest {:016x}; {entries} entries, {bytes} bytes",
            meta.nodes, meta.digest
        ),
    ];
    for line in &lines {
        write_line(out, line)?;
    }
    Ok(())
}
