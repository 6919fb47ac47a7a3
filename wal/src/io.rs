//! The writer thread's two ways to put a batch on disk: an io_uring write
//! linked to an `fdatasync`, or `pwrite` then `fdatasync`. Both write the same
//! bytes at the same offset; only the system calls differ.
//!
//! Not the batching (`writer`) nor the format. Invariant: `write_batch`
//! returns Ok only when every byte was written and, if asked, synced; any
//! error is final (the caller poisons the WAL and never retries a sync).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use io_uring::{opcode, squeue, types, IoUring};

const WRITE_TAG: u64 = 1;
const SYNC_TAG: u64 = 2;

pub enum Backend {
    // Boxed: the ring is large and the enum lives in the writer's state.
    Uring(Box<IoUring>),
    Pwrite,
}

impl Backend {
    pub fn uring() -> io::Result<Backend> {
        IoUring::new(8).map(|ring| Backend::Uring(Box::new(ring)))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Uring(_) => "io_uring",
            Backend::Pwrite => "pwrite",
        }
    }

    /// Writes `bytes` at `offset` and, if `sync`, makes them durable.
    pub fn write_batch(
        &mut self,
        file: &File,
        bytes: &[u8],
        offset: u64,
        sync: bool,
    ) -> io::Result<()> {
        match self {
            Backend::Pwrite => {
                file.write_all_at(bytes, offset)?;
                if sync {
                    file.sync_data()?;
                }
                Ok(())
            }
            Backend::Uring(ring) => uring_write_batch(ring, file, bytes, offset, sync),
        }
    }

    /// Makes earlier writes durable (used after `open` zeros a torn tail).
    pub fn sync(&mut self, file: &File) -> io::Result<()> {
        match self {
            Backend::Pwrite => file.sync_data(),
            Backend::Uring(ring) => {
                let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(SYNC_TAG);
                let results = submit(ring, &[entry])?;
                check(results.first().copied())
            }
        }
    }
}

fn check(result: Option<i32>) -> io::Result<()> {
    match result {
        Some(code) if code < 0 => Err(io::Error::from_raw_os_error(-code)),
        Some(_) => Ok(()),
        None => Err(io::Error::other("io_uring returned no completion")),
    }
}

/// Pushes `entries` and waits for all their completions; returns each
/// result in the order of the entries (matched by user data index).
fn submit(ring: &mut IoUring, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
    assert!(
        entries.len() <= 2,
        "the writer submits at most two entries at once"
    );
    {
        let mut queue = ring.submission();
        for entry in entries {
            // SAFETY: every buffer an entry points at outlives this call,
            // which waits for all the completions before returning.
            unsafe { queue.push(entry) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
    }
    let mut results = vec![i32::MIN; entries.len()];
    let mut seen = 0;
    while seen < entries.len() {
        match ring.submit_and_wait(entries.len() - seen) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        for completion in ring.completion() {
            let tag = completion.user_data();
            let slot = match tag {
                WRITE_TAG => 0,
                SYNC_TAG => entries.len() - 1,
                _ => continue,
            };
            if let Some(result) = results.get_mut(slot) {
                *result = completion.result();
                seen += 1;
            }
        }
    }
    Ok(results)
}

fn uring_write_batch(
    ring: &mut IoUring,
    file: &File,
    bytes: &[u8],
    offset: u64,
    sync: bool,
) -> io::Result<()> {
    let fd = types::Fd(file.as_raw_fd());
    let mut written = 0usize;
    let mut sync_pending = sync;
    while written < bytes.len() || sync_pending {
        let rest = bytes.get(written..).unwrap_or(&[]);
        if rest.is_empty() {
            // Only the sync is left (a short write broke the link earlier).
            let entry = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(SYNC_TAG);
            check(submit(ring, &[entry])?.first().copied())?;
            return Ok(());
        }
        // One write covers at most u32::MAX bytes; batches are far smaller.
        let chunk = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let position = offset + u64::try_from(written).unwrap_or(u64::MAX);
        let write = opcode::Write::new(fd, rest.as_ptr(), chunk)
            .offset(position)
            .build()
            .user_data(WRITE_TAG);
        let chunk_len = usize::try_from(chunk).unwrap_or(usize::MAX);
        let results = if sync_pending {
            // Linked: the sync starts only after the write completed in full.
            let sync_entry = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(SYNC_TAG);
            submit(ring, &[write.flags(squeue::Flags::IO_LINK), sync_entry])?
        } else {
            submit(ring, &[write])?
        };
        let wrote = results.first().copied().unwrap_or(i32::MIN);
        if wrote < 0 {
            return Err(io::Error::from_raw_os_error(-wrote));
        }
        if wrote == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "io_uring write wrote nothing",
            ));
        }
        written += usize::try_from(wrote).unwrap_or(0);
        if sync_pending && written >= bytes.len() && usize::try_from(wrote).ok() == Some(chunk_len)
        {
            // The linked sync ran after a full write; its result decides.
            let synced = results.get(1).copied();
            if synced == Some(-libc::ECANCELED) {
                continue;
            }
            check(synced)?;
            sync_pending = false;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Both backends put the same bytes at the same offset.
    #[test]
    fn backends_write_at_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut backends = vec![Backend::Pwrite];
        match Backend::uring() {
            Ok(ring) => backends.push(ring),
            Err(error) => {
                eprintln!("!!! io_uring NOT available here ({error}); testing pwrite only")
            }
        }
        for (index, mut backend) in backends.into_iter().enumerate() {
            let path = dir.path().join(format!("f{index}"));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .expect("open");
            backend
                .write_batch(&file, b"hello", 3, true)
                .expect("write");
            backend.write_batch(&file, b"!", 8, false).expect("write");
            backend.sync(&file).expect("sync");
            assert_eq!(
                std::fs::read(&path).expect("read"),
                b"\0\0\0hello!",
                "{}",
                backend.name()
            );
        }
    }
}
