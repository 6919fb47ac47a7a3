//! The `zk-snaprepair` binary: parses the command line and runs
//! `tools::snaprepair`. Not where anything is decided; see the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Checks a data directory (snapshots and WAL segments) and rebuilds a
/// consistent one from the newest valid snapshot plus the longest intact log.
/// Built with `--features rocksdb`, also checks a RocksDB-backend directory
/// and repairs it with the server stopped (cuts a damaged log tail, or runs
/// RocksDB's own repair).
#[derive(Parser, Debug)]
#[command(
    name = "zk-snaprepair",
    version,
    after_help = "Exit status:\n  check:  0 clean, 1 problems found, 2 usage or I/O error\n  \
repair: 0 repaired (or nothing to do) with nothing lost, 1 problems remain (dry run, or no \
consistent state can be built) or data was lost, 2 usage or I/O error\n\n\
A torn last batch of the newest segment (an unfinished write) is not a problem: the \
server cuts it at start-up."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reports every snapshot and segment and whether the log completes the
    /// newest valid snapshot. Read-only.
    Check {
        /// The server's dataDir (snapshots and the database_id file).
        data_dir: PathBuf,
        /// The server's dataLogDir, if not DATA_DIR.
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
    },
    /// Rebuilds a consistent directory: the newest usable snapshot plus every
    /// intact record after it up to the first damaged one. Prints the plan
    /// and the zxids lost; changes nothing without --apply.
    Repair {
        /// The server's dataDir (snapshots and the database_id file).
        data_dir: PathBuf,
        /// The server's dataLogDir, if not DATA_DIR.
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
        /// Write the repaired directory here (new or empty) instead of
        /// repairing in place; the originals are left alone.
        #[arg(long, value_name = "NEW_DIR")]
        out: Option<PathBuf>,
        /// Do it. In place, the originals move to DATA_DIR/quarantine-<unix ms>/.
        #[arg(long)]
        apply: bool,
    },
}

fn main() -> ExitCode {
    let args: Args = match tools::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = std::io::stderr();
    let status = match args.command {
        Command::Check { data_dir, log_dir } => {
            let layout = tools::snaprepair::Layout::new(data_dir, log_dir);
            tools::snaprepair::check(&layout, &mut out, &mut err)
        }
        Command::Repair {
            data_dir,
            log_dir,
            out: out_dir,
            apply,
        } => {
            let layout = tools::snaprepair::Layout::new(data_dir, log_dir);
            tools::snaprepair::repair(&layout, out_dir.as_deref(), apply, &mut out, &mut err)
        }
    };
    if std::io::Write::flush(&mut out).is_err() {
        return ExitCode::from(tools::EXIT_ERROR);
    }
    ExitCode::from(status)
}
