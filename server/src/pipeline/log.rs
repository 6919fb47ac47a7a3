//! The log stage: the one owner of `Storage` on the write path. It appends
//! each proposal's txns as it arrives (returning at once: the backend syncs
//! in the background and merges what queues up meanwhile), hands the proposal
//! on to the applier, and reports durability as events: a second thread waits
//! for each append's ticket in order and sends `Durable(last zxid)`.
//!
//! Invariant: a proposal reaches the applier before its `Durable` event, and
//! `Durable` events come in zxid order. A storage failure stops the server;
//! nothing after the failed append is reported durable.

use super::{Input, Proposal};
use engine::storage::{DurableWait, Storage, StorageError, Ticket};
use engine::types::Zxid;
use net::shared::Shared;
use std::sync::Arc;

pub(super) fn run(
    mut storage: Box<dyn Storage>,
    shared: Arc<Shared>,
    proposals: crossbeam_channel::Receiver<Proposal>,
    applier: crossbeam_channel::Sender<Input>,
    tickets: crossbeam_channel::Sender<(Ticket, Zxid)>,
) -> Result<(), StorageError> {
    for proposal in proposals {
        let appended = match proposal.last_zxid() {
            None => None,
            Some(last) => match storage.append(&proposal.txns) {
                Ok(ticket) => Some((ticket, last)),
                Err(error) => {
                    tracing::error!(%error, "storage failed; the server stops");
                    shared.begin_shutdown();
                    return Err(error);
                }
            },
        };
        if applier.send(Input::Proposed(proposal)).is_err() {
            return Ok(());
        }
        if let Some(appended) = appended {
            if tickets.send(appended).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

pub(super) fn watch_durability(
    durable: Arc<dyn DurableWait>,
    shared: Arc<Shared>,
    tickets: crossbeam_channel::Receiver<(Ticket, Zxid)>,
    applier: crossbeam_channel::Sender<Input>,
) -> Result<(), StorageError> {
    for (ticket, last) in tickets {
        if let Err(error) = durable.wait(ticket) {
            tracing::error!(%error, "storage failed; the server stops");
            shared.begin_shutdown();
            return Err(error);
        }
        if applier.send(Input::Durable(last)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
