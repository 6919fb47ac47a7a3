//! The segment directory: file names, listing, creating a segment so that a
//! crash leaves either no segment or one with a complete header, and syncing
//! the directory after names change.
//!
//! Not the record format (`format`) nor the decision what to do with a bad
//! segment (`writer`). Invariant: a file named `log.<16 hex>` has, from the
//! moment the name exists, a complete and synced header for that zxid, and
//! a segment replaced under its name (truncation) is replaced whole: the
//! name points at the old file or at the new one, complete and synced.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::format::{self, SegmentHeader};
use crate::Error;

const PREFIX: &str = "log.";
const TEMP_SUFFIX: &str = ".tmp";

/// The file name of the segment whose first zxid is `first_zxid`.
pub fn segment_name(first_zxid: u64) -> String {
    format!("{PREFIX}{first_zxid:016x}")
}

/// The first zxid a segment file name stands for, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(PREFIX)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Segments as (first zxid, path), oldest first, and leftover temporaries.
pub type Listing = (Vec<(u64, PathBuf)>, Vec<PathBuf>);

/// Segment files in `dir`, sorted by first zxid. Leftover temporary files of
/// an unfinished roll-over are returned separately so `open` can remove them.
pub fn list(dir: &Path) -> Result<Listing, Error> {
    let mut segments = Vec::new();
    let mut temporaries = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first_zxid) = parse_segment_name(name) {
            segments.push((first_zxid, entry.path()));
        } else if name.starts_with(PREFIX) && name.ends_with(TEMP_SUFFIX) {
            temporaries.push(entry.path());
        }
    }
    segments.sort();
    Ok((segments, temporaries))
}

/// fsyncs the directory so created, renamed and removed names survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    let handle = File::open(dir).map_err(|e| Error::io(dir, e))?;
    handle.sync_all().map_err(|e| Error::io(dir, e))
}

/// Grows `file` to `new_len` bytes of zeros, preferring `fallocate` (real
/// blocks, so later writes allocate nothing) and falling back to `set_len`.
pub fn preallocate(file: &File, path: &Path, new_len: u64) -> Result<(), Error> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(new_len).map_err(|_| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "segment too large"),
        )
    })?;
    // SAFETY: fallocate on a file descriptor we own; no memory is passed.
    let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if result == 0 {
        return Ok(());
    }
    file.set_len(new_len).map_err(|e| Error::io(path, e))
}

/// Creates the segment for `header.first_zxid` holding `body` (the record
/// bytes after the header, given in pieces; empty for a new segment):
/// header, body and preallocation are written and synced under a temporary
/// name, then renamed into place, replacing a segment of that name if there
/// is one, and the directory synced. A reader's map of a replaced file stays
/// valid: it keeps the old inode. Returns the file, its path and its length.
pub fn create_segment(
    dir: &Path,
    header: SegmentHeader,
    body: &[&[u8]],
    pre_alloc_bytes: u64,
    sync: bool,
) -> Result<(File, PathBuf, u64), Error> {
    let name = segment_name(header.first_zxid);
    let path = dir.join(&name);
    let temp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temp)
        .map_err(|e| Error::io(&temp, e))?;
    file.write_all(&format::encode_header(header))
        .map_err(|e| Error::io(&temp, e))?;
    let mut written = u64::try_from(format::HEADER_BYTES).unwrap_or(32);
    for piece in body {
        file.write_all(piece).map_err(|e| Error::io(&temp, e))?;
        written = written.saturating_add(u64::try_from(piece.len()).unwrap_or(u64::MAX));
    }
    // Whole preallocation blocks past what was written, as appends grow it.
    let block = pre_alloc_bytes.max(1);
    let len = written.div_ceil(block).saturating_mul(block).max(written);
    preallocate(&file, &temp, len)?;
    if sync {
        file.sync_all().map_err(|e| Error::io(&temp, e))?;
    }
    fs::rename(&temp, &path).map_err(|e| Error::io(&path, e))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok((file, path, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Names sort in zxid order because they are zero-padded hex.
    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(segment_name(0x1_0000_0002), "log.0000000100000002");
        assert_eq!(
            parse_segment_name("log.0000000100000002"),
            Some(0x1_0000_0002)
        );
        assert_eq!(parse_segment_name("log.12"), None);
        assert_eq!(parse_segment_name("log.000000010000000g"), None);
        assert_eq!(parse_segment_name("log.0000000100000002.tmp"), None);
        assert!(segment_name(9) < segment_name(10));
    }
}
