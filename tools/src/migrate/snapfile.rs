//! Apache ZooKeeper snapshot files (`version-2/snapshot.<zxid>[.gz|.snappy]`):
//! finding them, undoing their compression, and decoding them.
//!
//! Layout (jute, after decompression): a file header (magic "ZKSN",
//! version, dbid); the session table (count, then id and timeout each); the
//! ACL cache (count, then an id and an ACL list each; nodes refer to lists by
//! id, -1 standing for `world:anyone` ALL); the nodes in pre-order, parents
//! first, each a path (`""` for the root), data, ACL id and persisted stat,
//! ended by the path `"/"`; then a seal: the Adler-32 of every byte before it
//! as a long and the string `"/"`. Writers since 3.6 may follow it with the
//! tree digest at a zxid and another seal, and since 3.9 with the last
//! processed zxid and a third seal; each seal covers everything before it.
//!
//! Invariant: a snapshot is reported valid only when every seal present
//! matches and nothing but those sections follows the nodes; nodes are
//! handed to the caller as they are decoded, so the caller must discard
//! what it built from a snapshot that `finish` refuses.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use engine::types::{Acl, Id};

use super::jute::{adler32, Reader};
use super::Error;

/// "ZKSN" as a big-endian int.
pub const SNAP_MAGIC: i32 = i32::from_be_bytes(*b"ZKSN");
pub const SNAP_VERSION: i32 = 2;
/// The database id Apache's snapshots carry (always -1).
pub const SNAP_DBID: i64 = -1;
/// The ACL id meaning `world:anyone` ALL without an entry in the cache.
pub const OPEN_UNSAFE_ACL_ID: i64 = -1;
/// The digest version whose algorithm `digest::apache_digest` implements.
pub const DIGEST_VERSION: i32 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Compression {
    Plain,
    Gzip,
    Snappy,
}

/// One snapshot file found in a `version-2` directory.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    /// The zxid in its name: the last txn applied when it was started.
    pub zxid: i64,
    pub compression: Compression,
}

/// Snapshot files in `dir`, newest (highest zxid) first. Files whose names
/// do not parse are not snapshots and are left out.
pub fn list(dir: &Path) -> Result<Vec<SnapshotFile>, Error> {
    let mut found = Vec::new();
    for name in super::file_names(dir)? {
        let Some(rest) = name.strip_prefix("snapshot.") else {
            continue;
        };
        let (hex, compression) = match rest.split_once('.') {
            None => (rest, Compression::Plain),
            Some((hex, "gz")) => (hex, Compression::Gzip),
            Some((hex, "snappy")) => (hex, Compression::Snappy),
            Some(_) => continue,
        };
        let Ok(zxid) = u64::from_str_radix(hex, 16) else {
            continue;
        };
        found.push(SnapshotFile {
            path: dir.join(&name),
            zxid: zxid as i64,
            compression,
        });
    }
    found.sort_by(|a, b| b.zxid.cmp(&a.zxid).then_with(|| a.path.cmp(&b.path)));
    Ok(found)
}

/// The decompressed content of a snapshot file.
pub fn read(file: &SnapshotFile) -> Result<Vec<u8>, Error> {
    let raw = std::fs::read(&file.path).map_err(|source| Error::io(&file.path, source))?;
    let what = file.path.display().to_string();
    match file.compression {
        Compression::Plain => Ok(raw),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|error| Error::Malformed {
                    what,
                    offset: 0,
                    why: format!("gzip: {error}"),
                })?;
            Ok(out)
        }
        Compression::Snappy => unsnappy(&raw, &what),
    }
}

/// The header snappy-java's stream format starts with (and may repeat when
/// streams are concatenated): a magic, then a version and a compatible
/// version, ints.
const SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const SNAPPY_HEADER_BYTES: usize = 16;
/// The most one byte of raw snappy can expand to is well under this (a
/// three-byte copy yields 64 bytes): a block claiming more is refused
/// before its output is allocated.
const SNAPPY_MAX_EXPANSION: usize = 32;

/// Undoes snappy-java's `SnappyOutputStream` framing (which is not the
/// snappy framing format): after the header, blocks of a big-endian int
/// length and that many bytes of raw snappy.
pub fn unsnappy(raw: &[u8], what: &str) -> Result<Vec<u8>, Error> {
    let malformed = |offset: usize, why: String| Error::Malformed {
        what: what.to_string(),
        offset: offset as u64,
        why,
    };
    if raw.len() < SNAPPY_HEADER_BYTES || raw[..8] != SNAPPY_MAGIC {
        return Err(malformed(0, "not a snappy-java stream (bad magic)".into()));
    }
    let mut out = Vec::new();
    let mut pos = SNAPPY_HEADER_BYTES;
    let mut decoder = snap::raw::Decoder::new();
    while pos < raw.len() {
        if raw[pos..].starts_with(&SNAPPY_MAGIC) {
            pos += SNAPPY_HEADER_BYTES;
            continue;
        }
        let Some(len_bytes) = raw.get(pos..pos + 4) else {
            return Err(malformed(pos, "truncated block length".into()));
        };
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let start = pos + 4;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= raw.len() - start)
            .ok_or_else(|| malformed(pos, format!("block length {len} runs past the end")))?;
        let block = &raw[start..start + len];
        let size = snap::raw::decompress_len(block)
            .map_err(|error| malformed(start, format!("snappy: {error}")))?;
        if size > len.saturating_mul(SNAPPY_MAX_EXPANSION).saturating_add(64) {
            return Err(malformed(
                start,
                format!("snappy block of {len} bytes claims {size} bytes of output"),
            ));
        }
        let at = out.len();
        out.resize(at + size, 0);
        decoder
            .decompress(block, &mut out[at..])
            .map_err(|error| malformed(start, format!("snappy: {error}")))?;
        pos = start + len;
    }
    Ok(out)
}

/// A node as the snapshot holds it.
pub struct SnapNode<'a> {
    pub path: String,
    pub data: Option<&'a [u8]>,
    pub acl: i64,
    pub stat: StatPersisted,
}

/// ZooKeeper's `StatPersisted`: the stat without its derived fields, with
/// the raw ephemeralOwner (containers and TTL nodes encoded) and cversion
/// counting creates.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// The digest section: the tree's digest as of `zxid`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

/// What a snapshot holds besides its nodes, and how it ends.
#[derive(Debug, Default)]
pub struct Trailer {
    pub digest: Option<ZxidDigest>,
    pub last_processed_zxid: Option<i64>,
    pub nodes: u64,
}

/// Decodes one decompressed snapshot: header, sessions and ACL cache on
/// `open`, then nodes one by one, then `finish` checks the seals.
pub struct SnapshotReader<'a> {
    reader: Reader<'a>,
    pub dbid: i64,
    pub sessions: Vec<(i64, i32)>,
    pub acls: HashMap<i64, Vec<Acl>>,
    nodes: u64,
    done: bool,
}

impl<'a> SnapshotReader<'a> {
    pub fn open(bytes: &'a [u8], what: &'a str) -> Result<SnapshotReader<'a>, Error> {
        let mut reader = Reader::new(bytes, what);
        let magic = reader.int("magic")?;
        if magic != SNAP_MAGIC {
            return Err(reader.error(format!("magic {magic:#x} is not ZKSN: not a snapshot")));
        }
        let version = reader.int("version")?;
        if version != SNAP_VERSION {
            return Err(reader.error(format!("snapshot format version {version}, expected 2")));
        }
        let dbid = reader.long("dbid")?;
        let count = reader.count("sessions", 12)?;
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count {
            let id = reader.long("session id")?;
            let timeout = reader.int("session timeout")?;
            sessions.push((id, timeout));
        }
        let count = reader.count("ACL cache", 12)?;
        let mut acls = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = reader.long("ACL id")?;
            let list = read_acl_list(&mut reader)?;
            acls.insert(id, list);
        }
        Ok(SnapshotReader {
            reader,
            dbid,
            sessions,
            acls,
            nodes: 0,
            done: false,
        })
    }

    /// Offset reached in the decompressed stream.
    pub fn pos(&self) -> usize {
        self.reader.pos()
    }

    /// The next node, or `None` after the end marker.
    pub fn next_node(&mut self) -> Result<Option<SnapNode<'a>>, Error> {
        if self.done {
            return Ok(None);
        }
        let path = self.reader.text("path")?;
        if path == "/" {
            self.done = true;
            return Ok(None);
        }
        let data = self.reader.buffer("data")?;
        let acl = self.reader.long("acl")?;
        let stat = read_stat_persisted(&mut self.reader)?;
        self.nodes += 1;
        Ok(Some(SnapNode {
            path: if path.is_empty() {
                "/".to_string()
            } else {
                path
            },
            data,
            acl,
            stat,
        }))
    }

    /// Reads the seals and the optional digest and last-zxid sections after
    /// the nodes. Call after `next_node` returned `None`.
    pub fn finish(mut self) -> Result<Trailer, Error> {
        if !self.done {
            return Err(self.reader.error("finish before the end of the nodes"));
        }
        let mut trailer = Trailer {
            nodes: self.nodes,
            ..Trailer::default()
        };
        if self.reader.is_empty() {
            return Err(self
                .reader
                .error("no checksum after the nodes (truncated snapshot)"));
        }
        check_seal(&mut self.reader)?;
        if self.reader.is_empty() {
            return Ok(trailer);
        }
        // 3.6+: the digest section, then a seal. Bytes there that are not
        // one (no seal after them) are tried as the 3.9 section instead.
        let before = self.reader.pos();
        let digest = read_zxid_digest(&mut self.reader)
            .and_then(|digest| check_seal(&mut self.reader).map(|()| digest));
        match digest {
            Ok(digest) => trailer.digest = Some(digest),
            Err(_) => self.reader.rewind(before),
        }
        if self.reader.is_empty() {
            return Ok(trailer);
        }
        // 3.9+: the last processed zxid, then a seal.
        let zxid = self.reader.long("last processed zxid")?;
        check_seal(&mut self.reader)?;
        trailer.last_processed_zxid = Some(zxid);
        if !self.reader.is_empty() {
            return Err(self.reader.error(format!(
                "{} unexpected bytes after the last section",
                self.reader.remaining()
            )));
        }
        Ok(trailer)
    }
}

/// A seal: the Adler-32 of everything read so far, as a long, then "/".
fn check_seal(reader: &mut Reader<'_>) -> Result<(), Error> {
    let computed = adler32(reader.consumed());
    let at = reader.pos();
    let recorded = reader.long("checksum")?;
    if recorded != i64::from(computed) {
        reader.rewind(at);
        return Err(reader.error(format!(
            "Adler-32 checksum mismatch: the file records {recorded:#x}, its content sums to {computed:#x}"
        )));
    }
    let slash = reader.string("seal")?;
    if slash.as_deref() != Some("/") {
        return Err(reader.error("the checksum is not followed by \"/\""));
    }
    Ok(())
}

fn read_zxid_digest(reader: &mut Reader<'_>) -> Result<ZxidDigest, Error> {
    let zxid = reader.long("digest zxid")?;
    let version = reader.int("digest version")?;
    let digest = if version < 2 {
        // Older digests were a hex string.
        let text = reader.string("digest")?.unwrap_or_default();
        u64::from_str_radix(&text, 16)
            .map(|d| d as i64)
            .unwrap_or(0)
    } else {
        reader.long("digest")?
    };
    Ok(ZxidDigest {
        zxid,
        version,
        digest,
    })
}

/// A vector of ACLs (each: perms int, scheme and id strings).
pub fn read_acl_list(reader: &mut Reader<'_>) -> Result<Vec<Acl>, Error> {
    let count = reader.count("acls", 12)?;
    let mut list = Vec::with_capacity(count);
    for _ in 0..count {
        let perms = reader.int("perms")?;
        let scheme = reader.text("scheme")?;
        let id = reader.text("id")?;
        list.push(Acl {
            perms,
            id: Id { scheme, id },
        });
    }
    Ok(list)
}

fn read_stat_persisted(reader: &mut Reader<'_>) -> Result<StatPersisted, Error> {
    Ok(StatPersisted {
        czxid: reader.long("czxid")?,
        mzxid: reader.long("mzxid")?,
        ctime: reader.long("ctime")?,
        mtime: reader.long("mtime")?,
        version: reader.int("version")?,
        cversion: reader.int("cversion")?,
        aversion: reader.int("aversion")?,
        ephemeral_owner: reader.long("ephemeralOwner")?,
        pzxid: reader.long("pzxid")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::jute::Writer;

    /// A small valid snapshot: two sessions, one ACL list, root and two
    /// nodes, the seal and a digest section with its seal.
    fn sample() -> Vec<u8> {
        let mut w = Writer::default();
        w.int(SNAP_MAGIC);
        w.int(SNAP_VERSION);
        w.long(SNAP_DBID);
        w.count(2);
        for (id, timeout) in [(7i64, 30_000), (8, 4_000)] {
            w.long(id);
            w.int(timeout);
        }
        w.count(1);
        w.long(1);
        w.count(1);
        w.int(31);
        w.string("world");
        w.string("anyone");
        for (path, data) in [
            ("", Some(&b""[..])),
            ("/a", Some(&b"x"[..])),
            ("/a/b", None),
        ] {
            w.string(path);
            w.buffer(data);
            w.long(1);
            for _ in 0..4 {
                w.long(1);
            }
            for _ in 0..3 {
                w.int(0);
            }
            w.long(0);
            w.long(1);
        }
        w.string("/");
        seal(&mut w);
        w.long(5);
        w.int(DIGEST_VERSION);
        w.long(1234);
        seal(&mut w);
        w.bytes
    }

    fn seal(w: &mut Writer) {
        let checksum = adler32(&w.bytes);
        w.long(i64::from(checksum));
        w.string("/");
    }

    fn decode(bytes: &[u8]) -> Result<(usize, Trailer), Error> {
        let mut reader = SnapshotReader::open(bytes, "test")?;
        let mut nodes = 0;
        while reader.next_node()?.is_some() {
            nodes += 1;
        }
        Ok((nodes, reader.finish()?))
    }

    #[test]
    fn a_valid_snapshot_decodes_with_its_digest() {
        let bytes = sample();
        let reader = SnapshotReader::open(&bytes, "test").expect("open");
        assert_eq!(reader.sessions, vec![(7, 30_000), (8, 4_000)]);
        assert_eq!(reader.acls.len(), 1);
        let (nodes, trailer) = decode(&bytes).expect("valid");
        assert_eq!(nodes, 3);
        assert_eq!(
            trailer.digest,
            Some(ZxidDigest {
                zxid: 5,
                version: DIGEST_VERSION,
                digest: 1234
            })
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        // Cut anywhere but after the first seal (a 3.5 snapshot ends there).
        let first_seal_end = bytes.len() - (8 + 4 + 8 + 8 + 5);
        for len in 0..bytes.len() {
            let result = decode(&bytes[..len]);
            if len == first_seal_end {
                assert!(result.is_ok(), "a snapshot without digest section");
            } else {
                assert!(result.is_err(), "cut at {len} of {} decoded", bytes.len());
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = sample();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x41;
            // A seal covers every byte before it, and each seal is
            // followed by a fixed "/": no flip decodes as valid.
            if let Ok((_, trailer)) = decode(&damaged) {
                panic!("a flip at {at} went unnoticed: {trailer:?}");
            }
        }
    }

    #[test]
    fn huge_counts_and_lengths_are_refused() {
        let mut bytes = sample();
        // The session count (after magic, version, dbid).
        bytes[16..20].copy_from_slice(&i32::MAX.to_be_bytes());
        let error = decode(&bytes).expect_err("huge count");
        assert!(error.to_string().contains("cannot fit"), "{error}");
        let mut bytes = sample();
        bytes[16..20].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn snappy_framing_is_checked_before_allocating() {
        assert!(unsnappy(b"short", "t").is_err());
        let mut stream = SNAPPY_MAGIC.to_vec();
        stream.extend_from_slice(&1i32.to_be_bytes());
        stream.extend_from_slice(&1i32.to_be_bytes());
        let payload = b"hello hello hello hello";
        let block = snap::raw::Encoder::new()
            .compress_vec(payload)
            .expect("compress");
        let mut good = stream.clone();
        good.extend_from_slice(&(block.len() as i32).to_be_bytes());
        good.extend_from_slice(&block);
        assert_eq!(unsnappy(&good, "t").expect("valid"), payload);
        // A block length past the end.
        let mut bad = stream.clone();
        bad.extend_from_slice(&i32::MAX.to_be_bytes());
        bad.extend_from_slice(&block);
        assert!(unsnappy(&bad, "t").is_err());
        // A tiny block claiming 4 GiB of output: refused, not allocated.
        let mut bomb = stream.clone();
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        bomb.extend_from_slice(&(claim.len() as i32).to_be_bytes());
        bomb.extend_from_slice(&claim);
        let error = unsnappy(&bomb, "t").expect_err("bomb");
        assert!(error.to_string().contains("claims"), "{error}");
        // Truncated anywhere: an error or a shorter valid stream, no panic.
        for len in 0..good.len() {
            let _ = unsnappy(&good[..len], "t");
        }
    }

    #[test]
    fn gzip_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("snapshot.5.gz");
        std::fs::write(&path, b"\x1f\x8b not really gzip").expect("write");
        let listed = list(dir.path()).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].compression, Compression::Gzip);
        assert_eq!(listed[0].zxid, 5);
        assert!(read(&listed[0]).is_err());
    }
}
