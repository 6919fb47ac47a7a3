//! Apache ZooKeeper txn log files (`version-2/log.<zxid>`): finding them and
//! decoding their entries.
//!
//! Layout (jute): a file header (magic "ZKLG", version 2, dbid), then
//! entries: the Adler-32 of the entry's bytes as a long, the bytes as a
//! buffer (a TxnHeader, the txn record its type names, and since 3.6
//! optionally a TxnDigest), and the byte 'B'. The file is preallocated with
//! zeros, so an entry of length 0 marks the end of the log.
//!
//! Invariant: as Apache's reader does, an entry cut short (its length runs
//! past the file, or its 'B' is missing) ends the file without an error — a
//! write torn by a crash — while an entry whose checksum does not match, or
//! whose content does not decode, is an error naming its offset.

use std::path::{Path, PathBuf};

use engine::types::{Acl, OpCode};

use super::jute::{adler32, Reader};
use super::snapfile::read_acl_list;
use super::Error;

/// "ZKLG" as a big-endian int.
pub const LOG_MAGIC: i32 = i32::from_be_bytes(*b"ZKLG");
pub const LOG_VERSION: i32 = 2;
const FILE_HEADER_BYTES: usize = 16;

/// One log file found in a `version-2` directory.
#[derive(Clone, Debug)]
pub struct LogFile {
    pub path: PathBuf,
    /// The zxid in its name: of the first txn it holds.
    pub zxid: i64,
}

/// Log files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<LogFile>, Error> {
    let mut found = Vec::new();
    for name in super::file_names(dir)? {
        let Some(hex) = name.strip_prefix("log.") else {
            continue;
        };
        let Ok(zxid) = u64::from_str_radix(hex, 16) else {
            continue;
        };
        found.push(LogFile {
            path: dir.join(&name),
            zxid: zxid as i64,
        });
    }
    found.sort_by_key(|file| file.zxid);
    Ok(found)
}

/// The log files that can hold txns after `zxid`: the last one starting at
/// or before `zxid + 1`, and every later one (as Apache chooses them).
pub fn needed_after(files: &[LogFile], zxid: i64) -> &[LogFile] {
    let first = files
        .iter()
        .rposition(|file| file.zxid <= zxid.saturating_add(1))
        .unwrap_or(0);
    &files[first..]
}

/// `TxnHeader`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TxnHeader {
    pub client_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time: i64,
    pub kind: i32,
}

/// A txn record, by the type its header (or a multi's sub-txn) names.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Record {
    CreateSession {
        timeout_ms: i32,
    },
    /// `paths` is `None` for logs written before CloseSessionTxn carried
    /// the session's ephemerals (before 3.6).
    CloseSession {
        paths: Option<Vec<String>>,
    },
    /// create and create2 (`op` says which); `parent_cversion` is -1 in
    /// the oldest (V0) records, meaning "the parent's plus one".
    Create {
        op: OpCode,
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral: bool,
        parent_cversion: i32,
    },
    CreateContainer {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
    },
    CreateTtl {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
        ttl_ms: i64,
    },
    Delete {
        path: String,
        container: bool,
    },
    /// setData, and reconfig (a setData of /zookeeper/config).
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Error {
        code: i32,
    },
    Multi(Vec<Record>),
}

/// One decoded log entry.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Offset of the entry (its checksum) in the file.
    pub offset: u64,
    pub header: TxnHeader,
    pub record: Record,
    /// The tree digest after this txn (`TxnDigest`: version, digest).
    pub digest: Option<(i32, i64)>,
}

/// Why a file ended.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum End {
    /// The zero-filled preallocation, or the exact end of the file.
    Clean,
    /// An entry cut short at `offset` (a torn write): ignored, as Apache does.
    Torn { offset: u64, why: String },
}

/// Decodes one log file's entries in order.
pub struct LogReader<'a> {
    reader: Reader<'a>,
    pub dbid: i64,
    end: Option<End>,
}

impl<'a> LogReader<'a> {
    pub fn open(bytes: &'a [u8], what: &'a str) -> Result<LogReader<'a>, Error> {
        let mut reader = Reader::new(bytes, what);
        if bytes.len() < FILE_HEADER_BYTES {
            return Err(reader.error(format!(
                "{} bytes: too short for a txn log header",
                bytes.len()
            )));
        }
        let magic = reader.int("magic")?;
        if magic != LOG_MAGIC {
            return Err(reader.error(format!("magic {magic:#x} is not ZKLG: not a txn log")));
        }
        let version = reader.int("version")?;
        if version != LOG_VERSION {
            return Err(reader.error(format!("txn log format version {version}, expected 2")));
        }
        let dbid = reader.long("dbid")?;
        Ok(LogReader {
            reader,
            dbid,
            end: None,
        })
    }

    /// How the file ended, once `next_entry` has returned `None`.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    pub fn pos(&self) -> usize {
        self.reader.pos()
    }

    /// The next entry; `None` at the end of the log in this file.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.end.is_some() {
            return Ok(None);
        }
        let offset = self.reader.pos();
        let torn = |why: &str| End::Torn {
            offset: offset as u64,
            why: why.to_string(),
        };
        if self.reader.is_empty() {
            self.end = Some(End::Clean);
            return Ok(None);
        }
        if self.reader.remaining() < 12 {
            self.end = Some(if self.rest_is_zero() {
                End::Clean
            } else {
                torn("a partial entry header")
            });
            return Ok(None);
        }
        let checksum = self.reader.long("checksum")?;
        let len = self.reader.int("length")?;
        if len == 0 || len == -1 {
            // Preallocated space.
            self.end = Some(if checksum == 0 && self.rest_is_zero() {
                End::Clean
            } else {
                torn("an empty entry")
            });
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            self.reader.rewind(offset);
            return Err(self.reader.error(format!("entry length {len}")));
        };
        if len > self.reader.remaining() {
            self.end = Some(torn("an entry that runs past the end of the file"));
            return Ok(None);
        }
        let start = self.reader.pos();
        let body = self.reader.buffer_of(len);
        let Ok(end_marker) = self.reader.byte("end of record") else {
            self.end = Some(torn("an entry without its end-of-record byte"));
            return Ok(None);
        };
        if end_marker != b'B' {
            self.end = Some(torn("an entry whose end-of-record byte is not 'B'"));
            return Ok(None);
        }
        let computed = adler32(body);
        if checksum != i64::from(computed) {
            self.reader.rewind(offset);
            return Err(self.reader.error(format!(
                "Adler-32 checksum mismatch: the entry records {checksum:#x}, its bytes sum to {computed:#x}"
            )));
        }
        decode_entry(body, self.what(), offset as u64, start).map(Some)
    }

    fn what(&self) -> &'a str {
        self.reader.what()
    }

    fn rest_is_zero(&self) -> bool {
        self.reader.rest().iter().all(|b| *b == 0)
    }
}

/// Decodes the bytes of one entry (header, record, optional digest).
fn decode_entry(body: &[u8], what: &str, offset: u64, start: usize) -> Result<Entry, Error> {
    let at_entry = |error: Error| match error {
        Error::Malformed {
            what,
            offset: at,
            why,
        } => Error::Malformed {
            what,
            offset: start as u64 + at,
            why: format!("entry at offset {offset}: {why}"),
        },
        other => other,
    };
    let mut reader = Reader::new(body, what);
    let header = TxnHeader {
        client_id: reader.long("clientId").map_err(at_entry)?,
        cxid: reader.int("cxid").map_err(at_entry)?,
        zxid: reader.long("zxid").map_err(at_entry)?,
        time: reader.long("time").map_err(at_entry)?,
        kind: reader.int("type").map_err(at_entry)?,
    };
    let record = decode_record(&mut reader, header.kind, true).map_err(at_entry)?;
    let digest = if reader.remaining() >= 12 {
        let version = reader.int("digest version").map_err(at_entry)?;
        let digest = reader.long("digest").map_err(at_entry)?;
        Some((version, digest))
    } else {
        None
    };
    Ok(Entry {
        offset,
        header,
        record,
        digest,
    })
}

fn read_paths(reader: &mut Reader<'_>) -> Result<Vec<String>, Error> {
    let count = reader.count("paths2Delete", 4)?;
    let mut paths = Vec::with_capacity(count);
    for _ in 0..count {
        paths.push(reader.text("path")?);
    }
    Ok(paths)
}

/// Decodes one record of type `kind`. `top` is false inside a multi (where
/// the oldest formats never occur).
pub fn decode_record(reader: &mut Reader<'_>, kind: i32, top: bool) -> Result<Record, Error> {
    let op =
        OpCode::from_code(kind).ok_or_else(|| reader.error(format!("unknown txn type {kind}")))?;
    let data = |reader: &mut Reader<'_>| -> Result<Option<Vec<u8>>, Error> {
        Ok(reader.buffer("data")?.map(<[u8]>::to_vec))
    };
    Ok(match op {
        OpCode::CreateSession => Record::CreateSession {
            timeout_ms: reader.int("timeOut")?,
        },
        OpCode::CloseSession => {
            // Before 3.6, or with zookeeper.closeSessionTxn.enabled=false,
            // the record is empty and a TxnDigest may follow at once: bytes
            // that do not read as a path list are left for the digest.
            let mut attempt = reader.clone();
            match read_paths(&mut attempt) {
                Ok(paths) => {
                    *reader = attempt;
                    Record::CloseSession { paths: Some(paths) }
                }
                Err(_) => Record::CloseSession { paths: None },
            }
        }
        OpCode::Create | OpCode::Create2 => {
            let path = reader.text("path")?;
            let data = data(reader)?;
            let acl = read_acl_list(reader)?;
            let ephemeral = reader.boolean("ephemeral")?;
            // CreateTxnV0 (3.3 and before) has no parentCVersion.
            let parent_cversion = if top && op == OpCode::Create && reader.remaining() < 4 {
                -1
            } else {
                reader.int("parentCVersion")?
            };
            Record::Create {
                op,
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
            }
        }
        OpCode::CreateContainer => Record::CreateContainer {
            path: reader.text("path")?,
            data: data(reader)?,
            acl: read_acl_list(reader)?,
            parent_cversion: reader.int("parentCVersion")?,
        },
        OpCode::CreateTtl => Record::CreateTtl {
            path: reader.text("path")?,
            data: data(reader)?,
            acl: read_acl_list(reader)?,
            parent_cversion: reader.int("parentCVersion")?,
            ttl_ms: reader.long("ttl")?,
        },
        OpCode::Delete | OpCode::DeleteContainer => Record::Delete {
            path: reader.text("path")?,
            container: op == OpCode::DeleteContainer,
        },
        OpCode::SetData | OpCode::Reconfig => Record::SetData {
            path: reader.text("path")?,
            data: data(reader)?,
            version: reader.int("version")?,
        },
        OpCode::SetAcl => Record::SetAcl {
            path: reader.text("path")?,
            acl: read_acl_list(reader)?,
            version: reader.int("version")?,
        },
        OpCode::Check => Record::Check {
            path: reader.text("path")?,
            version: reader.int("version")?,
        },
        OpCode::Error => Record::Error {
            code: reader.int("err")?,
        },
        OpCode::Multi if top => {
            // Each sub-txn is at least a type and a buffer length.
            let count = reader.count("txns", 8)?;
            let mut records = Vec::with_capacity(count);
            for _ in 0..count {
                let kind = reader.int("type")?;
                let body = reader
                    .buffer("data")?
                    .ok_or_else(|| reader.error("a multi's sub-txn with null data"))?;
                let mut sub = Reader::new(body, reader.what());
                let record = decode_record(&mut sub, kind, false).map_err(|error| {
                    reader.error(format!("multi sub-txn of type {kind}: {error}"))
                })?;
                records.push(record);
            }
            Record::Multi(records)
        }
        other => {
            return Err(reader.error(format!(
                "txn type {kind} ({}) cannot be in a log{}",
                other.name(),
                if top { "" } else { " inside a multi" }
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::jute::Writer;

    fn entry(w: &mut Writer, zxid: i64, kind: i32, record: &[u8]) {
        let mut body = Writer::default();
        body.long(0x42);
        body.int(1);
        body.long(zxid);
        body.long(1_000);
        body.int(kind);
        body.bytes.extend_from_slice(record);
        w.long(i64::from(adler32(&body.bytes)));
        w.buffer(Some(&body.bytes));
        w.bytes.push(b'B');
    }

    /// A log of a createSession, a create, a multi, then preallocation.
    fn sample() -> Vec<u8> {
        let mut w = Writer::default();
        w.int(LOG_MAGIC);
        w.int(LOG_VERSION);
        w.long(0);
        entry(
            &mut w,
            1,
            OpCode::CreateSession.code(),
            &30_000i32.to_be_bytes(),
        );
        let mut create = Writer::default();
        create.string("/a");
        create.buffer(Some(b"x"));
        create.count(1);
        create.int(31);
        create.string("world");
        create.string("anyone");
        create.boolean(true);
        create.int(1);
        entry(&mut w, 2, OpCode::Create.code(), &create.bytes);
        let mut multi = Writer::default();
        multi.count(2);
        let mut delete = Writer::default();
        delete.string("/a");
        multi.int(OpCode::Delete.code());
        multi.buffer(Some(&delete.bytes));
        multi.int(OpCode::Error.code());
        multi.buffer(Some(&(-101i32).to_be_bytes()));
        entry(&mut w, 3, OpCode::Multi.code(), &multi.bytes);
        w.bytes.extend_from_slice(&[0u8; 40]);
        w.bytes
    }

    fn decode(bytes: &[u8]) -> Result<(Vec<Entry>, Option<End>), Error> {
        let mut log = LogReader::open(bytes, "test")?;
        let mut entries = Vec::new();
        // Each entry consumes at least 13 bytes: the loop is bounded.
        for _ in 0..=bytes.len() / 13 {
            match log.next_entry()? {
                Some(entry) => entries.push(entry),
                None => break,
            }
        }
        Ok((entries, log.end().cloned()))
    }

    #[test]
    fn a_valid_log_decodes() {
        let (entries, end) = decode(&sample()).expect("valid");
        assert_eq!(entries.len(), 3);
        assert_eq!(end, Some(End::Clean));
        assert_eq!(
            entries[0].record,
            Record::CreateSession { timeout_ms: 30_000 }
        );
        assert!(matches!(
            &entries[1].record,
            Record::Create { path, ephemeral: true, parent_cversion: 1, .. } if path == "/a"
        ));
        assert!(matches!(&entries[2].record, Record::Multi(records) if records.len() == 2));
    }

    #[test]
    fn every_truncation_is_a_torn_tail_or_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            match decode(&bytes[..len]) {
                Ok((entries, end)) => {
                    assert!(entries.len() <= 3);
                    assert!(end.is_some(), "cut at {len}: no end");
                }
                Err(error) => assert!(len < 16, "cut at {len}: {error}"),
            }
        }
    }

    #[test]
    fn a_flipped_byte_in_an_entry_is_a_checksum_error() {
        let bytes = sample();
        // The first entry's body starts after the 16-byte header, checksum
        // and length.
        let mut damaged = bytes.clone();
        damaged[16 + 12 + 5] ^= 1;
        let error = decode(&damaged).expect_err("bad checksum");
        assert!(error.to_string().contains("offset 16"), "{error}");
        // Any single flip: an error or a torn tail, never a panic.
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x80;
            let _ = decode(&damaged);
        }
    }

    #[test]
    fn huge_lengths_and_counts_are_refused() {
        let mut bytes = sample();
        // The first entry's length: past the end of the file, a torn tail.
        bytes[24..28].copy_from_slice(&i32::MAX.to_be_bytes());
        let (entries, end) = decode(&bytes).expect("torn");
        assert!(entries.is_empty());
        assert!(matches!(end, Some(End::Torn { .. })));
        bytes[24..28].copy_from_slice(&(-9i32).to_be_bytes());
        assert!(decode(&bytes).is_err());
        // A multi claiming a billion sub-txns inside a small entry.
        let mut reader_bytes = Writer::default();
        reader_bytes.int(1 << 30);
        let mut reader = Reader::new(&reader_bytes.bytes, "test");
        let error = decode_record(&mut reader, OpCode::Multi.code(), true).expect_err("huge");
        assert!(error.to_string().contains("cannot fit"), "{error}");
        // A multi inside a multi, and an unknown type.
        let mut reader = Reader::new(&reader_bytes.bytes, "test");
        assert!(decode_record(&mut reader, OpCode::Multi.code(), false).is_err());
        let mut reader = Reader::new(&reader_bytes.bytes, "test");
        assert!(decode_record(&mut reader, 999, true).is_err());
    }

    #[test]
    fn an_empty_close_session_leaves_the_digest_after_it() {
        let mut record = Writer::default();
        record.int(2);
        record.long(0x7fff_1234_5678_9abc);
        let mut w = Writer::default();
        w.int(LOG_MAGIC);
        w.int(LOG_VERSION);
        w.long(0);
        entry(&mut w, 9, OpCode::CloseSession.code(), &record.bytes);
        let (entries, _) = decode(&w.bytes).expect("valid");
        assert_eq!(entries[0].record, Record::CloseSession { paths: None });
        assert_eq!(entries[0].digest, Some((2, 0x7fff_1234_5678_9abc)));
    }

    #[test]
    fn needed_files_start_at_the_one_holding_the_next_zxid() {
        let files: Vec<LogFile> = [1, 0x14, 0x28]
            .into_iter()
            .map(|zxid| LogFile {
                path: PathBuf::from(format!("log.{zxid:x}")),
                zxid,
            })
            .collect();
        assert_eq!(needed_after(&files, 0).len(), 3);
        assert_eq!(needed_after(&files, 0x13)[0].zxid, 0x14);
        assert_eq!(needed_after(&files, 0x20)[0].zxid, 0x14);
        assert_eq!(needed_after(&files, 0x30)[0].zxid, 0x28);
    }
}
