//! The `zk-logdump` binary: parses the command line and runs
//! `tools::logdump`. Not where anything is decided; see the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Prints the txns in WAL segments, verifies and counts them, and shows
/// snapshots; built with `--features rocksdb`, the same for a RocksDB-backend
/// data directory's log and checkpoint. Read-only: safe beside a running
/// server.
#[derive(Parser, Debug)]
#[command(
    name = "zk-logdump",
    version,
    after_help = "PATH may be a WAL segment (log.<zxid>), a snapshot (snapshot.<zxid>) or a \
directory (every segment in it, in zxid order; its snapshots too with --tree).\n\n\
Each txn line: zxid, time (ISO-8601 UTC), session, cxid, op, path, payload summary.\n\n\
Exit status:\n  0  success, nothing wrong seen\n  1  damage found (a bad record, header or \
snapshot; with --verify every record is checked)\n  2  usage or I/O error"
)]
struct Args {
    /// WAL segment files, snapshot files or directories.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Only txns with zxid >= this (hex with 0x, or decimal).
    #[arg(long, value_parser = number)]
    from: Option<u64>,
    /// Only txns with zxid <= this (hex with 0x, or decimal).
    #[arg(long, value_parser = number)]
    to: Option<u64>,
    /// Only txns of this session (hex with 0x, or decimal).
    #[arg(long, value_parser = number)]
    session: Option<u64>,
    /// Only txns touching a path that starts with this (also filters --tree).
    #[arg(long = "path", value_name = "PREFIX")]
    path_prefix: Option<String>,
    /// Only txns of this op (create, delete, setData, setACL, multi,
    /// createSession, closeSession, error, ...; a multi matches its sub-ops).
    #[arg(long)]
    op: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Check every record's crc32c and decoding; report the first bad offset
    /// per file.
    #[arg(long)]
    verify: bool,
    /// Counts and bytes per op, zxid range and gaps in the zxid sequence.
    #[arg(long)]
    stats: bool,
    /// For snapshots: list every znode in path order, then the sessions.
    #[arg(long)]
    tree: bool,
}

fn number(text: &str) -> Result<u64, String> {
    tools::parse_number(text)
}

fn main() -> ExitCode {
    let args: Args = match tools::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let options = tools::logdump::Options {
        paths: args.paths,
        from: args.from,
        to: args.to,
        session: args.session,
        path_prefix: args.path_prefix,
        op: args.op,
        json: args.json,
        verify: args.verify,
        stats: args.stats,
        tree: args.tree,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = std::io::stderr();
    let status = tools::logdump::run(&options, &mut out, &mut err);
    if std::io::Write::flush(&mut out).is_err() {
        return ExitCode::from(tools::EXIT_ERROR);
    }
    ExitCode::from(status)
}
