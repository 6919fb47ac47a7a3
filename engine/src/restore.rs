//! Rebuilding a tree from a stream of encoded snapshot records on two
//! threads. Reading and decoding a record (decompression, checksums, and
//! allocating and hashing the node) costs about as much as linking it into
//! the tree, so a `snapshot-decode` thread does the first while the caller's
//! thread does the second. Both backends restore through this: the native
//! one from a snapshot file, RocksDB from a checkpoint generation.
//!
//! Memory stays bounded: at most `BATCHES_IN_FLIGHT` batches of prepared
//! records wait between the threads, beside the growing tree.

use crate::persist::{CodecError, PreparedRecord, RecordDecoder, Restorer};
use crate::tree::{DataTree, TreeError};
use crate::types::Zxid;

/// Records the decoding thread hands over at a time (some 80 KiB).
pub(crate) const BATCH_RECORDS: usize = 512;
/// Batches in flight from the decoding thread.
pub(crate) const BATCHES_IN_FLIGHT: usize = 8;

#[derive(Debug)]
pub enum RestoreError<E> {
    /// The source of records failed.
    Read(E),
    /// A record does not decode.
    Decode(CodecError),
    /// The records do not form a tree (an orphan, a duplicate).
    Tree(TreeError),
    /// The decoding thread could not be started.
    Spawn(std::io::Error),
}

/// Restores the tree whose encoded records (`persist::encode_record`, parents
/// before children) `read` produces, marked as holding everything up to
/// `start`. `read` runs on the decoding thread and passes each record to the
/// sink it is given; when the sink returns false the restore has failed, and
/// `read` should stop and return. `expected_nodes` sizes the tree up front
/// (a hint: pass a bounded figure, 0 if unknown).
pub fn restore_pipelined<E: Send>(
    start: Zxid,
    expected_nodes: usize,
    read: impl FnOnce(&mut dyn FnMut(&[u8]) -> bool) -> Result<(), E> + Send,
) -> Result<DataTree, RestoreError<E>> {
    std::thread::scope(|scope| {
        let (batches, received) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
        let decoding = std::thread::Builder::new()
            .name("snapshot-decode".into())
            .spawn_scoped(scope, move || decode(read, batches))
            .map_err(RestoreError::Spawn)?;
        let mut restorer = Restorer::new(start, expected_nodes);
        let mut built = Ok(());
        'receive: for batch in received.iter() {
            for record in batch {
                if let Err(error) = restorer.restore_prepared(record) {
                    built = Err(error);
                    break 'receive;
                }
            }
        }
        // Hanging up stops the decoding thread if the tree refused a record.
        drop(received);
        decoding
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        built.map_err(RestoreError::Tree)?;
        Ok(restorer.finish())
    })
}

/// The decoding thread: prepares what `read` yields and sends it in
/// batches, until `read` is done or the receiver hangs up.
fn decode<E>(
    read: impl FnOnce(&mut dyn FnMut(&[u8]) -> bool) -> Result<(), E>,
    batches: std::sync::mpsc::SyncSender<Vec<PreparedRecord>>,
) -> Result<(), RestoreError<E>> {
    let mut decoder = RecordDecoder::default();
    // A record may add two prepared ones (an ACL list, then the node).
    let mut batch = Vec::with_capacity(BATCH_RECORDS + 1);
    let mut failed = None;
    let mut hung_up = false;
    let read = read(&mut |bytes| {
        if let Err(error) = decoder.decode(bytes, &mut batch) {
            failed = Some(error);
            return false;
        }
        if batch.len() >= BATCH_RECORDS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS + 1));
            if batches.send(full).is_err() {
                // The tree refused a record; the builder reports it.
                hung_up = true;
                return false;
            }
        }
        true
    });
    if let Some(error) = failed {
        return Err(RestoreError::Decode(error));
    }
    read.map_err(RestoreError::Read)?;
    if !hung_up {
        // A hang-up here also means the builder has an error to report.
        let _ = batches.send(batch);
    }
    Ok(())
}
