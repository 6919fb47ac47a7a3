//! The peer's in-memory view of its own log: a floor (the zxid of the snapshot
//! the log starts after) and the txns above it, each tagged with the storage
//! operation that wrote it. The view reflects every storage action the peer has
//! emitted, durable or not; durability is a separate question answered by
//! comparing an entry's operation number with the last one the driver confirmed.
//!
//! Invariant: zxids strictly increase along `entries`, all above `floor`, and
//! operation numbers never decrease along `entries` (a later append is a later
//! operation; truncation only removes a suffix).

use crate::{Epoch, Txn, Zxid};

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub txn: Txn,
    /// The storage operation (1-based count of emitted operations) that wrote it.
    pub op: u64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    floor: Zxid,
    floor_op: u64,
    entries: Vec<Entry>,
    /// The summed size of the entries' data.
    bytes: usize,
}

impl Log {
    /// A log recovered from storage: everything in it is durable (operation 0).
    pub fn recovered(floor: Zxid, txns: Vec<Txn>) -> Log {
        let mut entries: Vec<Entry> = Vec::with_capacity(txns.len());
        for txn in txns {
            // A recovered log that goes backwards is cut at the first step back:
            // replaying past it would break the ordering every other rule relies on.
            let last = entries.last().map_or(floor, |e| e.txn.zxid);
            if txn.zxid <= last {
                break;
            }
            entries.push(Entry { txn, op: 0 });
        }
        let bytes = entries.iter().map(|e| e.txn.data.len()).sum();
        Log {
            floor,
            floor_op: 0,
            entries,
            bytes,
        }
    }

    pub fn floor(&self) -> Zxid {
        self.floor
    }

    pub fn last(&self) -> Zxid {
        self.entries.last().map_or(self.floor, |e| e.txn.zxid)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn position(&self, zxid: Zxid) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.txn.zxid.cmp(&zxid))
    }

    /// True if `zxid` is the floor or an entry: a point a sync can start from.
    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.floor || self.position(zxid).is_ok()
    }

    /// The summed size of the txns' data above the floor.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries with a zxid above `zxid`.
    pub fn after(&self, zxid: Zxid) -> &[Entry] {
        let start = match self.position(zxid) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        &self.entries[start..]
    }

    pub fn append(&mut self, txn: Txn, op: u64) {
        debug_assert!(txn.zxid > self.last());
        self.bytes += txn.data.len();
        self.entries.push(Entry { txn, op });
    }

    /// The last zxid below `zxid`: an entry's, or the floor.
    pub fn before(&self, zxid: Zxid) -> Zxid {
        let i = self.entries.partition_point(|e| e.txn.zxid < zxid);
        if i == 0 {
            self.floor
        } else {
            self.entries[i - 1].txn.zxid
        }
    }

    pub fn truncate_after(&mut self, zxid: Zxid) {
        let keep = match self.position(zxid) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.bytes -= self.entries[keep..]
            .iter()
            .map(|e| e.txn.data.len())
            .sum::<usize>();
        self.entries.truncate(keep);
    }

    /// Replace the whole log by a snapshot at `zxid` (Zab SNAP).
    pub fn install(&mut self, zxid: Zxid, op: u64) {
        self.entries.clear();
        self.bytes = 0;
        self.floor = zxid;
        self.floor_op = op;
    }

    /// Forget entries up to `upto` (they now live in a snapshot).
    pub fn compact(&mut self, upto: Zxid) {
        if upto <= self.floor {
            return;
        }
        let cut = match self.position(upto) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        if cut > 0 {
            self.floor_op = self.entries[cut - 1].op;
        }
        self.bytes -= self
            .entries
            .drain(..cut)
            .map(|e| e.txn.data.len())
            .sum::<usize>();
        self.floor = upto;
    }

    /// The last zxid of each epoch present above the floor, in order.
    pub fn epoch_ends(&self) -> Vec<Zxid> {
        let mut ends: Vec<Zxid> = Vec::new();
        for entry in &self.entries {
            match ends.last_mut() {
                Some(last) if last.epoch() == entry.txn.zxid.epoch() => *last = entry.txn.zxid,
                _ => ends.push(entry.txn.zxid),
            }
        }
        ends
    }

    /// The last entry of `epoch` above the floor.
    pub fn last_of_epoch(&self, epoch: Epoch) -> Option<Zxid> {
        let end = self
            .entries
            .partition_point(|e| e.txn.zxid.epoch() <= epoch);
        let entry = self.entries[..end].last()?;
        (entry.txn.zxid.epoch() == epoch).then_some(entry.txn.zxid)
    }

    /// The last zxid whose every write (and every write before it) is durable,
    /// given that operations up to `ops_durable` are; `None` while even the
    /// floor's snapshot install is still in flight.
    pub fn durable_last(&self, ops_durable: u64) -> Option<Zxid> {
        let n = self.entries.partition_point(|e| e.op <= ops_durable);
        match n {
            0 => (self.floor_op <= ops_durable).then_some(self.floor),
            n => Some(self.entries[n - 1].txn.zxid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(epoch: u32, counter: u32) -> Txn {
        Txn {
            zxid: Zxid::new(Epoch(epoch), counter),
            data: vec![],
        }
    }

    #[test]
    fn epoch_ends_and_last_of_epoch() {
        let mut log = Log::recovered(Zxid::ZERO, vec![txn(1, 1), txn(1, 2), txn(3, 1)]);
        assert_eq!(
            log.epoch_ends(),
            vec![Zxid::new(Epoch(1), 2), Zxid::new(Epoch(3), 1)]
        );
        assert_eq!(log.last_of_epoch(Epoch(1)), Some(Zxid::new(Epoch(1), 2)));
        assert_eq!(log.last_of_epoch(Epoch(2)), None);
        log.truncate_after(Zxid::new(Epoch(1), 1));
        assert_eq!(log.last(), Zxid::new(Epoch(1), 1));
    }

    #[test]
    fn bytes_follow_every_change() {
        let sized = |counter: u32, len: usize| Txn {
            zxid: Zxid::new(Epoch(1), counter),
            data: vec![0; len],
        };
        let mut log = Log::recovered(Zxid::ZERO, vec![sized(1, 10), sized(2, 20)]);
        assert_eq!(log.bytes(), 30);
        log.append(sized(3, 5), 1);
        log.append(sized(4, 7), 2);
        assert_eq!(log.bytes(), 42);
        log.truncate_after(Zxid::new(Epoch(1), 3));
        assert_eq!(log.bytes(), 35);
        log.compact(Zxid::new(Epoch(1), 1));
        assert_eq!(log.bytes(), 25);
        log.install(Zxid::new(Epoch(2), 1), 3);
        assert_eq!(log.bytes(), 0);
    }

    #[test]
    fn durability_follows_operation_numbers() {
        let mut log = Log::recovered(Zxid::ZERO, vec![txn(1, 1)]);
        log.append(txn(1, 2), 1);
        log.append(txn(1, 3), 2);
        assert_eq!(log.durable_last(0), Some(Zxid::new(Epoch(1), 1)));
        assert_eq!(log.durable_last(1), Some(Zxid::new(Epoch(1), 2)));
        log.install(Zxid::new(Epoch(2), 5), 3);
        assert_eq!(log.durable_last(2), None);
        assert_eq!(log.durable_last(3), Some(Zxid::new(Epoch(2), 5)));
    }

    #[test]
    fn recovered_log_stops_at_a_step_back() {
        let log = Log::recovered(Zxid::ZERO, vec![txn(1, 2), txn(1, 1)]);
        assert_eq!(log.last(), Zxid::new(Epoch(1), 2));
    }
}
