//! The `zk-migrate` binary: parses the command line, runs
//! `tools::migrate::import` or `export`, and prints the summary. Not where
//! anything is decided; see the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tools::migrate::{export, import, Backend};

/// Moves an Apache ZooKeeper (3.4 to 3.9) data directory into a zk-server
/// data directory, and a zk-server data directory out as an Apache
/// snapshot.
#[derive(Parser, Debug)]
#[command(
    name = "zk-migrate",
    version,
    after_help = "Exit status: 0 done, 2 usage error, unusable input or I/O error (nothing written).\n\n\
Stop the server whose directory is read first: import reads Apache's files as they are, \
export recovers our directory as a server start would."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reads Apache's newest valid snapshot and the txn log after it, and
    /// writes the resulting tree, sessions and zxid into a new data
    /// directory.
    Import {
        /// Apache's dataDir (the directory holding version-2/).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Apache's dataLogDir, if not the dataDir.
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
        /// Our dataDir to create (must be new or empty).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Our storage backend to write: native or rocksdb (then start
        /// zk-server with storage.backend=rocksdb).
        #[arg(long, default_value = "native", value_parser = Backend::parse)]
        backend: Backend,
        /// Write the tree even if a digest Apache recorded does not match it.
        #[arg(long)]
        ignore_digest: bool,
    },
    /// Writes our data directory's tree as DIR/version-2/snapshot.<zxid>, a
    /// plain Apache snapshot Apache ZooKeeper starts from.
    Export {
        /// Our dataDir (the backend is detected: rocksdb/ inside means RocksDB).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Our dataLogDir, if not the dataDir (native backend).
        #[arg(long, value_name = "DIR")]
        log_dir: Option<PathBuf>,
        /// Apache's dataDir to write (its version-2/ must be new or empty).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
}

/// What a migrated client's session needs, said after every import.
const SESSIONS_NOTE: &str = "\
sessions: every live session keeps its id, timeout and ephemerals; zk-server gives each a \
whole timeout from its start to reconnect. A client reconnecting with its Apache-issued \
session id and password is accepted: the imported sessions are listed in \
<dataDir>/migrated_sessions, and for them zk-server also accepts Apache's password (derived \
from the session id alone), until the session closes; each reconnect hands the client a \
password of zk-server's own.";

fn main() -> ExitCode {
    let args: Args = match tools::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    match args.command {
        Command::Import {
            from,
            log_dir,
            to,
            backend,
            ignore_digest,
        } => {
            let options = import::ImportOptions {
                from,
                log_dir,
                to,
                backend,
                ignore_digest,
                progress: true,
            };
            match import::import(&options) {
                Ok(report) => {
                    for note in &report.notes {
                        eprintln!("zk-migrate: {note}");
                    }
                    match &report.snapshot {
                        Some((path, zxid)) => println!(
                            "snapshot:   {} (zxid {})",
                            path.display(),
                            tools::hex(*zxid as u64)
                        ),
                        None => println!("snapshot:   none (the log from its start)"),
                    }
                    println!(
                        "log:        {} txns replayed from {} file(s)",
                        report.replayed, report.log_files
                    );
                    println!(
                        "imported:   {} nodes, {} sessions, {} ephemerals, last zxid {}, {} digest check(s) passed",
                        report.nodes,
                        report.sessions,
                        report.ephemerals,
                        tools::hex(report.last_zxid as u64),
                        report.digests_checked
                    );
                    println!(
                        "written:    {} ({} backend) in {:.1}s",
                        options.to.display(),
                        backend.name(),
                        report.elapsed.as_secs_f64()
                    );
                    if backend == Backend::RocksDb {
                        println!(
                            "start it with storage.backend=rocksdb and dataDir={}",
                            options.to.display()
                        );
                    }
                    println!("{SESSIONS_NOTE}");
                    ExitCode::from(tools::EXIT_OK)
                }
                Err(error) => {
                    eprintln!("zk-migrate import: {error}");
                    ExitCode::from(tools::EXIT_ERROR)
                }
            }
        }
        Command::Export { from, log_dir, to } => {
            let options = export::ExportOptions {
                from,
                log_dir,
                to,
                progress: true,
            };
            match export::export(&options) {
                Ok(report) => {
                    println!(
                        "exported:   {} nodes, {} sessions, {} ephemerals, {} ACL lists, last zxid {} ({} backend)",
                        report.nodes,
                        report.sessions,
                        report.ephemerals,
                        report.acl_lists,
                        tools::hex(report.last_zxid as u64),
                        report.backend
                    );
                    println!(
                        "written:    {} ({} bytes) in {:.1}s",
                        report.snapshot.display(),
                        report.bytes,
                        report.elapsed.as_secs_f64()
                    );
                    println!(
                        "start Apache ZooKeeper with dataDir={} (no txn log is needed); \
                         sessions keep their ids and timeouts, not their zk-server passwords",
                        options.to.display()
                    );
                    ExitCode::from(tools::EXIT_OK)
                }
                Err(error) => {
                    eprintln!("zk-migrate export: {error}");
                    ExitCode::from(tools::EXIT_ERROR)
                }
            }
        }
    }
}
