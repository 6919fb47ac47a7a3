//! Snapshot reader: maps a file, checks its header and trailer on open, and
//! decodes the entry stream lazily, one record at a time.
//!
//! It is not a tree loader: it returns `(Section, bytes)` pairs for the engine
//! to decode. Memory stays bounded by zstd's window plus the largest entry,
//! never the whole snapshot.
//!
//! Invariant: no length read from the file is used to index or allocate before
//! it has been checked against the file's real size, the trailer's totals and
//! `MAX_ENTRY_BYTES`; the entry stream's crc32c, count and length are checked
//! when iteration reaches the END frame, and a mismatch is an error item, so a
//! caller that consumes the iterator to its end has read a verified snapshot.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::format::{
    classify, decode_frame_prefix, FileKind, Header, Section, Trailer, END_TAG, FRAME_PREFIX_BYTES,
    HEADER_BYTES, MAX_ENTRY_BYTES, TRAILER_BYTES,
};
use crate::{Error, Region};

/// zstd's default decoder limit (128 MiB window), stated so that a crafted
/// frame header cannot ask for more. Our writer never uses a larger window.
const WINDOW_LOG_MAX: u32 = 27;

/// Decoded bytes are read in blocks this big: each decoder call has a fixed
/// cost, and entries are typically a few hundred bytes.
const DECODED_BUFFER_BYTES: usize = 128 << 10;

/// The entry stream's decoder, checksummed, with a buffer in front of it.
type Decoder<'a> = io::BufReader<Checksummed<zstd::stream::read::Decoder<'static, &'a [u8]>>>;

/// Passes reads through, keeping the crc32c of every byte read: one
/// checksum call per decoded block instead of two per entry.
struct Checksummed<R> {
    inner: R,
    crc32c: u32,
}

impl<R: Read> Read for Checksummed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let bytes = buf
            .get(..read)
            .ok_or_else(|| io::Error::other("decoder returned more bytes than asked for"))?;
        self.crc32c = crc32c::crc32c_append(self.crc32c, bytes);
        Ok(read)
    }
}

/// Payload buffers start at most this big and grow as bytes actually arrive,
/// so a length field alone never reserves memory.
const INITIAL_PAYLOAD_CAPACITY: usize = 64 << 10;

/// An open snapshot file whose header and trailer have been checked.
pub struct SnapshotReader {
    path: PathBuf,
    map: Mmap,
    header: Header,
    trailer: Trailer,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("trailer", &self.trailer)
            .finish_non_exhaustive()
    }
}

/// Per-section totals gathered by [`SnapshotReader::verify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SectionSummary {
    pub entries: u64,
    pub payload_bytes: u64,
}

/// The result of a full check of one snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub path: PathBuf,
    pub header: Header,
    pub trailer: Trailer,
    /// Only sections that have at least one entry appear.
    pub sections: BTreeMap<Section, SectionSummary>,
}

fn corrupt(file: &Path, region: Region, offset: u64, what: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.to_path_buf(),
        region,
        offset,
        what: what.into(),
    }
}

impl SnapshotReader {
    /// Opens `path`, checking the header, the trailer and that the sizes they
    /// state add up to the file's size. The entry stream is not decoded yet.
    pub fn open(path: &Path) -> Result<SnapshotReader, Error> {
        let file = File::open(path).map_err(|source| Error::io(path, source))?;
        let file_len = file
            .metadata()
            .map_err(|source| Error::io(path, source))?
            .len();
        let minimum = (HEADER_BYTES + TRAILER_BYTES) as u64;
        if file_len < minimum {
            return Err(corrupt(
                path,
                Region::File,
                file_len,
                format!("file is {file_len} bytes, shorter than a header and trailer ({minimum})"),
            ));
        }
        // SAFETY: the map is read-only and snapshot files are immutable once
        // renamed into place (the writer never reopens them, purge only
        // unlinks them, which keeps the pages alive). Truncation by another
        // process would fault the reader; nothing in this system does that.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::io(path, source))?;
        // The size is checked again on the map: the file may have changed
        // since `metadata`, and everything below indexes by the map's length.
        let len = map.len();
        if len < HEADER_BYTES + TRAILER_BYTES {
            return Err(corrupt(
                path,
                Region::File,
                len as u64,
                "file shrank below a header and trailer while being opened",
            ));
        }
        let header =
            Header::decode(&map).map_err(|error| corrupt(path, Region::File, 0, error.0))?;
        let trailer_start = len
            .checked_sub(TRAILER_BYTES)
            .ok_or_else(|| corrupt(path, Region::File, 0, "file shrank while being opened"))?;
        let trailer_bytes = map
            .get(trailer_start..)
            .ok_or_else(|| corrupt(path, Region::File, 0, "file shrank while being opened"))?;
        let trailer = Trailer::decode(trailer_bytes)
            .map_err(|error| corrupt(path, Region::File, trailer_start as u64, error.0))?;
        let stream_len = trailer_start.saturating_sub(HEADER_BYTES) as u64;
        if trailer.compressed_bytes != stream_len {
            return Err(corrupt(
                path,
                Region::File,
                trailer_start as u64,
                format!(
                    "trailer says the compressed stream is {} bytes, the file holds {stream_len}",
                    trailer.compressed_bytes
                ),
            ));
        }
        if trailer.end_zxid < header.start_zxid {
            return Err(corrupt(
                path,
                Region::File,
                trailer_start as u64,
                format!(
                    "end zxid {:#x} is before start zxid {:#x}",
                    trailer.end_zxid, header.start_zxid
                ),
            ));
        }
        // A renamed copy (for zk-snaprepair) may have any name; a file under
        // our naming scheme must agree with its header, or recovery would
        // replay the log from the wrong place.
        if let Some(FileKind::Snapshot(named_zxid)) = classify(path) {
            if named_zxid != header.start_zxid {
                return Err(corrupt(
                    path,
                    Region::File,
                    0,
                    format!(
                        "file is named for zxid {named_zxid:#x} but its header says {:#x}",
                        header.start_zxid
                    ),
                ));
            }
        }
        Ok(SnapshotReader {
            path: path.to_path_buf(),
            map,
            header,
            trailer,
        })
    }

    /// The path this reader was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    /// Decodes the entries in the order written. Each call starts again from
    /// the first entry. After an error item or the last entry the iterator
    /// returns `None`; the crc32c, count and length checks happen on reaching
    /// the END frame, so the last item is an error if they fail.
    pub fn entries(&self) -> Entries<'_> {
        let stream = self
            .map
            .get(HEADER_BYTES..self.map.len().saturating_sub(TRAILER_BYTES))
            .unwrap_or(&[]);
        let decoder = zstd::stream::read::Decoder::with_buffer(stream).and_then(|mut decoder| {
            decoder.window_log_max(WINDOW_LOG_MAX)?;
            let checksummed = Checksummed {
                inner: decoder,
                crc32c: 0,
            };
            Ok(io::BufReader::with_capacity(
                DECODED_BUFFER_BYTES,
                checksummed,
            ))
        });
        let (decoder, pending_error) = match decoder {
            Ok(decoder) => (Some(decoder), None),
            Err(source) => (None, Some(Error::io(&self.path, source))),
        };
        Entries {
            path: &self.path,
            trailer: self.trailer,
            compressed: stream,
            decoder,
            pending_error,
            entries_read: 0,
            stream_offset: 0,
        }
    }

    /// Reads the whole file and checks everything: header, trailer, sizes,
    /// every frame, the entry count, the stream's crc32c. Keeps no entries.
    /// This is what recovery and `zk-snaprepair check` run.
    pub fn verify(path: &Path) -> Result<Summary, Error> {
        let reader = SnapshotReader::open(path)?;
        let mut sections: BTreeMap<Section, SectionSummary> = BTreeMap::new();
        let mut entries = reader.entries();
        let mut payload = Vec::new();
        while let Some(section) = entries.next_into(&mut payload)? {
            let summary = sections.entry(section).or_default();
            summary.entries += 1;
            summary.payload_bytes += payload.len() as u64;
        }
        Ok(Summary {
            path: reader.path.clone(),
            header: reader.header,
            trailer: reader.trailer,
            sections,
        })
    }
}

/// Iterator over a snapshot's entries; see [`SnapshotReader::entries`].
pub struct Entries<'a> {
    path: &'a Path,
    trailer: Trailer,
    /// The compressed stream, for its crc32c at the END frame.
    compressed: &'a [u8],
    /// `None` once the iteration has ended, by END or by an error.
    decoder: Option<Decoder<'a>>,
    /// An error found while setting up, returned as the first item.
    pending_error: Option<Error>,
    entries_read: u64,
    /// Bytes of the uncompressed stream consumed so far.
    stream_offset: u64,
}

impl std::fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("path", &self.path)
            .field("entries_read", &self.entries_read)
            .field("stream_offset", &self.stream_offset)
            .finish_non_exhaustive()
    }
}

impl Entries<'_> {
    fn corrupt(&self, what: impl Into<String>) -> Error {
        corrupt(self.path, Region::Stream, self.stream_offset, what)
    }

    /// Turns a decoding failure into a `Corrupt` error: the input is memory,
    /// so any error from the decoder is about the bytes, not the device.
    fn decode_error(&self, context: &str, error: io::Error) -> Error {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            self.corrupt(format!("entry stream ends inside {context}"))
        } else {
            self.corrupt(format!("zstd stream is invalid in {context}: {error}"))
        }
    }

    /// Bytes the trailer says are left in the uncompressed stream.
    fn remaining(&self) -> u64 {
        self.trailer
            .uncompressed_bytes
            .saturating_sub(self.stream_offset)
    }

    /// Like the iterator's `next`, but decodes the payload into `payload`
    /// (replacing its contents, keeping its allocation), so a caller that
    /// handles one entry at a time allocates nothing per entry. `Ok(None)`
    /// after the END frame has been checked, and from then on; after an
    /// error, further calls return `Ok(None)` too.
    pub fn next_into(&mut self, payload: &mut Vec<u8>) -> Result<Option<Section>, Error> {
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        let Some(mut decoder) = self.decoder.take() else {
            return Ok(None);
        };
        let section = self.next_entry(&mut decoder, payload)?;
        if section.is_some() {
            self.decoder = Some(decoder);
        }
        Ok(section)
    }

    fn next_entry(
        &mut self,
        decoder: &mut Decoder<'_>,
        payload: &mut Vec<u8>,
    ) -> Result<Option<Section>, Error> {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        decoder
            .read_exact(&mut prefix)
            .map_err(|error| self.decode_error("a frame prefix", error))?;
        let (tag, len) = decode_frame_prefix(&prefix);
        if tag == END_TAG {
            self.stream_offset += FRAME_PREFIX_BYTES as u64;
            self.check_end(len, decoder)?;
            return Ok(None);
        }
        let section = Section::from_tag(tag)
            .ok_or_else(|| self.corrupt(format!("unknown section tag {tag:#04x}")))?;
        if self.entries_read >= self.trailer.entry_count {
            return Err(self.corrupt(format!(
                "more entries than the {} the trailer counts",
                self.trailer.entry_count
            )));
        }
        // This frame plus the END frame must fit in what the trailer says is
        // left: that bounds `len` by the file before anything is allocated.
        let needed = u64::from(len) + 2 * FRAME_PREFIX_BYTES as u64;
        let len_usize = usize::try_from(len).ok().filter(|&n| n <= MAX_ENTRY_BYTES);
        let len_usize = match len_usize {
            Some(n) if needed <= self.remaining() => n,
            _ => {
                return Err(self.corrupt(format!(
                "{section} entry claims {len} bytes; {} remain and the limit is {MAX_ENTRY_BYTES}",
                self.remaining()
            )))
            }
        };
        payload.clear();
        if let Some(buffered) = decoder.buffer().get(..len_usize) {
            // The usual case: the whole entry is already decoded.
            payload.extend_from_slice(buffered);
            decoder.consume(len_usize);
        } else if len_usize <= INITIAL_PAYLOAD_CAPACITY {
            // Small: sized at once, read in one call.
            payload.resize(len_usize, 0);
            decoder.read_exact(payload).map_err(|error| {
                self.decode_error(&format!("a {section} entry of {len} bytes"), error)
            })?;
        } else {
            // Large: the buffer grows only as decoded bytes arrive.
            payload.reserve(INITIAL_PAYLOAD_CAPACITY);
            let read = decoder
                .by_ref()
                .take(u64::from(len))
                .read_to_end(payload)
                .map_err(|error| self.decode_error("an entry payload", error))?;
            if read != len_usize {
                return Err(self.corrupt(format!(
                    "entry stream ends inside a {section} entry ({read} of {len} bytes)"
                )));
            }
        }
        self.stream_offset += (FRAME_PREFIX_BYTES + len_usize) as u64;
        self.entries_read += 1;
        Ok(Some(section))
    }

    /// Checks everything that can only be checked at the END frame.
    fn check_end(&self, len: u32, decoder: &mut Decoder<'_>) -> Result<(), Error> {
        if len != 0 {
            return Err(self.corrupt(format!("END frame has length {len}, not 0")));
        }
        if self.entries_read != self.trailer.entry_count {
            return Err(self.corrupt(format!(
                "stream holds {} entries, the trailer counts {}",
                self.entries_read, self.trailer.entry_count
            )));
        }
        if self.stream_offset != self.trailer.uncompressed_bytes {
            return Err(self.corrupt(format!(
                "stream is {} bytes, the trailer says {}",
                self.stream_offset, self.trailer.uncompressed_bytes
            )));
        }
        let compressed_crc32c = crc32c::crc32c(self.compressed);
        if compressed_crc32c != self.trailer.compressed_crc32c {
            return Err(corrupt(
                self.path,
                Region::File,
                HEADER_BYTES as u64,
                format!(
                    "compressed stream crc32c mismatch: trailer {:#010x}, computed {compressed_crc32c:#010x}",
                    self.trailer.compressed_crc32c
                ),
            ));
        }
        // Nothing may follow END: not more frames, not a second zstd frame.
        // Checked before the stream's crc32c, which covers every byte the
        // decoder produced: once nothing follows, that is exactly the stream.
        let mut extra = [0u8; 1];
        match decoder.read(&mut extra) {
            Ok(0) => {}
            Ok(_) => return Err(self.corrupt("bytes follow the END frame")),
            Err(error) => return Err(self.decode_error("the bytes after the END frame", error)),
        }
        let stream_crc32c = decoder.get_ref().crc32c;
        if stream_crc32c != self.trailer.stream_crc32c {
            return Err(self.corrupt(format!(
                "entry stream crc32c mismatch: trailer {:#010x}, computed {stream_crc32c:#010x}",
                self.trailer.stream_crc32c
            )));
        }
        Ok(())
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<(Section, Vec<u8>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut payload = Vec::new();
        self.next_into(&mut payload)
            .transpose()
            .map(|item| item.map(|section| (section, payload)))
    }
}

impl std::iter::FusedIterator for Entries<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{file_name, FORMAT_VERSION};
    use crate::SnapshotWriter;
    use proptest::prelude::*;

    type Entry = (Section, Vec<u8>);

    /// Writes `entries` as the snapshot starting at `start_zxid` in `dir`.
    fn write(dir: &Path, start_zxid: u64, entries: &[Entry]) -> PathBuf {
        let mut writer = SnapshotWriter::create(dir, start_zxid, 0xdb, 3).unwrap();
        for (section, payload) in entries {
            writer.entry(*section, payload).unwrap();
        }
        writer.finish(0xd16e57, start_zxid + 5).unwrap()
    }

    /// Opens and decodes a whole file: the one path every test reads through.
    fn read_all(path: &Path) -> Result<Vec<Entry>, Error> {
        let reader = SnapshotReader::open(path)?;
        reader.entries().collect()
    }

    /// A deterministic, partly compressible payload.
    fn payload(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 4 == 0 {
                    (state >> 56) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    fn sample_entries(count: usize) -> Vec<Entry> {
        (0..count)
            .map(|i| {
                let section = Section::ALL[i % Section::ALL.len()];
                (section, payload(i as u64, i % 40))
            })
            .collect()
    }

    /// Entries come back in order, byte for byte, across sections, including
    /// empty payloads and one of 1 MiB; header and trailer keep their fields.
    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = vec![(Section::Meta, Vec::new())];
        entries.extend(sample_entries(5000));
        // Around the writer's 128 KiB staging buffer: frames that fit it,
        // fill it exactly, and bypass it.
        for (i, len) in [60_000, 70_000, 131_067, 131_068, 131_072, 200_000]
            .into_iter()
            .enumerate()
        {
            entries.push((Section::Acls, payload(1000 + i as u64, len)));
            entries.push((Section::Sessions, payload(2000 + i as u64, 7)));
        }
        entries.push((Section::Nodes, payload(99, 1 << 20)));
        entries.push((Section::Sessions, Vec::new()));
        entries.push((Section::Acls, Vec::new()));
        let path = write(dir.path(), 0x3_0000_0010, &entries);
        assert_eq!(path, dir.path().join(file_name(0x3_0000_0010)));

        assert_eq!(read_all(&path).unwrap(), entries);
        let reader = SnapshotReader::open(&path).unwrap();
        let header = *reader.header();
        assert_eq!(header.format_version, FORMAT_VERSION);
        assert_eq!(header.database_id, 0xdb);
        assert_eq!(header.start_zxid, 0x3_0000_0010);
        assert!(header.created_ms > 1_600_000_000_000);
        let trailer = *reader.trailer();
        assert_eq!(trailer.entry_count, entries.len() as u64);
        assert_eq!(trailer.digest, 0xd16e57);
        assert_eq!(trailer.end_zxid, 0x3_0000_0015);
        let payload_bytes: usize = entries.iter().map(|(_, p)| p.len()).sum();
        assert_eq!(
            trailer.uncompressed_bytes,
            (payload_bytes + 5 * (entries.len() + 1)) as u64
        );

        let summary = SnapshotReader::verify(&path).unwrap();
        assert_eq!(summary.header, header);
        assert_eq!(summary.trailer, trailer);
        let total: u64 = summary.sections.values().map(|s| s.entries).sum();
        assert_eq!(total, entries.len() as u64);
        let nodes = entries.iter().filter(|(s, _)| *s == Section::Nodes);
        assert_eq!(
            summary.sections[&Section::Nodes].entries,
            nodes.count() as u64
        );
        // A second iteration starts again from the first entry.
        assert_eq!(reader.entries().count(), entries.len());
    }

    #[test]
    fn empty_snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 0, &[]);
        assert_eq!(read_all(&path).unwrap(), Vec::<Entry>::new());
        assert!(SnapshotReader::verify(&path).unwrap().sections.is_empty());
    }

    /// A file cut at any length is an error (from `open` or from iteration),
    /// never a panic and never a silently shorter snapshot.
    #[test]
    fn truncation_is_always_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &sample_entries(300));
        let bytes = std::fs::read(&path).unwrap();
        let cut_path = dir.path().join("cut");
        for len in 0..bytes.len() {
            std::fs::write(&cut_path, &bytes[..len]).unwrap();
            let result = read_all(&cut_path);
            assert!(
                matches!(result, Err(Error::Corrupt { .. })),
                "cut at {len}: {result:?}"
            );
        }
    }

    /// One flipped bit anywhere (header, compressed stream, trailer) is an
    /// error: every byte is under some crc32c.
    #[test]
    fn bit_flips_are_always_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 1, &sample_entries(300));
        let bytes = std::fs::read(&path).unwrap();
        let flipped_path = dir.path().join("flipped");
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 1 << (index % 8);
            std::fs::write(&flipped_path, &damaged).unwrap();
            let result = read_all(&flipped_path);
            assert!(
                matches!(result, Err(Error::Corrupt { .. })),
                "flip at byte {index}: {result:?}"
            );
            assert!(SnapshotReader::verify(&flipped_path).is_err());
        }
    }

    /// A file named for one zxid whose header says another is refused:
    /// recovery would replay the log from the wrong place.
    #[test]
    fn name_must_match_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), 0x20, &sample_entries(3));
        let renamed = dir.path().join(file_name(0x21));
        std::fs::rename(&path, &renamed).unwrap();
        assert!(matches!(
            SnapshotReader::open(&renamed),
            Err(Error::Corrupt { .. })
        ));
        // Under a name outside the scheme (a copy for repair) it opens.
        let copy = dir.path().join("copy");
        std::fs::rename(&renamed, &copy).unwrap();
        assert_eq!(read_all(&copy).unwrap().len(), 3);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            SnapshotReader::open(&dir.path().join("absent")),
            Err(Error::Io { .. })
        ));
    }

    /// Builds a file with a valid header and trailer around `stream`, the
    /// compressed bytes, so decoders past the open-time checks get exercised.
    fn framed_file(stream: &[u8], trailer: Trailer) -> Vec<u8> {
        let header = Header {
            format_version: FORMAT_VERSION,
            database_id: 1,
            start_zxid: 1,
            created_ms: 0,
        };
        let mut file = header.encode().to_vec();
        file.extend_from_slice(stream);
        file.extend_from_slice(&trailer.encode());
        file
    }

    fn check_no_panic(dir: &Path, bytes: &[u8]) {
        let path = dir.join("fuzzed");
        std::fs::write(&path, bytes).unwrap();
        // Iteration must end: every item consumes input or ends the iterator.
        if let Ok(reader) = SnapshotReader::open(&path) {
            for item in reader.entries().take(1 << 16) {
                if item.is_err() {
                    break;
                }
            }
        }
        let _ = SnapshotReader::verify(&path);
    }

    /// Hostile length fields inside a correctly compressed and checksummed
    /// stream are refused before anything is sized by them.
    #[test]
    fn huge_lengths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut plain = vec![Section::Nodes.tag()];
        plain.extend_from_slice(&u32::MAX.to_le_bytes());
        plain.extend_from_slice(b"tiny");
        let compressed = zstd::encode_all(&plain[..], 3).unwrap();
        let trailer = Trailer {
            entry_count: 1,
            uncompressed_bytes: u64::MAX / 2,
            compressed_bytes: compressed.len() as u64,
            stream_crc32c: 0,
            compressed_crc32c: crc32c::crc32c(&compressed),
            digest: 0,
            end_zxid: 1,
        };
        let path = dir.path().join("huge");
        std::fs::write(&path, framed_file(&compressed, trailer)).unwrap();
        let result = read_all(&path);
        assert!(matches!(result, Err(Error::Corrupt { .. })), "{result:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes as a snapshot file never panic.
        #[test]
        fn arbitrary_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            check_no_panic(dir.path(), &bytes);
        }

        /// Arbitrary compressed bytes behind a valid header and trailer reach
        /// the zstd decoder and never panic.
        #[test]
        fn arbitrary_streams_never_panic(
            stream in proptest::collection::vec(any::<u8>(), 0..512),
            entry_count in 0u64..1000,
            uncompressed_bytes in 5u64..1 << 40,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let trailer = Trailer {
                entry_count: entry_count.min(uncompressed_bytes / 5 - 1),
                uncompressed_bytes,
                compressed_bytes: stream.len() as u64,
                stream_crc32c: 0,
                compressed_crc32c: crc32c::crc32c(&stream),
                digest: 0,
                end_zxid: 1,
            };
            check_no_panic(dir.path(), &framed_file(&stream, trailer));
        }

        /// Arbitrary *decoded* bytes (validly compressed, valid trailer)
        /// exercise the frame parser's length checks and never panic.
        #[test]
        fn arbitrary_entry_streams_never_panic(
            plain in proptest::collection::vec(any::<u8>(), 0..512),
            entry_count in 0u64..100,
            claim_extra in 0u64..1 << 32,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let compressed = zstd::encode_all(&plain[..], 1).unwrap();
            let uncompressed_bytes = plain.len() as u64 + claim_extra % 4 * (1 << 30) + 500;
            let trailer = Trailer {
                entry_count,
                uncompressed_bytes,
                compressed_bytes: compressed.len() as u64,
                stream_crc32c: crc32c::crc32c(&plain),
                compressed_crc32c: crc32c::crc32c(&compressed),
                digest: 0,
                end_zxid: 1,
            };
            check_no_panic(dir.path(), &framed_file(&compressed, trailer));
        }

        /// Any list of entries round-trips.
        #[test]
        fn entries_round_trip(
            entries in proptest::collection::vec(
                (0usize..4, proptest::collection::vec(any::<u8>(), 0..300)),
                0..50,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let entries: Vec<Entry> = entries
                .into_iter()
                .map(|(section, payload)| (Section::ALL[section], payload))
                .collect();
            let path = write(dir.path(), 7, &entries);
            prop_assert_eq!(read_all(&path).unwrap(), entries);
        }
    }
}
