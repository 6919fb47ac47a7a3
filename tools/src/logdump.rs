//! `zk-logdump`: prints, filters, verifies and counts the txns in WAL
//! segments, and summarises or lists snapshots; a RocksDB-backend data
//! directory (feature `rocksdb`, `rocks_logdump`) gets the same for its log
//! and checkpoint, through the record rendering here.
//!
//! Not a repair tool and not a reader of its own: segments are walked with
//! `wal::SegmentFile` (memory mapped; only the pages touched are read) and
//! snapshots with `snapshot::SnapshotReader`; nothing is ever written, so it
//! is safe beside a live server (which may leave a half-written record at the
//! end of the newest segment: that shows as a torn tail).
//!
//! Invariant: output goes to the given writers only; the exit status is
//! `EXIT_ERROR` when an input could not be read at all, else `EXIT_PROBLEMS`
//! when any damage was seen, else `EXIT_OK`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use engine::persist::{decode_record, decode_txn, SnapshotRecord};
use engine::txn::{NodeKind, Txn};
use engine::types::Stat;
use serde_json::json;

use crate::describe;
use crate::inspect::{self, SegmentEnd};
use crate::{hex, iso_time, zxid_follows, Progress, Unit, EXIT_ERROR, EXIT_OK, EXIT_PROBLEMS};

/// Gaps listed one by one in `--stats`; the rest are only counted.
const GAPS_LISTED_MAX: usize = 20;

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub session: Option<u64>,
    pub path_prefix: Option<String>,
    pub op: Option<String>,
    pub json: bool,
    pub verify: bool,
    pub stats: bool,
    pub tree: bool,
}

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    /// A segment, with the zxid its name claims when listed from a dir.
    Segment(PathBuf, Option<u64>),
    Snapshot(PathBuf),
    /// A RocksDB-backend database (its directory).
    Rocks(PathBuf),
}

/// Totals for `--stats`.
#[derive(Default)]
pub(crate) struct Stats {
    /// op name -> (count, bytes on disk).
    ops: BTreeMap<String, (u64, u64)>,
    records: u64,
    bytes: u64,
    first: Option<u64>,
    last: Option<u64>,
    gaps: Vec<(u64, u64)>,
    gap_count: u64,
}

impl Stats {
    /// Notes a record's zxid in sequence (every record in range, filtered or
    /// not, so gaps are gaps in the log and not in the selection).
    fn sequence(&mut self, zxid: u64) {
        if let Some(previous) = self.last {
            if !zxid_follows(previous, zxid) {
                self.gap_count += 1;
                if self.gaps.len() < GAPS_LISTED_MAX {
                    self.gaps.push((previous, zxid));
                }
            }
        }
        self.first.get_or_insert(zxid);
        self.last = Some(zxid);
    }

    fn count(&mut self, op: &str, bytes: u64) {
        let entry = self.ops.entry(op.to_string()).or_default();
        entry.0 += 1;
        entry.1 += bytes;
        self.records += 1;
        self.bytes += bytes;
    }
}

/// Runs the tool; returns the exit status.
pub fn run(options: &Options, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match run_inner(options, out, err) {
        Ok(status) => status,
        Err(message) => {
            let _ = writeln!(err, "zk-logdump: {message}");
            EXIT_ERROR
        }
    }
}

fn run_inner(options: &Options, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, String> {
    let inputs = resolve(options, err)?;
    let total_bytes: u64 = inputs
        .iter()
        .filter_map(|input| match input {
            Input::Segment(path, _) => std::fs::metadata(path).ok().map(|m| m.len()),
            Input::Snapshot(_) | Input::Rocks(_) => None,
        })
        .sum();
    // One progress for the native segments: verified, or else scanned.
    let action = if options.verify {
        "verified"
    } else {
        "scanned"
    };
    let mut progress = Progress::counting("zk-logdump", action, Unit::Bytes, total_bytes);
    let mut problems = false;
    let mut stats = Stats::default();
    let mut previous_last: Option<u64> = None;
    for input in &inputs {
        match input {
            Input::Segment(path, name_zxid) => {
                if options.verify {
                    problems |=
                        verify_segment(path, *name_zxid, options.json, &mut previous_last, out)?;
                    progress.advance(std::fs::metadata(path).map_or(0, |m| m.len()));
                }
                if options.stats || !options.verify {
                    let mut scanned = Progress::counting("zk-logdump", "scanned", Unit::Bytes, 0);
                    let progress = if options.verify {
                        &mut scanned
                    } else {
                        &mut progress
                    };
                    problems |= dump_segment(options, path, &mut stats, progress, out, err)?;
                }
            }
            Input::Snapshot(path) => {
                problems |= show_snapshot(options, path, out)?;
            }
            Input::Rocks(dir) => {
                problems |= rocks_input(options, dir, &mut stats, out, err)?;
            }
        }
    }
    progress.finish();
    if options.stats {
        print_stats(options, &stats, out)?;
    }
    Ok(if problems { EXIT_PROBLEMS } else { EXIT_OK })
}

#[cfg(feature = "rocksdb")]
fn rocks_input(
    options: &Options,
    dir: &Path,
    stats: &mut Stats,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, String> {
    crate::rocks_logdump::run(options, dir, stats, out, err)
}

/// Never reached: without the feature `resolve` refuses RocksDB dirs.
#[cfg(not(feature = "rocksdb"))]
fn rocks_input(
    _options: &Options,
    dir: &Path,
    _stats: &mut Stats,
    _out: &mut dyn Write,
    _err: &mut dyn Write,
) -> Result<bool, String> {
    Err(inspect::rocksdb_notice(dir)
        .unwrap_or_else(|| format!("{}: not a RocksDB data directory", dir.display())))
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> String {
    format!("{}: {error}", path.display())
}

/// Expands directories and tells segments from snapshots by their magic.
fn resolve(options: &Options, err: &mut dyn Write) -> Result<Vec<Input>, String> {
    if options.paths.is_empty() {
        return Err("no PATH given".to_string());
    }
    let mut inputs = Vec::new();
    for path in &options.paths {
        let metadata = std::fs::metadata(path).map_err(|error| io_error(path, error))?;
        if metadata.is_dir() {
            if let Some(rocks_dir) = inspect::rocksdb_dir(path) {
                if !cfg!(feature = "rocksdb") {
                    return Err(inspect::rocksdb_notice(path).unwrap_or_default());
                }
                inputs.push(Input::Rocks(rocks_dir));
                continue;
            }
            let segments = wal::segments(path).map_err(|error| error.to_string())?;
            if segments.is_empty() {
                let _ = writeln!(
                    err,
                    "zk-logdump: {}: no WAL segments (log.<zxid>)",
                    path.display()
                );
            }
            inputs.extend(
                segments
                    .into_iter()
                    .map(|(zxid, path)| Input::Segment(path, Some(zxid))),
            );
            if options.tree {
                let mut snapshots = snapshot::list(path).map_err(|error| error.to_string())?;
                // Listed newest first; show oldest first like the log.
                snapshots.reverse();
                inputs.extend(snapshots.into_iter().map(|(_, path)| Input::Snapshot(path)));
            }
            continue;
        }
        let mut magic = [0u8; 8];
        let mut file = File::open(path).map_err(|error| io_error(path, error))?;
        let read = file
            .read(&mut magic)
            .map_err(|error| io_error(path, error))?;
        if read == magic.len() && magic == wal::format::MAGIC {
            let name_zxid = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_prefix("log."))
                .filter(|hex| hex.len() == 16)
                .and_then(|hex| u64::from_str_radix(hex, 16).ok());
            inputs.push(Input::Segment(path.clone(), name_zxid));
        } else if read == magic.len() && magic == *b"\x89ZKSNP\r\n" {
            inputs.push(Input::Snapshot(path.clone()));
        } else {
            return Err(format!(
                "{}: neither a WAL segment nor a snapshot (unknown magic)",
                path.display()
            ));
        }
    }
    Ok(inputs)
}

pub(crate) fn write_line(out: &mut dyn Write, line: &str) -> Result<(), String> {
    writeln!(out, "{line}").map_err(|error| format!("writing output: {error}"))
}

/// `--verify` for one segment: every record's crc, the tail, and that every
/// payload decodes as the txn its frame says. True if anything is wrong.
fn verify_segment(
    path: &Path,
    name_zxid: Option<u64>,
    json: bool,
    previous_last: &mut Option<u64>,
    out: &mut dyn Write,
) -> Result<bool, String> {
    let info = inspect::segment(path, name_zxid, None)?;
    let file = path.display();
    let mut problems = Vec::new();
    match &info.end {
        SegmentEnd::Clean => {}
        SegmentEnd::Torn { offset, why } => {
            problems.push(format!("bad record at offset {offset}: {why} (torn tail)"))
        }
        SegmentEnd::Corrupt { offset, why } => problems.push(format!(
            "bad record at offset {offset}: {why} (corrupt: valid records follow)"
        )),
        SegmentEnd::BadHeader(why) => problems.push(format!("bad header at offset 0: {why}")),
    }
    if let (Some(first), Some(previous)) = (info.first_zxid, *previous_last) {
        if first <= previous {
            problems.push(format!(
                "first zxid {} does not follow the previous file's last {}",
                hex(first),
                hex(previous)
            ));
        }
    }
    *previous_last = info.last_zxid.or(*previous_last);
    if !matches!(info.end, SegmentEnd::BadHeader(_)) {
        let segment = wal::SegmentFile::open(path).map_err(|error| error.to_string())?;
        let scan = segment.scan().map_err(|error| error.to_string())?;
        for record in scan {
            match decode_txn(record.payload) {
                Ok(txn) if u64::try_from(txn.zxid.0).ok() == Some(record.zxid) => {}
                Ok(txn) => problems.push(format!(
                    "record at offset {} is framed as zxid {} but holds txn {}",
                    record.offset,
                    hex(record.zxid),
                    txn.zxid
                )),
                Err(error) => problems.push(format!(
                    "record at offset {} (zxid {}) does not decode: {error}",
                    record.offset,
                    hex(record.zxid)
                )),
            }
        }
    }
    if json {
        let value = json!({
            "file": file.to_string(),
            "ok": problems.is_empty(),
            "records": info.records,
            "first_zxid": info.first_zxid,
            "last_zxid": info.last_zxid,
            "bad_offset": info.end.bad_offset(),
            "problems": problems,
        });
        write_line(out, &value.to_string())?;
        return Ok(!problems.is_empty());
    }
    let range = match (info.first_zxid, info.last_zxid) {
        (Some(first), Some(last)) => format!(", zxids {}–{}", hex(first), hex(last)),
        _ => String::new(),
    };
    if problems.is_empty() {
        write_line(out, &format!("{file}: ok, {} records{range}", info.records))?;
        return Ok(false);
    }
    for problem in &problems {
        write_line(out, &format!("{file}: {problem}"))?;
    }
    write_line(
        out,
        &format!(
            "{file}: {} intact records before the first problem{range}",
            info.records
        ),
    )?;
    Ok(true)
}

/// Whether a decoded txn passes the session, path and op filters.
pub(crate) fn selected(options: &Options, txn: &Txn) -> bool {
    if let Some(session) = options.session {
        if txn.session.0 as u64 != session {
            return false;
        }
    }
    if let Some(prefix) = &options.path_prefix {
        let paths = describe::touched_paths(&txn.op);
        if !paths.iter().any(|path| path.starts_with(prefix.as_str())) {
            return false;
        }
    }
    if let Some(op) = &options.op {
        if !describe::op_matches(&txn.op, op) {
            return false;
        }
    }
    true
}

/// Prints (or counts, with `--stats`) the selected txns of one segment.
/// True if the records stop at a bad frame.
fn dump_segment(
    options: &Options,
    path: &Path,
    stats: &mut Stats,
    progress: &mut Progress,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<bool, String> {
    let segment = wal::SegmentFile::open(path).map_err(|error| error.to_string())?;
    let mut scan = match segment.scan() {
        Ok(scan) => scan,
        Err(error) => {
            let _ = writeln!(err, "zk-logdump: {error}");
            return Ok(true);
        }
    };
    let file = path.display().to_string();
    for record in scan.by_ref() {
        let frame_bytes =
            u64::try_from(wal::format::frame_bytes(record.payload.len())).unwrap_or(u64::MAX);
        progress.advance(frame_bytes);
        let txn = decode_txn(record.payload).map_err(|error| error.to_string());
        let location = Location::Segment {
            file: &file,
            offset: record.offset,
        };
        let next = dump_record(
            options,
            record.zxid,
            frame_bytes,
            txn.as_ref().map_err(String::as_str),
            &location,
            stats,
            out,
        )?;
        if next == Next::Stop {
            break;
        }
    }
    if let Some(wal::ScanStop::Bad { offset, why }) = scan.stop() {
        let stop = wal::ScanStop::Bad { offset, why };
        let _ = writeln!(
            err,
            "zk-logdump: {file}: records stop at offset {offset}: {}",
            inspect::describe_stop(&stop)
        );
        return Ok(true);
    }
    Ok(false)
}

/// Where a txn was read: the `file` and `offset` (or `key`) of its JSON line.
pub(crate) enum Location<'a> {
    Segment {
        file: &'a str,
        offset: u64,
    },
    #[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
    Rocks {
        dir: &'a str,
        key: &'a [u8],
    },
}

impl Location<'_> {
    fn add_to(&self, value: &mut serde_json::Value) {
        match self {
            Location::Segment { file, offset } => {
                value["file"] = json!(file);
                value["offset"] = json!(offset);
            }
            Location::Rocks { dir, key } => {
                value["file"] = json!(dir);
                value["key"] = json!(key_hex(key));
            }
        }
    }
}

/// A RocksDB key as the tools print it: lower-case hex, no prefix.
pub(crate) fn key_hex(key: &[u8]) -> String {
    key.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether the caller reads on: `--to` stops at the first zxid above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Go,
    Stop,
}

/// Prints (or counts, with `--stats`) one record of a log, native or
/// RocksDB: the zxid bounds, the filters, then a line or a JSON object.
/// `txn` is the decoded txn or why it does not decode; `bytes` its size.
pub(crate) fn dump_record(
    options: &Options,
    zxid: u64,
    bytes: u64,
    txn: Result<&Txn, &str>,
    location: &Location,
    stats: &mut Stats,
    out: &mut dyn Write,
) -> Result<Next, String> {
    if options.from.is_some_and(|from| zxid < from) {
        return Ok(Next::Go);
    }
    if options.to.is_some_and(|to| zxid > to) {
        return Ok(Next::Stop);
    }
    let print = !options.stats && !options.verify;
    stats.sequence(zxid);
    let txn = match txn {
        Ok(txn) => txn,
        Err(error) => {
            let filtered =
                options.session.is_some() || options.path_prefix.is_some() || options.op.is_some();
            if filtered {
                return Ok(Next::Go);
            }
            stats.count("undecodable", bytes);
            if print && options.json {
                let mut value = json!({
                    "zxid": zxid, "zxid_hex": hex(zxid),
                    "op": "undecodable", "error": error,
                });
                location.add_to(&mut value);
                write_line(out, &value.to_string())?;
            } else if print {
                write_line(out, &format!("{} undecodable payload: {error}", hex(zxid)))?;
            }
            return Ok(Next::Go);
        }
    };
    if !selected(options, txn) {
        return Ok(Next::Go);
    }
    stats.count(describe::op_name(&txn.op), bytes);
    if !print {
        return Ok(Next::Go);
    }
    if options.json {
        let mut value = json!({
            "zxid": zxid,
            "zxid_hex": hex(zxid),
            "time_ms": txn.time_ms,
            "time": iso_time(txn.time_ms),
            "session": format!("0x{:x}", txn.session.0 as u64),
            "cxid": txn.cxid,
            "op": describe::op_name(&txn.op),
            "path": describe::op_path(&txn.op),
            "details": describe::details(&txn.op),
        });
        location.add_to(&mut value);
        write_line(out, &value.to_string())?;
    } else {
        write_line(out, &describe::txn_line(txn))?;
    }
    Ok(Next::Go)
}

pub(crate) fn print_stats(
    options: &Options,
    stats: &Stats,
    out: &mut dyn Write,
) -> Result<(), String> {
    if options.json {
        let ops: serde_json::Map<String, serde_json::Value> = stats
            .ops
            .iter()
            .map(|(op, (count, bytes))| (op.clone(), json!({"count": count, "bytes": bytes})))
            .collect();
        let gaps: Vec<_> = stats
            .gaps
            .iter()
            .map(|(after, next)| json!({"after": after, "next": next}))
            .collect();
        let value = json!({
            "records": stats.records, "bytes": stats.bytes,
            "first_zxid": stats.first, "last_zxid": stats.last,
            "ops": ops, "gap_count": stats.gap_count, "gaps": gaps,
        });
        return write_line(out, &value.to_string());
    }
    let range = match (stats.first, stats.last) {
        (Some(first), Some(last)) => format!("zxids {}–{}", hex(first), hex(last)),
        _ => "no zxids".to_string(),
    };
    write_line(
        out,
        &format!(
            "records: {} ({} bytes), {range}",
            stats.records, stats.bytes
        ),
    )?;
    write_line(
        out,
        &format!("{:<16} {:>10} {:>14}", "op", "count", "bytes"),
    )?;
    for (op, (count, bytes)) in &stats.ops {
        write_line(out, &format!("{op:<16} {count:>10} {bytes:>14}"))?;
    }
    if stats.gap_count == 0 {
        return write_line(out, "gaps: none");
    }
    write_line(out, &format!("gaps: {}", stats.gap_count))?;
    for (after, next) in &stats.gaps {
        write_line(
            out,
            &format!("  after {}: next {}", hex(*after), hex(*next)),
        )?;
    }
    Ok(())
}

/// Orders znode paths component by component, so `/a/b` sorts right after
/// `/a` and before `/a b`.
fn path_order(left: &str, right: &str) -> Ordering {
    left.split('/').cmp(right.split('/'))
}

/// Summary, `--tree` or `--verify` of one snapshot. True if it is damaged.
fn show_snapshot(options: &Options, path: &Path, out: &mut dyn Write) -> Result<bool, String> {
    let file = path.display();
    let reader = match snapshot::SnapshotReader::open(path) {
        Ok(reader) => reader,
        Err(error) if error.is_corrupt() => {
            write_line(out, &format!("{file}: corrupt: {error}"))?;
            return Ok(true);
        }
        Err(error) => return Err(error.to_string()),
    };
    let header = *reader.header();
    let trailer = *reader.trailer();
    if options.verify && !options.tree {
        return match snapshot::SnapshotReader::verify(path) {
            Ok(summary) => {
                let entries: u64 = summary.sections.values().map(|s| s.entries).sum();
                write_line(
                    out,
                    &format!(
                        "{file}: ok, snapshot {}–{}, {entries} entries",
                        hex(header.start_zxid),
                        hex(trailer.end_zxid)
                    ),
                )?;
                Ok(false)
            }
            Err(error) => {
                write_line(out, &format!("{file}: corrupt: {error}"))?;
                Ok(true)
            }
        };
    }
    if !options.tree {
        return snapshot_summary(options, path, &header, &trailer, out);
    }
    let mut nodes: Vec<TreeNode> = Vec::new();
    let mut sessions = Vec::new();
    for entry in reader.entries() {
        let bytes = match entry {
            Ok((_, bytes)) => bytes,
            Err(error) => {
                write_line(out, &format!("{file}: corrupt: {error}"))?;
                return Ok(true);
            }
        };
        match decode_record(&bytes) {
            Ok(SnapshotRecord::Node {
                path,
                data,
                kind,
                stat,
                ..
            }) => nodes.push((path, stat, kind, data.map_or(0, |d| d.len()))),
            Ok(SnapshotRecord::Session {
                session,
                timeout_ms,
            }) => sessions.push((session, timeout_ms)),
            Err(error) => {
                write_line(out, &format!("{file}: an entry does not decode: {error}"))?;
                return Ok(true);
            }
        }
    }
    print_tree(options, nodes, &sessions, out)?;
    Ok(false)
}

/// A node as `--tree` lists it: path, stat, kind and data length.
pub(crate) type TreeNode = (String, Stat, NodeKind, usize);

/// `--tree`: the nodes in path order (within `--path`), then the sessions.
pub(crate) fn print_tree(
    options: &Options,
    mut nodes: Vec<TreeNode>,
    sessions: &[(engine::types::SessionId, i32)],
    out: &mut dyn Write,
) -> Result<(), String> {
    nodes.sort_by(|left, right| path_order(&left.0, &right.0));
    for (path, stat, kind, data_len) in &nodes {
        if let Some(prefix) = &options.path_prefix {
            if !path.starts_with(prefix.as_str()) {
                continue;
            }
        }
        let owner = kind.client_ephemeral_owner() as u64;
        let line = if options.json {
            json!({
                "path": path, "czxid": stat.czxid, "mzxid": stat.mzxid, "pzxid": stat.pzxid,
                "ctime": stat.ctime, "mtime": stat.mtime, "version": stat.version,
                "cversion": stat.cversion, "aversion": stat.aversion,
                "ephemeral_owner": format!("0x{owner:x}"), "num_children": stat.num_children,
                "data_len": data_len,
            })
            .to_string()
        } else {
            format!(
                "{path} czxid={} mzxid={} pzxid={} version={} cversion={} aversion={} \
                 owner=0x{owner:x} children={} len={data_len}",
                hex(stat.czxid as u64),
                hex(stat.mzxid as u64),
                hex(stat.pzxid as u64),
                stat.version,
                stat.cversion,
                stat.aversion,
                stat.num_children,
            )
        };
        write_line(out, &line)?;
    }
    if options.path_prefix.is_none() {
        for (session, timeout_ms) in sessions {
            let line = if options.json {
                json!({"session": format!("0x{:x}", session.0 as u64), "timeout_ms": timeout_ms})
                    .to_string()
            } else {
                format!("session 0x{:x} timeout={timeout_ms}ms", session.0 as u64)
            };
            write_line(out, &line)?;
        }
    }
    Ok(())
}

fn snapshot_summary(
    options: &Options,
    path: &Path,
    header: &snapshot::Header,
    trailer: &snapshot::Trailer,
    out: &mut dyn Write,
) -> Result<bool, String> {
    let file = path.display();
    let verified = snapshot::SnapshotReader::verify(path);
    let sections: Vec<(String, u64, u64)> = match &verified {
        Ok(summary) => summary
            .sections
            .iter()
            .map(|(section, s)| (section.name().to_string(), s.entries, s.payload_bytes))
            .collect(),
        Err(_) => Vec::new(),
    };
    if options.json {
        let value = json!({
            "file": file.to_string(),
            "format_version": header.format_version,
            "database_id": format!("{:016x}", header.database_id),
            "start_zxid": header.start_zxid,
            "end_zxid": trailer.end_zxid,
            "created_ms": header.created_ms,
            "entry_count": trailer.entry_count,
            "uncompressed_bytes": trailer.uncompressed_bytes,
            "compressed_bytes": trailer.compressed_bytes,
            "digest": format!("{:016x}", trailer.digest),
            "sections": sections.iter().map(|(name, entries, bytes)| {
                json!({"section": name, "entries": entries, "payload_bytes": bytes})
            }).collect::<Vec<_>>(),
            "valid": verified.is_ok(),
            "error": verified.as_ref().err().map(|error| error.to_string()),
        });
        write_line(out, &value.to_string())?;
    } else {
        let lines = [
            format!("snapshot {file}"),
            format!(
                "  format version {}, database id {:016x}",
                header.format_version, header.database_id
            ),
            format!(
                "  start zxid {}, end zxid {}, created {}",
                hex(header.start_zxid),
                hex(trailer.end_zxid),
                i64::try_from(header.created_ms).map_or_else(|_| "?".to_string(), iso_time)
            ),
            format!(
                "  {} entries, {} bytes uncompressed, {} compressed, digest {:016x}",
                trailer.entry_count,
                trailer.uncompressed_bytes,
                trailer.compressed_bytes,
                trailer.digest
            ),
        ];
        for line in &lines {
            write_line(out, line)?;
        }
        for (name, entries, bytes) in &sections {
            write_line(
                out,
                &format!("  section {name}: {entries} entries, {bytes} bytes"),
            )?;
        }
        match &verified {
            Ok(_) => write_line(out, "  checksums ok")?,
            Err(error) => write_line(out, &format!("  corrupt: {error}"))?,
        }
    }
    Ok(verified.is_err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sort_by_component() {
        let mut paths = vec!["/a b", "/a/b", "/", "/a"];
        paths.sort_by(|l, r| path_order(l, r));
        assert_eq!(paths, vec!["/", "/a", "/a/b", "/a b"]);
    }

    #[test]
    fn missing_input_is_a_usage_error() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let options = Options {
            paths: vec![PathBuf::from("/nonexistent/zk-logdump-test")],
            ..Options::default()
        };
        assert_eq!(run(&options, &mut out, &mut err), EXIT_ERROR);
        assert!(String::from_utf8_lossy(&err).contains("nonexistent"));
    }
}
