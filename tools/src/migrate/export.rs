//! `zk-migrate export`: our data directory as an Apache ZooKeeper snapshot,
//! `<to>/version-2/snapshot.<last zxid>`, plain (uncompressed), that Apache
//! ZooKeeper 3.6 and later load (3.4 and 3.5 too: they stop reading at the
//! first seal).
//!
//! Written as Apache writes one (see `snapfile` for the layout): header,
//! sessions, an ACL cache with one entry per distinct ACL list, the nodes in
//! pre-order from the root, the seal, then the digest section at the last
//! zxid with its seal, so Apache checks the tree it loads against the tree
//! exported.
//!
//! Invariant: the snapshot appears under its final name only once complete
//! and synced (written to a temp name, then renamed); an existing Apache
//! directory is never written into.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engine::tree::DataTree;
use engine::types::Acl;

use super::digest::apache_digest;
use super::jute::{adler32_update, Writer, ADLER32_INIT};
use super::snapfile::{DIGEST_VERSION, SNAP_DBID, SNAP_MAGIC, SNAP_VERSION};
use super::{Backend, Error, Ticker};

pub struct ExportOptions {
    /// Our dataDir.
    pub from: PathBuf,
    /// Our dataLogDir (native backend), if not `from`.
    pub log_dir: Option<PathBuf>,
    /// Where to write; the snapshot goes to `<to>/version-2/`.
    pub to: PathBuf,
    pub progress: bool,
}

#[derive(Debug, Default)]
pub struct ExportReport {
    pub snapshot: PathBuf,
    pub backend: &'static str,
    pub nodes: usize,
    pub sessions: usize,
    pub ephemerals: usize,
    pub acl_lists: usize,
    pub last_zxid: i64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// The backend whose data `dir` holds: RocksDB if it has the `rocksdb`
/// subdirectory the server uses, else native.
pub fn detect_backend(dir: &Path) -> Backend {
    if dir.join(super::ROCKSDB_SUBDIR).is_dir() {
        Backend::RocksDb
    } else {
        Backend::Native
    }
}

pub fn export(options: &ExportOptions) -> Result<ExportReport, Error> {
    let mut ticker = Ticker::new(options.progress);
    if !options.from.is_dir() {
        return Err(Error::Unusable(format!(
            "{}: no such data directory",
            options.from.display()
        )));
    }
    let version_dir = options.to.join("version-2");
    if std::fs::read_dir(&version_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Unusable(format!(
            "{} is not empty: export writes only into a new Apache data directory",
            version_dir.display()
        )));
    }
    let backend = detect_backend(&options.from);
    let tree = {
        let mut storage =
            super::import::open_storage(&options.from, options.log_dir.as_deref(), backend)?;
        storage.recover()?.0
    };
    std::fs::create_dir_all(&version_dir).map_err(|source| Error::io(&version_dir, source))?;
    let name = format!("snapshot.{:x}", tree.last_zxid().0 as u64);
    let path = version_dir.join(&name);
    let temp = version_dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&temp).map_err(|source| Error::io(&temp, source))?;
    let mut out = Sealed::new(file, &temp);
    let acl_lists = write_snapshot(&tree, &mut out, &mut ticker)?;
    let (file, bytes) = out.into_inner()?;
    file.sync_all().map_err(|source| Error::io(&temp, source))?;
    drop(file);
    std::fs::rename(&temp, &path).map_err(|source| Error::io(&path, source))?;
    std::fs::File::open(&version_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| Error::io(&version_dir, source))?;
    ticker.finish();
    Ok(ExportReport {
        snapshot: path,
        backend: backend.name(),
        nodes: tree.node_count(),
        sessions: tree.session_count(),
        ephemerals: tree.ephemeral_count(),
        acl_lists,
        last_zxid: tree.last_zxid().0,
        bytes,
        elapsed: ticker.elapsed(),
    })
}

/// A file being written with the running Adler-32 of its bytes, buffered.
pub struct Sealed<W: Write> {
    inner: W,
    path: PathBuf,
    buffer: Writer,
    checksum: u32,
    written: u64,
}

const FLUSH_BYTES: usize = 1 << 20;

impl<W: Write> Sealed<W> {
    pub fn new(inner: W, path: &Path) -> Sealed<W> {
        Sealed {
            inner,
            path: path.to_path_buf(),
            buffer: Writer::default(),
            checksum: ADLER32_INIT,
            written: 0,
        }
    }

    fn flush_if_full(&mut self) -> Result<(), Error> {
        if self.buffer.bytes.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.checksum = adler32_update(self.checksum, &self.buffer.bytes);
        self.inner
            .write_all(&self.buffer.bytes)
            .map_err(|source| Error::io(&self.path, source))?;
        self.written += self.buffer.bytes.len() as u64;
        self.buffer.bytes.clear();
        Ok(())
    }

    /// A seal: the Adler-32 of everything so far, then "/".
    fn seal(&mut self) -> Result<(), Error> {
        self.flush()?;
        let checksum = self.checksum;
        self.buffer.long(i64::from(checksum));
        self.buffer.string("/");
        Ok(())
    }

    pub fn into_inner(mut self) -> Result<(W, u64), Error> {
        self.flush()?;
        self.inner
            .flush()
            .map_err(|source| Error::io(&self.path, source))?;
        Ok((self.inner, self.written))
    }
}

/// Writes `tree` as an Apache snapshot; returns how many ACL lists the
/// cache holds.
pub fn write_snapshot<W: Write>(
    tree: &DataTree,
    out: &mut Sealed<W>,
    ticker: &mut Ticker,
) -> Result<usize, Error> {
    let paths = preorder(tree);
    // The ACL cache comes first, so the lists are gathered in a pass of
    // their own; ids count from 1 in order of first use.
    let mut ids: HashMap<Arc<[Acl]>, i64> = HashMap::new();
    let mut lists: Vec<Arc<[Acl]>> = Vec::new();
    for path in &paths {
        if let Some(node) = tree.get(path) {
            let acl = node.acl_shared();
            ids.entry(acl).or_insert_with_key(|acl| {
                lists.push(Arc::clone(acl));
                lists.len() as i64
            });
        }
    }
    let w = &mut out.buffer;
    w.int(SNAP_MAGIC);
    w.int(SNAP_VERSION);
    w.long(SNAP_DBID);
    let mut sessions: Vec<(i64, i32)> = tree.sessions().map(|(s, t)| (s.0, t)).collect();
    sessions.sort();
    w.count(sessions.len());
    for (session, timeout) in sessions {
        w.long(session);
        w.int(timeout);
    }
    w.count(lists.len());
    for (index, list) in lists.iter().enumerate() {
        w.long(index as i64 + 1);
        w.count(list.len());
        for acl in list.iter() {
            w.int(acl.perms);
            w.string(&acl.id.scheme);
            w.string(&acl.id.id);
        }
    }
    let total = paths.len();
    for (done, path) in paths.iter().enumerate() {
        let Some(node) = tree.get(path) else {
            continue;
        };
        let w = &mut out.buffer;
        w.string(if path == "/" { "" } else { path });
        w.buffer(node.data());
        w.long(ids.get(&node.acl_shared()).copied().unwrap_or(-1));
        let s = node.stored_stat();
        w.long(s.czxid);
        w.long(s.mzxid);
        w.long(s.ctime);
        w.long(s.mtime);
        w.int(s.version);
        w.int(s.cversion);
        w.int(s.aversion);
        w.long(s.ephemeral_owner);
        w.long(s.pzxid);
        out.flush_if_full()?;
        ticker.tick(|| format!("exported {done} of {total} nodes"));
    }
    out.buffer.string("/");
    out.seal()?;
    out.buffer.long(tree.last_zxid().0);
    out.buffer.int(DIGEST_VERSION);
    out.buffer.long(apache_digest(tree));
    out.seal()?;
    Ok(lists.len())
}

/// Every path, parents before children, children in name order.
fn preorder(tree: &DataTree) -> Vec<String> {
    let mut out = Vec::with_capacity(tree.node_count());
    let mut stack = vec!["/".to_string()];
    while let Some(path) = stack.pop() {
        if let Some(node) = tree.get(&path) {
            let mut children: Vec<&str> = node.children().collect();
            // Reversed, so the stack pops them in name order.
            children.sort_unstable_by(|a, b| b.cmp(a));
            for child in children {
                stack.push(if path == "/" {
                    format!("/{child}")
                } else {
                    format!("{path}/{child}")
                });
            }
        }
        out.push(path);
    }
    out
}
