//! The log stage: the one owner of `Storage` on the write path. `append`
//! starts making a proposal's txns durable and returns at once with its
//! ticket (the backend syncs in the background and merges what queues up
//! meanwhile); durability comes back as events through the backend's
//! `DurableWait::wakeups`, which the applier's commit rule selects on.
//!
//! Standalone it runs on the sequencer's thread: a separate thread would
//! cost a hand-off per batch and buy nothing, since `append` never blocks on
//! the disk. Under Zab the quorum driver owns it.

use super::Proposal;
use engine::storage::{DurableWait, Storage, StorageError, Ticket};
use engine::types::Zxid;
use std::sync::Arc;

pub(super) struct Log {
    storage: Box<dyn Storage>,
}

/// An append in flight: durable once the backend's durable ticket reaches
/// `ticket`, and then everything up to `last` may commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Appended {
    pub ticket: Ticket,
    pub last: Zxid,
}

impl Log {
    pub(super) fn new(storage: Box<dyn Storage>) -> Log {
        Log { storage }
    }

    pub(super) fn durability(&self) -> Arc<dyn DurableWait> {
        self.storage.waiter()
    }

    /// Starts logging the proposal's txns; None when it has none.
    pub(super) fn append(&mut self, proposal: &Proposal) -> Result<Option<Appended>, StorageError> {
        let Some(last) = proposal.last_zxid() else {
            return Ok(None);
        };
        let ticket = self.storage.append(&proposal.txns)?;
        Ok(Some(Appended { ticket, last }))
    }
}
