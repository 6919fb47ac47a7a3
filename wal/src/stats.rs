//! What the writer's group commits look like, for the server's metrics: how
//! long each batch took to become durable, how many records and bytes each
//! batch carried, how many syncs there were.
//!
//! Not a metrics system: plain lock-free figures the writer thread updates
//! once per batch and any thread may read. The RocksDB backend's writer
//! thread fills the same struct for its synced write batches, so the server
//! reads both backends one way. Invariant: recording never blocks, allocates
//! or panics, whatever the value (sums wrap).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Figures are independent; no ordering between them is relied on.
const RELAXED: Ordering = Ordering::Relaxed;

/// Values below 16 get one bucket each, then four buckets per power of two
/// up to 2^64.
const BUCKETS: usize = 16 + 60 * 4;

/// The bucket of `value`: exact below 16, else the power of two and the
/// next two bits below the leading one (at most 25% wide).
fn bucket_of(value: u64) -> usize {
    if value < 16 {
        return value as usize;
    }
    let log = 63 - value.leading_zeros() as usize; // 4..=63
    let sub = ((value >> (log - 2)) & 3) as usize;
    16 + (log - 4) * 4 + sub
}

/// The largest value that falls in bucket `index`.
fn bucket_upper(index: usize) -> u64 {
    if index < 16 {
        return index as u64;
    }
    let log = 4 + (index - 16) / 4;
    let sub = ((index - 16) % 4) as u64;
    let width = 1u64 << (log - 2);
    let lower = (4 + sub) << (log - 2);
    lower.saturating_add(width - 1)
}

/// Count, sum, min, max and a fixed-bucket histogram of a series of values.
/// A quantile is reported as its bucket's upper bound, kept within the
/// smallest and largest value seen, so it is at most 25% above the truth.
#[derive(Debug)]
pub struct Histogram {
    count: AtomicU64,
    sum: AtomicU64,
    /// `u64::MAX` until the first value, so `fetch_min` needs no branch.
    min: AtomicU64,
    max: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A [`Histogram`] read at one instant, with the quantiles asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSummary {
    pub count: u64,
    pub sum: u64,
    /// 0 without values.
    pub min: u64,
    pub max: u64,
    /// One per requested quantile, in the order asked; 0 without values.
    pub quantiles: Vec<u64>,
}

impl Histogram {
    pub fn record(&self, value: u64) {
        self.count.fetch_add(1, RELAXED);
        self.sum.fetch_add(value, RELAXED);
        self.min.fetch_min(value, RELAXED);
        self.max.fetch_max(value, RELAXED);
        if let Some(bucket) = self.buckets.get(bucket_of(value)) {
            bucket.fetch_add(1, RELAXED);
        }
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(RELAXED)
    }

    /// The figures now, with the quantiles given in per mille (900 is the
    /// 90th percentile).
    pub fn summary(&self, per_mille: &[u64]) -> HistogramSummary {
        let count = self.count.load(RELAXED);
        let sum = self.sum.load(RELAXED);
        let min = match self.min.load(RELAXED) {
            u64::MAX if count == 0 => 0,
            min => min,
        };
        let max = self.max.load(RELAXED);
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(RELAXED)).collect();
        // The buckets' own total, not `count`: a read racing a record may
        // see the two differ, and a quantile must stay in range.
        let total = counts.iter().fold(0u64, |all, c| all.saturating_add(*c));
        let quantile = |per_mille: u64| -> u64 {
            if total == 0 {
                return 0;
            }
            let rank = (u128::from(total) * u128::from(per_mille.min(1000)))
                .div_ceil(1000)
                .max(1);
            let mut seen = 0u128;
            for (index, bucket) in counts.iter().enumerate() {
                seen += u128::from(*bucket);
                if seen >= rank {
                    return bucket_upper(index).min(max).max(min);
                }
            }
            max
        };
        HistogramSummary {
            count,
            sum,
            min,
            max,
            quantiles: per_mille.iter().map(|p| quantile(*p)).collect(),
        }
    }
}

/// One log writer's batches. Shared (`Arc`) between the writer thread,
/// which records, and whoever reports it.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Microseconds from handing each synced batch to the kernel until it was
    /// durable: the write and its `fdatasync` (on io_uring one linked
    /// submission; on RocksDB its synced write). Batches written without a
    /// sync (`forceSync=no`) are not timed.
    sync_time_us: Histogram,
    /// Records (txns) per batch written.
    batch_records: Histogram,
    /// Bytes per batch written, framing included.
    batch_bytes: Histogram,
}

impl SyncStats {
    pub fn new() -> SyncStats {
        SyncStats::default()
    }

    /// One batch of `records` records in `bytes` bytes was written; `synced`
    /// is how long making it durable took, `None` if it was not synced.
    pub fn record_batch(&self, records: u64, bytes: u64, synced: Option<Duration>) {
        self.batch_records.record(records);
        self.batch_bytes.record(bytes);
        if let Some(elapsed) = synced {
            self.sync_time_us
                .record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        }
    }

    /// Syncs of batches so far.
    pub fn syncs(&self) -> u64 {
        self.sync_time_us.count()
    }

    /// Batches written so far, synced or not.
    pub fn batches(&self) -> u64 {
        self.batch_records.count()
    }

    /// Each synced batch's time to durability, in microseconds.
    pub fn sync_time_us(&self) -> &Histogram {
        &self.sync_time_us
    }

    /// Records per batch.
    pub fn batch_records(&self) -> &Histogram {
        &self.batch_records
    }

    /// Bytes per batch.
    pub fn batch_bytes(&self) -> &Histogram {
        &self.batch_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_sixteen_and_cover_every_value() {
        for value in 0..16 {
            assert_eq!(bucket_of(value), value as usize);
            assert_eq!(bucket_upper(value as usize), value);
        }
        let mut previous = 15;
        for index in 16..BUCKETS {
            let upper = bucket_upper(index);
            assert!(upper > previous, "bucket {index} does not grow");
            assert_eq!(bucket_of(previous + 1), index, "gap before bucket {index}");
            assert_eq!(bucket_of(upper), index);
            previous = upper;
        }
        assert_eq!(previous, u64::MAX);
    }

    /// Quantiles come from the buckets, within the values seen.
    #[test]
    fn histogram_summaries() {
        let histogram = Histogram::default();
        assert_eq!(
            histogram.summary(&[500]),
            HistogramSummary {
                quantiles: vec![0],
                ..HistogramSummary::default()
            }
        );
        for value in 1..=100 {
            histogram.record(value);
        }
        let summary = histogram.summary(&[500, 900, 990]);
        assert_eq!((summary.count, summary.sum), (100, 5050));
        assert_eq!((summary.min, summary.max), (1, 100));
        // 50 lies in [48, 55]; 90 in [80, 95]; 99 in [96, 111], capped at 100.
        assert_eq!(summary.quantiles, [55, 95, 100]);
    }

    /// Unsynced batches count as batches, not as syncs.
    #[test]
    fn sync_stats_count_batches_and_syncs() {
        let stats = SyncStats::new();
        stats.record_batch(3, 120, Some(Duration::from_micros(250)));
        stats.record_batch(1, 40, None);
        assert_eq!((stats.batches(), stats.syncs()), (2, 1));
        assert_eq!(stats.batch_records().summary(&[]).sum, 4);
        assert_eq!(stats.batch_bytes().summary(&[]).max, 120);
        assert_eq!(stats.sync_time_us().summary(&[]).sum, 250);
    }
}
