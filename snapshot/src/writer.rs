//! Streaming snapshot writer: header, zstd-compressed entry frames, trailer,
//! then fsync, rename into place and a directory fsync.
//!
//! It is not a serialiser: payloads are the engine's bytes. It holds no more
//! than the compressor's window and one `BufWriter` buffer, whatever the
//! snapshot's size, and it is `Send`, so the server's background snapshot
//! thread can own it.
//!
//! Invariant: the final name appears only after every byte under it is
//! durable; until `finish` returns, only `snapshot.<zxid>.tmp` exists, and an
//! unfinished writer removes it when dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::format::{
    file_name, frame_prefix, temp_file_name, Header, Section, Trailer, END_TAG, FORMAT_VERSION,
    FRAME_PREFIX_BYTES, MAX_ENTRY_BYTES,
};
use crate::Error;

/// Big enough that the compressor's output reaches the kernel in large
/// writes; the snapshot thread is the only writer, so one buffer suffices.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Frames are gathered into a staging buffer of this size before they reach
/// the compressor: each compressor call has a fixed cost that, paid twice per
/// 150-byte entry, dominated writing. Larger payloads bypass the buffer.
const STAGING_BYTES: usize = 128 << 10;

/// Counts the bytes that pass through to the file, which is how the trailer
/// learns the compressed length without seeking.
struct Counting<W> {
    inner: W,
    bytes: u64,
    crc32c: u32,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        // `write` promises `written <= buf.len()`; `get` keeps a broken
        // writer from turning that into a panic.
        if let Some(accepted) = buf.get(..written) {
            self.crc32c = crc32c::crc32c_append(self.crc32c, accepted);
        }
        // A usize always fits a u64 on the platforms we build for.
        self.bytes = self.bytes.saturating_add(written as u64);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Encoder = zstd::stream::write::Encoder<'static, Counting<BufWriter<File>>>;

/// Writes one snapshot file. Create it, call [`entry`](Self::entry) for each
/// record, then [`finish`](Self::finish). Dropping it unfinished abandons the
/// snapshot and removes its temp file.
pub struct SnapshotWriter {
    dir: PathBuf,
    temp_path: PathBuf,
    final_path: PathBuf,
    header: Header,
    /// `None` once finished or after a failed write.
    encoder: Option<Encoder>,
    /// Whole frames not yet handed to the encoder; never above
    /// `STAGING_BYTES` after `write_frame` returns.
    staging: Vec<u8>,
    entry_count: u64,
    uncompressed_bytes: u64,
    stream_crc32c: u32,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("temp_path", &self.temp_path)
            .field("header", &self.header)
            .field("entry_count", &self.entry_count)
            .field("uncompressed_bytes", &self.uncompressed_bytes)
            .finish_non_exhaustive()
    }
}

impl SnapshotWriter {
    /// Starts the snapshot of the state as of `start_zxid` in `dir`, at zstd
    /// `level` (1..=19 are sensible; 3 is zstd's default). A leftover temp
    /// file of the same name, from a crash, is overwritten.
    pub fn create(
        dir: &Path,
        start_zxid: u64,
        database_id: u64,
        level: i32,
    ) -> Result<SnapshotWriter, Error> {
        let temp_path = dir.join(temp_file_name(start_zxid));
        let final_path = dir.join(file_name(start_zxid));
        let created_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let header = Header {
            format_version: FORMAT_VERSION,
            database_id,
            start_zxid,
            created_ms,
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)
            .map_err(|source| Error::io(&temp_path, source))?;
        // From here on the temp file exists; build `self` first so that any
        // failure below drops it and the temp file is removed.
        let mut writer = SnapshotWriter {
            dir: dir.to_path_buf(),
            temp_path,
            final_path,
            header,
            encoder: None,
            staging: Vec::with_capacity(STAGING_BYTES),
            entry_count: 0,
            uncompressed_bytes: 0,
            stream_crc32c: 0,
        };
        let mut buffered = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        buffered
            .write_all(&header.encode())
            .map_err(|source| Error::io(&writer.temp_path, source))?;
        let counting = Counting {
            inner: buffered,
            bytes: 0,
            crc32c: 0,
        };
        let mut encoder =
            Encoder::new(counting, level).map_err(|source| Error::io(&writer.temp_path, source))?;
        // zstd's own content checksum catches a corrupt stream at the frame's
        // end even before our crc32c over the decoded bytes does.
        encoder
            .include_checksum(true)
            .map_err(|source| Error::io(&writer.temp_path, source))?;
        writer.encoder = Some(encoder);
        Ok(writer)
    }

    /// The header this snapshot will carry.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where the snapshot will be once finished.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Entries written so far.
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// Appends one record to `section`. Records come back from the reader in
    /// the order written; the engine decides the order of sections.
    pub fn entry(&mut self, section: Section, payload: &[u8]) -> Result<(), Error> {
        let len = match u32::try_from(payload.len()) {
            Ok(len) if payload.len() <= MAX_ENTRY_BYTES => len,
            _ => {
                return Err(Error::EntryTooLarge {
                    len: payload.len(),
                    max: MAX_ENTRY_BYTES,
                })
            }
        };
        self.write_frame(section.tag(), len, payload)?;
        self.entry_count += 1;
        Ok(())
    }

    fn write_frame(&mut self, tag: u8, len: u32, payload: &[u8]) -> Result<(), Error> {
        debug_assert_eq!(payload.len(), len as usize);
        let encoder = self.encoder.as_mut().ok_or_else(|| Error::Poisoned {
            path: self.temp_path.clone(),
        })?;
        let prefix = frame_prefix(tag, len);
        let frame_bytes = FRAME_PREFIX_BYTES + payload.len();
        let result = if self.staging.len() + frame_bytes <= STAGING_BYTES {
            self.staging.extend_from_slice(&prefix);
            self.staging.extend_from_slice(payload);
            Ok(())
        } else if frame_bytes <= STAGING_BYTES {
            // Flush what is staged, then stage this frame.
            let result = encoder.write_all(&self.staging);
            self.staging.clear();
            self.staging.extend_from_slice(&prefix);
            self.staging.extend_from_slice(payload);
            result
        } else {
            // A large payload goes straight through; staged frames first so
            // the order is kept.
            let result = encoder
                .write_all(&self.staging)
                .and_then(|()| encoder.write_all(&prefix))
                .and_then(|()| encoder.write_all(payload));
            self.staging.clear();
            result
        };
        assert!(
            self.staging.len() <= STAGING_BYTES,
            "staging buffer overran"
        );
        if let Err(source) = result {
            // The compressor may hold half a frame: nothing more may follow.
            self.encoder = None;
            return Err(Error::io(&self.temp_path, source));
        }
        self.stream_crc32c = crc32c::crc32c_append(self.stream_crc32c, &prefix);
        self.stream_crc32c = crc32c::crc32c_append(self.stream_crc32c, payload);
        self.uncompressed_bytes += (FRAME_PREFIX_BYTES + payload.len()) as u64;
        Ok(())
    }

    /// Writes the END frame and the trailer, fsyncs, renames the temp file to
    /// its final name and fsyncs the directory. `digest` is the caller's tree
    /// digest; `end_zxid` the last zxid applied when the caller finished
    /// visiting the tree (replay must reach it before the tree is consistent).
    /// Returns the final path.
    pub fn finish(mut self, digest: u64, end_zxid: u64) -> Result<PathBuf, Error> {
        if end_zxid < self.header.start_zxid {
            return Err(Error::EndBeforeStart {
                start_zxid: self.header.start_zxid,
                end_zxid,
            });
        }
        self.write_frame(END_TAG, 0, &[])?;
        let mut encoder = self.encoder.take().ok_or_else(|| Error::Poisoned {
            path: self.temp_path.clone(),
        })?;
        encoder
            .write_all(&self.staging)
            .map_err(|source| Error::io(&self.temp_path, source))?;
        self.staging.clear();
        let counting = encoder
            .finish()
            .map_err(|source| Error::io(&self.temp_path, source))?;
        let trailer = Trailer {
            entry_count: self.entry_count,
            uncompressed_bytes: self.uncompressed_bytes,
            compressed_bytes: counting.bytes,
            stream_crc32c: self.stream_crc32c,
            compressed_crc32c: counting.crc32c,
            digest,
            end_zxid,
        };
        let mut buffered = counting.inner;
        buffered
            .write_all(&trailer.encode())
            .map_err(|source| Error::io(&self.temp_path, source))?;
        let file = buffered
            .into_inner()
            .map_err(|error| Error::io(&self.temp_path, error.into_error()))?;
        // The data must be durable before the name says it is complete; a
        // failed fsync is not retried (the page cache may have dropped the
        // dirty pages), the snapshot is abandoned instead.
        file.sync_all()
            .map_err(|source| Error::io(&self.temp_path, source))?;
        drop(file);
        std::fs::rename(&self.temp_path, &self.final_path)
            .map_err(|source| Error::io(&self.final_path, source))?;
        // The rename is in the directory; only its fsync makes the new name
        // survive a power cut. The temp file no longer exists, so there is
        // nothing for `drop` to clean up whatever happens next.
        self.temp_path.clear();
        sync_dir(&self.dir)?;
        Ok(self.final_path.clone())
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // An abandoned snapshot leaves nothing behind; failure to remove is
        // harmless because readers ignore temp files and `purge` removes them.
        if !self.temp_path.as_os_str().is_empty() {
            self.encoder = None;
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// fsyncs a directory so that renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| Error::io(dir, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Until `finish`, only the temp name exists; after it, only the final one.
    #[test]
    fn publishes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SnapshotWriter::create(dir.path(), 0x10, 7, 3).unwrap();
        writer.entry(Section::Nodes, b"node").unwrap();
        assert_eq!(names_in(dir.path()), ["snapshot.0000000000000010.tmp"]);
        let path = writer.finish(1, 0x12).unwrap();
        assert_eq!(path, dir.path().join("snapshot.0000000000000010"));
        assert_eq!(names_in(dir.path()), ["snapshot.0000000000000010"]);
    }

    /// An abandoned writer removes its temp file.
    #[test]
    fn drop_removes_temp() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SnapshotWriter::create(dir.path(), 0x10, 7, 3).unwrap();
        writer.entry(Section::Nodes, b"node").unwrap();
        drop(writer);
        assert!(names_in(dir.path()).is_empty());
    }

    /// Caller mistakes are reported, and leave the writer usable or clean.
    #[test]
    fn rejects_bad_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SnapshotWriter::create(dir.path(), 0x10, 7, 3).unwrap();
        let too_big = vec![0u8; MAX_ENTRY_BYTES + 1];
        assert!(matches!(
            writer.entry(Section::Nodes, &too_big),
            Err(Error::EntryTooLarge { .. })
        ));
        writer.entry(Section::Nodes, b"still fine").unwrap();
        assert_eq!(writer.entry_count(), 1);
        assert!(matches!(
            writer.finish(0, 0xf),
            Err(Error::EndBeforeStart { .. })
        ));
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        assert!(matches!(
            SnapshotWriter::create(&missing, 1, 1, 3),
            Err(Error::Io { .. })
        ));
    }

    /// The server's background snapshot thread owns the writer; created on
    /// one thread, it can be fed and finished on another.
    #[test]
    fn usable_from_another_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SnapshotWriter::create(dir.path(), 0x10, 7, 3).unwrap();
        writer.entry(Section::Acls, b"acl").unwrap();
        let path = std::thread::spawn(move || {
            writer.entry(Section::Nodes, b"node").unwrap();
            writer.finish(1, 0x10).unwrap()
        })
        .join()
        .unwrap();
        let summary = crate::SnapshotReader::verify(&path).unwrap();
        assert_eq!(summary.trailer.entry_count, 2);
    }
}
