//! `zk-migrate import`: an Apache ZooKeeper data directory into one of ours.
//!
//! Steps: list the snapshots newest first and load the first that decodes
//! and passes its seals (a damaged one is skipped with a note, as Apache
//! falls back); replay every logged txn after its zxid, in order, refusing a
//! gap; drop the ephemerals of sessions no longer in the session table (as
//! Apache does on load); recount the quota stats; check the digests Apache
//! recorded (the snapshot's, at its zxid, and the last txn's); then install
//! the tree into the empty target through the backend's `Storage::install`
//! and read it back to confirm.
//!
//! Invariant: the target receives a tree only after every check passed, and
//! only when it was empty.

use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::apply::apply_replay;
use engine::storage::Storage;
use engine::tree::DataTree;
use engine::txn::{Txn, TxnOp};
use engine::types::{Acl, SessionId, Stat, Zxid};

use super::convert::{kind_of_owner, to_txn};
use super::digest::apache_digest;
use super::snapfile::{self, SnapshotFile, SnapshotReader, ZxidDigest, DIGEST_VERSION};
use super::txnlog::{self, End, LogReader};
use super::{Backend, Error, Ticker};

pub struct ImportOptions {
    /// Apache's dataDir (or its `version-2`).
    pub from: PathBuf,
    /// Apache's dataLogDir, if not the dataDir.
    pub log_dir: Option<PathBuf>,
    /// Our dataDir; must be empty or absent.
    pub to: PathBuf,
    pub backend: Backend,
    /// Go on when a recorded digest differs from the tree built.
    pub ignore_digest: bool,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// What an import did, for the summary.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// The snapshot used and its zxid; `None` when there was none.
    pub snapshot: Option<(PathBuf, i64)>,
    /// Things worth telling: snapshots skipped and why, torn log tails,
    /// digest outcomes, ephemerals dropped.
    pub notes: Vec<String>,
    pub log_files: usize,
    pub replayed: u64,
    pub nodes: usize,
    pub sessions: usize,
    pub ephemerals: usize,
    pub last_zxid: i64,
    pub digests_checked: u32,
    pub elapsed: Duration,
}

/// Builds the tree an Apache data directory holds, without writing
/// anything.
pub fn read_apache(
    snap_dir: &Path,
    log_dir: &Path,
    ignore_digest: bool,
    ticker: &mut Ticker,
    report: &mut ImportReport,
) -> Result<DataTree, Error> {
    let snap_dir = super::version_dir(snap_dir);
    let log_dir = super::version_dir(log_dir);
    let snapshots = snapfile::list(&snap_dir)?;
    let logs = txnlog::list(&log_dir)?;
    if snapshots.is_empty() && logs.is_empty() {
        return Err(Error::Unusable(format!(
            "{}: no snapshot.* or log.* files: not an Apache ZooKeeper data directory \
             (name the dataDir, the one holding version-2/)",
            snap_dir.display()
        )));
    }
    let mut loaded = None;
    for file in &snapshots {
        match load_snapshot(file, ticker) {
            Ok(found) => {
                loaded = Some((file, found));
                break;
            }
            Err(error) => report.notes.push(format!(
                "skipped snapshot {}: {error}; trying an older one",
                file.path.display()
            )),
        }
    }
    let (mut tree, snap_zxid, mut pending_digest) = match loaded {
        Some((file, (tree, digest))) => {
            report.snapshot = Some((file.path.clone(), file.zxid));
            (tree, file.zxid, digest)
        }
        None if !snapshots.is_empty() => {
            return Err(Error::Unusable(format!(
                "{}: none of the {} snapshots is valid",
                snap_dir.display(),
                snapshots.len()
            )))
        }
        None => (DataTree::new(), 0, None),
    };
    if let Some(digest) = pending_digest {
        if digest.zxid < snap_zxid || digest.zxid <= 0 || digest.version != DIGEST_VERSION {
            // Apache ignores these too: an empty digest, or one from before
            // the snapshot's start.
            pending_digest = None;
        }
    }
    if let Some(digest) = pending_digest.filter(|digest| digest.zxid == snap_zxid) {
        // A digest at the snapshot's own zxid is only as good as the
        // snapshot is still: a fuzzy one holds changes of txns after its
        // zxid, which the digest does not. Apache only logs a mismatch here
        // too; the digests of the txns replayed after it are what decide.
        pending_digest = None;
        let computed = apache_digest(&tree);
        report.notes.push(if computed == digest.digest {
            report.digests_checked += 1;
            format!(
                "the snapshot's digest at its zxid {} matches the tree loaded",
                crate::hex(snap_zxid as u64)
            )
        } else {
            format!(
                "the snapshot's digest at its zxid {} is {:#x}, the tree loaded has {:#x}: the \
                 snapshot was taken while writes went on (fuzzy), so the digest of the last txn \
                 replayed is what is checked",
                crate::hex(snap_zxid as u64),
                digest.digest as u64,
                computed as u64
            )
        });
    }

    let needed = txnlog::needed_after(&logs, snap_zxid);
    let mut last = snap_zxid;
    let mut last_digest = None;
    let mut bytes_done = 0u64;
    for (index, file) in needed.iter().enumerate() {
        let bytes = std::fs::read(&file.path).map_err(|source| Error::io(&file.path, source))?;
        let what = file.path.display().to_string();
        let mut log = LogReader::open(&bytes, &what)?;
        report.log_files += 1;
        while let Some(entry) = log.next_entry()? {
            let zxid = entry.header.zxid;
            if zxid <= last {
                continue;
            }
            if !crate::zxid_follows(last as u64, zxid as u64) {
                return Err(Error::Unusable(format!(
                    "{what}: offset {}: the log goes from zxid {} to {}: the txns between are \
                     missing (a purged or lost log file?)",
                    entry.offset,
                    crate::hex(last as u64),
                    crate::hex(zxid as u64)
                )));
            }
            let txn = to_txn(&entry, &tree);
            apply_replay(&mut tree, &txn);
            last = zxid;
            report.replayed += 1;
            last_digest = entry.digest;
            check_pending(
                &tree,
                &mut pending_digest,
                ignore_digest,
                report,
                "the snapshot's digest",
            )?;
            let at = bytes_done + log.pos() as u64;
            let replayed = report.replayed;
            ticker.tick(|| format!("replayed {replayed} txns ({} MiB of logs read)", at >> 20));
        }
        bytes_done += bytes.len() as u64;
        if let Some(End::Torn { offset, why }) = log.end() {
            let place = if index + 1 == needed.len() {
                "the end of the log"
            } else {
                "the end of this file; the next file goes on"
            };
            report.notes.push(format!(
                "{what}: offset {offset}: {why}, taken as {place} (a write torn by a crash), as Apache does"
            ));
        }
    }
    if let Some(digest) = pending_digest {
        report.notes.push(format!(
            "the snapshot's digest at zxid {} was not checked: the log ends at {}",
            crate::hex(digest.zxid as u64),
            crate::hex(last as u64)
        ));
    }
    if let Some((version, digest)) = last_digest {
        if version == DIGEST_VERSION {
            let mut pending = Some(ZxidDigest {
                zxid: last,
                version,
                digest,
            });
            check_pending(
                &tree,
                &mut pending,
                ignore_digest,
                report,
                "the last txn's digest",
            )?;
        }
    }
    if tree.last_zxid() < Zxid(last) {
        tree.restore_last_zxid(Zxid(last));
    }
    drop_dead_sessions(&mut tree, report);
    engine::quota::recount_all(&mut tree);
    Ok(tree)
}

/// Compares a recorded digest with the tree once the tree has reached its
/// zxid.
fn check_pending(
    tree: &DataTree,
    pending: &mut Option<ZxidDigest>,
    ignore: bool,
    report: &mut ImportReport,
    what: &str,
) -> Result<(), Error> {
    let Some(digest) = *pending else {
        return Ok(());
    };
    if tree.last_zxid().0 != digest.zxid {
        return Ok(());
    }
    *pending = None;
    report.digests_checked += 1;
    let computed = apache_digest(tree);
    if computed == digest.digest {
        report.notes.push(format!(
            "{what} at zxid {} matches the tree built ({:#x})",
            crate::hex(digest.zxid as u64),
            digest.digest as u64
        ));
        return Ok(());
    }
    let message = format!(
        "{what} at zxid {} is {:#x}, the tree built has {:#x}",
        crate::hex(digest.zxid as u64),
        digest.digest as u64,
        computed as u64
    );
    if ignore {
        report
            .notes
            .push(format!("WARNING: {message} (--ignore-digest)"));
        Ok(())
    } else {
        Err(Error::Unusable(format!(
            "{message}: the files do not hold the tree Apache had; nothing was written \
             (--ignore-digest writes it anyway)"
        )))
    }
}

/// Loads one snapshot into a fresh tree: its nodes, sessions, and the
/// digest it recorded.
fn load_snapshot(
    file: &SnapshotFile,
    ticker: &mut Ticker,
) -> Result<(DataTree, Option<ZxidDigest>), Error> {
    let bytes = snapfile::read(file)?;
    let what = file.path.display().to_string();
    let mut snapshot = SnapshotReader::open(&bytes, &what)?;
    let open = Acl::open_unsafe();
    let mut tree = DataTree::new();
    let total = bytes.len();
    let mut nodes = 0u64;
    while let Some(node) = snapshot.next_node()? {
        let acl: &[Acl] = match snapshot.acls.get(&node.acl) {
            Some(list) => list,
            None if node.acl == snapfile::OPEN_UNSAFE_ACL_ID => &open,
            None => {
                return Err(Error::Unusable(format!(
                    "{what}: node {} refers to ACL {}, which the ACL cache lacks",
                    node.path, node.acl
                )))
            }
        };
        let s = node.stat;
        let stat = Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            pzxid: s.pzxid,
            ..Stat::default()
        };
        tree.restore_node(
            &node.path,
            node.data,
            acl,
            kind_of_owner(s.ephemeral_owner),
            &stat,
        )
        .map_err(|_| {
            Error::Unusable(format!(
                "{what}: node {:?} comes before its parent (or is not a path)",
                node.path
            ))
        })?;
        nodes += 1;
        let at = snapshot.pos();
        ticker.tick(|| {
            format!(
                "{}: {nodes} nodes ({} of {} MiB)",
                file.path.display(),
                at >> 20,
                total >> 20
            )
        });
    }
    let sessions = std::mem::take(&mut snapshot.sessions);
    let trailer = snapshot.finish()?;
    for (session, timeout_ms) in sessions {
        tree.restore_session(SessionId(session), timeout_ms);
    }
    tree.restore_last_zxid(Zxid(file.zxid));
    Ok((tree, trailer.digest))
}

/// Deletes the ephemerals whose session is not in the session table, as
/// Apache does when it loads a data directory.
fn drop_dead_sessions(tree: &mut DataTree, report: &mut ImportReport) {
    let dead: Vec<SessionId> = tree
        .sessions_with_ephemerals()
        .into_iter()
        .filter(|session| tree.session_timeout(*session).is_none())
        .collect();
    for session in dead {
        let paths = tree.ephemerals(session);
        report.notes.push(format!(
            "dropped {} ephemeral(s) of session {:#x}, which is not live (as Apache does on load)",
            paths.len(),
            session.0
        ));
        let txn = Txn {
            zxid: tree.last_zxid(),
            time_ms: 0,
            session,
            cxid: 0,
            op: TxnOp::CloseSession { paths },
        };
        apply_replay(tree, &txn);
    }
}

/// Whether `dir` is absent or an empty directory.
fn is_empty_dir(dir: &Path) -> Result<bool, Error> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(Error::io(dir, source)),
    }
}

/// Opens our storage of `backend` in `dir`.
/// `log_dir` is the native backend's dataLogDir, if not `dir`.
pub fn open_storage(
    dir: &Path,
    log_dir: Option<&Path>,
    backend: Backend,
) -> Result<Box<dyn Storage>, Error> {
    match backend {
        Backend::Native => Ok(Box::new(engine::native::NativeStorage::open(
            engine::native::NativeConfig {
                snapshot_dir: dir.to_path_buf(),
                log_dir: log_dir.unwrap_or(dir).to_path_buf(),
                pre_alloc_bytes: 64 << 20,
                force_sync: true,
                io: wal::IoMode::Pwrite,
                segment_max_bytes: engine::native::DEFAULT_SEGMENT_MAX_BYTES,
            },
        )?)),
        #[cfg(feature = "rocksdb")]
        Backend::RocksDb => Ok(Box::new(engine::rocks::RocksStorage::open(
            engine::rocks::RocksConfig {
                dir: dir.join(super::ROCKSDB_SUBDIR),
                force_sync: true,
            },
        )?)),
        #[cfg(not(feature = "rocksdb"))]
        Backend::RocksDb => Err(Error::Unusable({
            let _ = log_dir;
            "this zk-migrate was built without the RocksDB backend; rebuild with \
             `cargo build -p tools --features rocksdb`"
                .to_string()
        })),
    }
}

/// Lists the imported sessions in the target, so the server accepts the
/// Apache-issued passwords their clients hold (`engine::session`).
fn write_migrated_sessions(to: &Path, tree: &DataTree) -> Result<(), Error> {
    let mut sessions: Vec<SessionId> = tree.sessions().map(|(session, _)| session).collect();
    sessions.sort();
    let path = to.join(engine::session::MIGRATED_SESSIONS_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::create(&path).map_err(io)?;
    std::io::Write::write_all(
        &mut file,
        engine::session::encode_migrated_sessions(&sessions).as_bytes(),
    )
    .map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::File::open(to)
        .and_then(|dir| dir.sync_all())
        .map_err(io)?;
    Ok(())
}

/// The whole import: read Apache's files, install the tree, read it back.
pub fn import(options: &ImportOptions) -> Result<ImportReport, Error> {
    let mut ticker = Ticker::new(options.progress);
    let mut report = ImportReport::default();
    if !is_empty_dir(&options.to)? {
        return Err(Error::Unusable(format!(
            "{} is not empty: zk-migrate writes only into an empty (or new) data directory",
            options.to.display()
        )));
    }
    let log_dir = options.log_dir.as_deref().unwrap_or(&options.from);
    let tree = read_apache(
        &options.from,
        log_dir,
        options.ignore_digest,
        &mut ticker,
        &mut report,
    )?;
    ticker.tick(|| {
        format!(
            "installing {} nodes into {}",
            tree.node_count(),
            options.to.display()
        )
    });
    {
        let mut storage = open_storage(&options.to, None, options.backend)?;
        storage.install(&tree)?;
    }
    write_migrated_sessions(&options.to, &tree)?;
    // Read back what a server will start from.
    let mut storage = open_storage(&options.to, None, options.backend)?;
    let (recovered, last) = storage.recover()?;
    if recovered.digest() != tree.digest()
        || last != tree.last_zxid()
        || recovered.session_count() != tree.session_count()
    {
        return Err(Error::Unusable(format!(
            "{}: reading the installed state back gave {} nodes at {last}, not the {} nodes at {} installed",
            options.to.display(),
            recovered.node_count(),
            tree.node_count(),
            tree.last_zxid()
        )));
    }
    ticker.finish();
    report.nodes = tree.node_count();
    report.sessions = tree.session_count();
    report.ephemerals = tree.ephemeral_count();
    report.last_zxid = tree.last_zxid().0;
    report.elapsed = ticker.elapsed();
    Ok(report)
}
