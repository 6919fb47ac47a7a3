//! Server-wide and per-connection counters behind the four-letter words
//! (`srvr`, `stat`, `mntr`, `cons`) and their resets (`srst`, `crst`).
//!
//! Every field is an atomic so that I/O threads, the pipeline and whoever
//! renders a four-letter word can all touch them without a lock. This is not a
//! metrics system: values are plain counters and gauges, and a reset that races
//! with an update may leave a mixture of old and new values, exactly as the
//! reference's stats do. Invariant: nothing here blocks, allocates on the hot
//! path, or panics on any value a caller passes in (sums wrap, subtractions
//! saturate).
//!
//! Latencies are whole milliseconds, as the reference reports them; a request
//! answered in under a millisecond counts as 0.

use engine::types::OpCode;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Counters are independent; no ordering between them is ever relied on.
const RELAXED: Ordering = Ordering::Relaxed;

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ms)
}

/// Whole milliseconds in `duration`, saturating (a `Duration` can exceed u64 ms).
pub fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Decrements without going below zero: a stray extra decrement (say, a
/// connection counted closed twice) must not wrap a gauge to 2^64-1.
fn saturating_decrement(counter: &AtomicU64) {
    let _ = counter.fetch_update(RELAXED, RELAXED, |value| Some(value.saturating_sub(1)));
}

/// Which reference summary a request's latency also feeds: reads
/// (`readlatency`) or writes, which carry a txn (`updatelatency`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RequestKind {
    Read,
    Update,
}

/// Minimum, maximum, count and total of a series of latencies (the
/// reference's `AvgMinMaxCounter`).
#[derive(Debug)]
pub struct MinAvgMax {
    count: AtomicU64,
    total: AtomicU64,
    /// `u64::MAX` until the first sample, so `fetch_min` needs no branch.
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for MinAvgMax {
    fn default() -> Self {
        MinAvgMax {
            count: AtomicU64::new(0),
            total: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl MinAvgMax {
    pub fn record(&self, value: u64) {
        self.count.fetch_add(1, RELAXED);
        self.total.fetch_add(value, RELAXED);
        self.min.fetch_min(value, RELAXED);
        self.max.fetch_max(value, RELAXED);
    }

    pub fn reset(&self) {
        self.count.store(0, RELAXED);
        self.total.store(0, RELAXED);
        self.min.store(u64::MAX, RELAXED);
        self.max.store(0, RELAXED);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let min = self.min.load(RELAXED);
        LatencySnapshot {
            count: self.count.load(RELAXED),
            total: self.total.load(RELAXED),
            min: if min == u64::MAX { 0 } else { min },
            max: self.max.load(RELAXED),
        }
    }
}

/// A copy of a [`MinAvgMax`] at one instant.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LatencySnapshot {
    pub count: u64,
    pub total: u64,
    /// 0 when there are no samples, as the reference reports it.
    pub min: u64,
    pub max: u64,
}

impl LatencySnapshot {
    /// The mean rounded half-up to four decimal places, as the reference's
    /// `AvgMinMaxCounter.getAvg` rounds it; 0 without samples.
    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        // Exact integer rounding: ten-thousandths = round_half_up(total * 10^4 / count).
        let count = u128::from(self.count);
        let scaled = (u128::from(self.total) * 20_000 + count) / (2 * count);
        // At most 2^64 * 10^4, so the conversion to f64 loses nothing that a
        // four-decimal figure could show.
        let scaled = scaled as f64;
        scaled / 10_000.0
    }

    /// Integer mean (truncating), as `cons` shows a connection's `avglat`.
    pub fn avg_truncated(&self) -> u64 {
        self.total.checked_div(self.count).unwrap_or(0)
    }
}

/// Number of histogram buckets: values below 16 get one bucket each, then
/// four buckets per power of two up to 2^64.
const BUCKETS: usize = 16 + 60 * 4;

/// The histogram bucket of `value`: exact below 16, else the power of two and
/// the next two bits below the leading one (at most 25% wide).
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

/// Min/avg/max plus a fixed-bucket histogram for p50/p95/p99/p999 (the
/// reference's `readlatency` and `updatelatency` summaries). The reference
/// samples exact values; buckets are within 25% above 16 ms and exact below,
/// and a percentile is reported as its bucket's upper bound, capped at the max.
#[derive(Debug)]
pub struct LatencySummary {
    latency: MinAvgMax,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for LatencySummary {
    fn default() -> Self {
        LatencySummary {
            latency: MinAvgMax::default(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LatencySummary {
    pub fn record(&self, value: u64) {
        self.latency.record(value);
        if let Some(bucket) = self.buckets.get(bucket_of(value)) {
            bucket.fetch_add(1, RELAXED);
        }
    }

    pub fn reset(&self) {
        self.latency.reset();
        for bucket in &self.buckets {
            bucket.store(0, RELAXED);
        }
    }

    pub fn snapshot(&self) -> SummarySnapshot {
        let (latency, percentiles) = self.percentiles(&[500, 950, 990, 999]);
        let at = |index: usize| percentiles.get(index).copied().unwrap_or(0);
        SummarySnapshot {
            latency,
            p50: at(0),
            p95: at(1),
            p99: at(2),
            p999: at(3),
        }
    }

    /// The min/avg/max and the given percentiles (in per mille: 900 is the
    /// 90th), for exporters whose quantiles differ from `mntr`'s (the
    /// reference's Prometheus summaries report 0.5, 0.9 and 0.99). Each is 0
    /// when there are no samples.
    pub fn percentiles(&self, per_mille: &[u64]) -> (LatencySnapshot, Vec<u64>) {
        let latency = self.latency.snapshot();
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(RELAXED)).collect();
        // The histogram's own total, not `latency.count`: a racing reset may
        // leave the two briefly different and percentiles must stay in range.
        let total: u64 = counts.iter().fold(0u64, |sum, c| sum.saturating_add(*c));
        let percentile = |per_mille: u64| -> u64 {
            if total == 0 {
                return 0;
            }
            let rank = (u128::from(total) * u128::from(per_mille.min(1000)))
                .div_ceil(1000)
                .max(1);
            let mut seen = 0u128;
            for (index, count) in counts.iter().enumerate() {
                seen += u128::from(*count);
                if seen >= rank {
                    return bucket_upper(index).min(latency.max).max(latency.min);
                }
            }
            latency.max
        };
        (latency, per_mille.iter().map(|p| percentile(*p)).collect())
    }
}

/// A copy of a [`LatencySummary`] at one instant.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SummarySnapshot {
    pub latency: LatencySnapshot,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
}

/// Last, smallest and largest response size (the reference's `BufferStats`);
/// -1 until the first response.
#[derive(Debug)]
pub struct ResponseSizes {
    last: AtomicI64,
    min: AtomicI64,
    max: AtomicI64,
}

impl Default for ResponseSizes {
    fn default() -> Self {
        ResponseSizes {
            last: AtomicI64::new(-1),
            min: AtomicI64::new(-1),
            max: AtomicI64::new(-1),
        }
    }
}

impl ResponseSizes {
    pub fn record(&self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.last.store(bytes, RELAXED);
        let _ = self.min.fetch_update(RELAXED, RELAXED, |min| {
            (min < 0 || bytes < min).then_some(bytes)
        });
        self.max.fetch_max(bytes, RELAXED);
    }

    pub fn reset(&self) {
        self.last.store(-1, RELAXED);
        self.min.store(-1, RELAXED);
        self.max.store(-1, RELAXED);
    }
}

/// Counters for the whole server. One instance, shared by every thread.
#[derive(Debug, Default)]
pub struct ServerStats {
    packets_received: AtomicU64,
    packets_sent: AtomicU64,
    bytes_received: AtomicU64,
    outstanding_requests: AtomicU64,
    alive_connections: AtomicU64,
    connections_rejected: AtomicU64,
    auth_failed: AtomicU64,
    /// Every answered request: `Latency min/avg/max` and `zk_*_latency`.
    request_latency: MinAvgMax,
    read_latency: LatencySummary,
    update_latency: LatencySummary,
    response_sizes: ResponseSizes,
    /// Milliseconds each snapshot (or checkpoint) took to write, the
    /// reference's `snapshottime` summary. Not cleared by `srst`: it
    /// describes the storage, not the clients.
    snapshot_time: LatencySummary,
}

impl ServerStats {
    pub fn new() -> ServerStats {
        ServerStats::default()
    }

    /// A request frame (or a four-letter word) arrived.
    pub fn packet_received(&self) {
        self.packets_received.fetch_add(1, RELAXED);
    }

    /// Like [`packet_received`](Self::packet_received), also counting its bytes
    /// (`zk_bytes_received_count`).
    pub fn packet_received_bytes(&self, bytes: u64) {
        self.packet_received();
        self.bytes_received.fetch_add(bytes, RELAXED);
    }

    /// A reply or a watch event was queued for sending.
    pub fn packet_sent(&self) {
        self.packets_sent.fetch_add(1, RELAXED);
    }

    pub fn request_started(&self) {
        self.outstanding_requests.fetch_add(1, RELAXED);
    }

    pub fn request_finished(&self) {
        saturating_decrement(&self.outstanding_requests);
    }

    /// Sets the outstanding-requests gauge outright, for a caller that keeps
    /// its own count.
    pub fn set_outstanding_requests(&self, outstanding: u64) {
        self.outstanding_requests.store(outstanding, RELAXED);
    }

    pub fn connection_opened(&self) {
        self.alive_connections.fetch_add(1, RELAXED);
    }

    pub fn connection_closed(&self) {
        saturating_decrement(&self.alive_connections);
    }

    /// A connection was refused (maxClientCnxns, maxCnxns).
    pub fn connection_rejected(&self) {
        self.connections_rejected.fetch_add(1, RELAXED);
    }

    pub fn auth_failed(&self) {
        self.auth_failed.fetch_add(1, RELAXED);
    }

    /// Records one answered request's latency in the server-wide min/avg/max.
    pub fn record_latency_ms(&self, latency_ms: u64) {
        self.request_latency.record(latency_ms);
    }

    /// [`record_latency_ms`](Self::record_latency_ms) from a `Duration`.
    pub fn record_latency(&self, latency: Duration) {
        self.record_latency_ms(duration_ms(latency));
    }

    /// Records a latency in the min/avg/max and in the read or update summary
    /// (`zk_p99_readlatency` and friends).
    pub fn record_request_latency(&self, latency: Duration, kind: RequestKind) {
        let latency_ms = duration_ms(latency);
        self.request_latency.record(latency_ms);
        match kind {
            RequestKind::Read => self.read_latency.record(latency_ms),
            RequestKind::Update => self.update_latency.record(latency_ms),
        }
    }

    /// The size in bytes of a serialised reply, for the
    /// `zk_*_client_response_size` gauges.
    pub fn record_response_size(&self, bytes: u64) {
        self.response_sizes.record(bytes);
    }

    /// Records the size of each length-prefixed frame in `frames` (what one
    /// answer appended to a connection's output: a reply, an event, or
    /// events and then a reply). As the reference counts it, a size is the
    /// frame's length field: header and body, not the 4-byte prefix. Reads
    /// only the prefixes; a partial frame at the end is ignored.
    pub fn record_response_frames(&self, frames: &[u8]) {
        let mut rest = frames;
        while let Some((prefix, body)) = rest.split_first_chunk::<4>() {
            let length = u32::from_be_bytes(*prefix);
            let Some(next) = usize::try_from(length).ok().and_then(|n| body.get(n..)) else {
                break;
            };
            self.response_sizes.record(u64::from(length));
            rest = next;
        }
    }

    /// A snapshot or checkpoint finished writing after `elapsed`.
    pub fn snapshot_taken(&self, elapsed: Duration) {
        self.snapshot_time.record(duration_ms(elapsed));
    }

    /// The `readlatency` summary itself, for percentiles other than `mntr`'s.
    pub fn read_latency(&self) -> &LatencySummary {
        &self.read_latency
    }

    /// The `updatelatency` summary itself.
    pub fn update_latency(&self) -> &LatencySummary {
        &self.update_latency
    }

    /// The `snapshottime` summary itself.
    pub fn snapshot_time(&self) -> &LatencySummary {
        &self.snapshot_time
    }

    /// `srst`: clears latencies, packet counts and response sizes. Gauges
    /// (connections, outstanding) describe the present and are kept.
    pub fn reset(&self) {
        self.packets_received.store(0, RELAXED);
        self.packets_sent.store(0, RELAXED);
        self.bytes_received.store(0, RELAXED);
        self.connections_rejected.store(0, RELAXED);
        self.auth_failed.store(0, RELAXED);
        self.request_latency.reset();
        self.read_latency.reset();
        self.update_latency.reset();
        self.response_sizes.reset();
    }

    pub fn snapshot(&self) -> ServerStatsSnapshot {
        ServerStatsSnapshot {
            packets_received: self.packets_received.load(RELAXED),
            packets_sent: self.packets_sent.load(RELAXED),
            bytes_received: self.bytes_received.load(RELAXED),
            outstanding_requests: self.outstanding_requests.load(RELAXED),
            alive_connections: self.alive_connections.load(RELAXED),
            connections_rejected: self.connections_rejected.load(RELAXED),
            auth_failed: self.auth_failed.load(RELAXED),
            latency: self.request_latency.snapshot(),
            read_latency: self.read_latency.snapshot(),
            update_latency: self.update_latency.snapshot(),
            snapshot_time: self.snapshot_time.snapshot().latency,
            last_response_size: self.response_sizes.last.load(RELAXED),
            min_response_size: self.response_sizes.min.load(RELAXED),
            max_response_size: self.response_sizes.max.load(RELAXED),
        }
    }
}

/// A copy of [`ServerStats`] at one instant, as the four-letter words print it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ServerStatsSnapshot {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub outstanding_requests: u64,
    pub alive_connections: u64,
    pub connections_rejected: u64,
    pub auth_failed: u64,
    pub latency: LatencySnapshot,
    pub read_latency: SummarySnapshot,
    pub update_latency: SummarySnapshot,
    pub snapshot_time: LatencySnapshot,
    /// -1 until the first response, as the reference reports it.
    pub last_response_size: i64,
    pub min_response_size: i64,
    pub max_response_size: i64,
}

/// `lop` value before a connection's first reply and after `crst`.
const NO_OP: i32 = i32::MIN;

/// Counters for one connection, shown by `cons` and cleared by `crst`.
#[derive(Debug)]
pub struct ConnectionStats {
    established_ms: AtomicU64,
    packets_received: AtomicU64,
    packets_sent: AtomicU64,
    latency: MinAvgMax,
    /// Opcode of the last request answered, or `NO_OP`.
    last_op: AtomicI32,
    /// The last non-negative xid answered (special xids are skipped), or -1.
    last_cxid: AtomicI64,
    last_zxid: AtomicI64,
    last_response_ms: AtomicU64,
    last_latency_ms: AtomicU64,
}

impl Default for ConnectionStats {
    fn default() -> Self {
        ConnectionStats::new()
    }
}

impl ConnectionStats {
    /// Stats for a connection established now (wall clock).
    pub fn new() -> ConnectionStats {
        ConnectionStats::established_at(wall_clock_ms())
    }

    /// Stats for a connection established at `established_ms` (Unix ms).
    pub fn established_at(established_ms: u64) -> ConnectionStats {
        ConnectionStats {
            established_ms: AtomicU64::new(established_ms),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            latency: MinAvgMax::default(),
            last_op: AtomicI32::new(NO_OP),
            last_cxid: AtomicI64::new(-1),
            last_zxid: AtomicI64::new(-1),
            last_response_ms: AtomicU64::new(0),
            last_latency_ms: AtomicU64::new(0),
        }
    }

    pub fn packet_received(&self) {
        self.packets_received.fetch_add(1, RELAXED);
    }

    pub fn packet_sent(&self) {
        self.packets_sent.fetch_add(1, RELAXED);
    }

    /// Sets the `lop` shown by `cons` (the reference sets it for every request
    /// it answers; auth and SASL packets leave it alone).
    pub fn record_op(&self, op: OpCode) {
        self.last_op.store(op.code(), RELAXED);
    }

    /// One reply: its latency, xid and the zxid it carried, answered now.
    pub fn record_reply(&self, latency: Duration, xid: i32, zxid: i64) {
        self.record_response(None, duration_ms(latency), xid, zxid, wall_clock_ms());
    }

    /// One reply with everything explicit: the opcode if known (else `lop` is
    /// left as it was), latency, xid, zxid and when it was answered (Unix ms).
    pub fn record_response(
        &self,
        op: Option<OpCode>,
        latency_ms: u64,
        xid: i32,
        zxid: i64,
        answered_ms: u64,
    ) {
        if let Some(op) = op {
            self.record_op(op);
        }
        // Pings (-2), auth (-4) and other special xids would hide the client's
        // last real operation.
        if xid >= 0 {
            self.last_cxid.store(i64::from(xid), RELAXED);
        }
        self.last_zxid.store(zxid, RELAXED);
        self.last_response_ms.store(answered_ms, RELAXED);
        self.last_latency_ms.store(latency_ms, RELAXED);
        self.latency.record(latency_ms);
    }

    /// `crst`: back to the state of a fresh connection, keeping its
    /// establishment time.
    pub fn reset(&self) {
        self.packets_received.store(0, RELAXED);
        self.packets_sent.store(0, RELAXED);
        self.latency.reset();
        self.last_op.store(NO_OP, RELAXED);
        self.last_cxid.store(-1, RELAXED);
        self.last_zxid.store(-1, RELAXED);
        self.last_response_ms.store(0, RELAXED);
        self.last_latency_ms.store(0, RELAXED);
    }

    pub fn snapshot(&self) -> ConnectionStatsSnapshot {
        ConnectionStatsSnapshot {
            established_ms: self.established_ms.load(RELAXED),
            packets_received: self.packets_received.load(RELAXED),
            packets_sent: self.packets_sent.load(RELAXED),
            latency: self.latency.snapshot(),
            last_op: short_op_name(self.last_op.load(RELAXED)),
            last_cxid: self.last_cxid.load(RELAXED),
            last_zxid: self.last_zxid.load(RELAXED),
            last_response_ms: self.last_response_ms.load(RELAXED),
            last_latency_ms: self.last_latency_ms.load(RELAXED),
        }
    }
}

/// A copy of [`ConnectionStats`] at one instant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnectionStatsSnapshot {
    pub established_ms: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency: LatencySnapshot,
    /// The reference's four-letter op name (`GETD`, `CREA`...), `NA` if none.
    pub last_op: &'static str,
    /// -1 until a request with a non-negative xid is answered.
    pub last_cxid: i64,
    pub last_zxid: i64,
    pub last_response_ms: u64,
    pub last_latency_ms: u64,
}

impl Default for ConnectionStatsSnapshot {
    fn default() -> Self {
        ConnectionStats::established_at(0).snapshot()
    }
}

/// The short name `cons` prints as `lop` for an opcode, as the reference's
/// final request processor names them; `NA` for opcodes it does not name.
pub fn short_op_name(code: i32) -> &'static str {
    use OpCode::*;
    let Some(op) = OpCode::from_code(code) else {
        return "NA";
    };
    match op {
        Ping => "PING",
        CreateSession => "SESS",
        Multi => "MULT",
        MultiRead => "MLTR",
        Create | Create2 | CreateTtl | CreateContainer => "CREA",
        Delete | DeleteContainer => "DELE",
        SetData => "SETD",
        Reconfig => "RECO",
        SetAcl => "SETA",
        CloseSession => "CLOS",
        Sync => "SYNC",
        Check => "CHEC",
        Exists => "EXIS",
        GetData => "GETD",
        SetWatches => "SETW",
        SetWatches2 => "STW2",
        AddWatch => "ADDW",
        GetAcl => "GETA",
        GetChildren | GetChildren2 => "GETC",
        GetAllChildrenNumber => "GETACN",
        CheckWatches => "CHKW",
        RemoveWatches => "REMW",
        WhoAmI => "HOMI",
        GetEphemerals => "GETE",
        Notification | Auth | Sasl | Error => "NA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_avg_max_starts_at_zero_and_rounds_half_up_to_four_places() {
        let counter = MinAvgMax::default();
        assert_eq!(counter.snapshot(), LatencySnapshot::default());
        assert_eq!(counter.snapshot().avg(), 0.0);
        for value in [0, 1, 3] {
            counter.record(value);
        }
        let snapshot = counter.snapshot();
        assert_eq!(
            (snapshot.min, snapshot.max, snapshot.count, snapshot.total),
            (0, 3, 3, 4)
        );
        // 4/3 = 1.33333.. -> 1.3333 as the reference prints it.
        assert_eq!(snapshot.avg(), 1.3333);
        assert_eq!(snapshot.avg_truncated(), 1);
        // 2/3 = 0.66666.. -> 0.6667 (half-up on the fifth decimal).
        let two_thirds = LatencySnapshot {
            count: 3,
            total: 2,
            min: 0,
            max: 1,
        };
        assert_eq!(two_thirds.avg(), 0.6667);
        // Exactly half a ten-thousandth rounds up: 1/20000 -> 0.0001.
        let half = LatencySnapshot {
            count: 20_000,
            total: 1,
            min: 0,
            max: 1,
        };
        assert_eq!(half.avg(), 0.0001);
        counter.reset();
        assert_eq!(counter.snapshot(), LatencySnapshot::default());
    }

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
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let summary = LatencySummary::default();
        assert_eq!(summary.snapshot(), SummarySnapshot::default());
        for value in 1..=100 {
            summary.record(value);
        }
        let snapshot = summary.snapshot();
        assert_eq!(snapshot.latency.count, 100);
        assert_eq!((snapshot.latency.min, snapshot.latency.max), (1, 100));
        // p50 is the 50th value, 50, whose bucket is [48, 55].
        assert_eq!(snapshot.p50, 55);
        // p95 is 95, in [80, 95]; p99 and p999 land in [96, 111], capped at the max.
        assert_eq!((snapshot.p95, snapshot.p99, snapshot.p999), (95, 100, 100));
        // Other percentiles from the same buckets: p90 is 90, in [80, 95].
        let (latency, percentiles) = summary.percentiles(&[500, 900, 990]);
        assert_eq!(latency, snapshot.latency);
        assert_eq!(percentiles, [55, 95, 100]);
        assert_eq!(LatencySummary::default().percentiles(&[900]).1, [0]);

        let small = LatencySummary::default();
        for value in [0, 0, 0, 1, 2] {
            small.record(value);
        }
        let snapshot = small.snapshot();
        assert_eq!((snapshot.p50, snapshot.p95, snapshot.p99), (0, 2, 2));
        small.reset();
        assert_eq!(small.snapshot(), SummarySnapshot::default());
    }

    #[test]
    fn server_stats_count_and_reset_keeps_gauges() {
        let stats = ServerStats::new();
        stats.packet_received();
        stats.packet_received_bytes(40);
        stats.packet_sent();
        stats.connection_opened();
        stats.connection_opened();
        stats.connection_closed();
        stats.request_started();
        stats.auth_failed();
        stats.connection_rejected();
        stats.record_latency(Duration::from_micros(2500));
        stats.record_request_latency(Duration::from_millis(8), RequestKind::Update);
        stats.record_request_latency(Duration::from_millis(1), RequestKind::Read);
        stats.record_response_size(16);
        stats.record_response_size(89);
        // Two frames appended at once (an event, then a reply): each counts.
        let mut frames = Vec::new();
        for body in [&[0u8; 12][..], &[0u8; 88][..]] {
            frames.extend_from_slice(&u32::try_from(body.len()).unwrap_or(0).to_be_bytes());
            frames.extend_from_slice(body);
        }
        // A torn prefix at the end is not a frame.
        frames.extend_from_slice(&[0, 0]);
        stats.record_response_frames(&frames);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.packets_received, snapshot.packets_sent), (2, 1));
        assert_eq!(snapshot.bytes_received, 40);
        assert_eq!(
            (snapshot.alive_connections, snapshot.outstanding_requests),
            (1, 1)
        );
        assert_eq!(
            (snapshot.auth_failed, snapshot.connections_rejected),
            (1, 1)
        );
        assert_eq!(
            snapshot.latency,
            LatencySnapshot {
                count: 3,
                total: 11,
                min: 1,
                max: 8
            }
        );
        assert_eq!(snapshot.update_latency.latency.count, 1);
        assert_eq!(snapshot.read_latency.latency.max, 1);
        assert_eq!(
            (
                snapshot.last_response_size,
                snapshot.min_response_size,
                snapshot.max_response_size
            ),
            (88, 12, 89)
        );

        stats.reset();
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.packets_received, snapshot.packets_sent), (0, 0));
        assert_eq!(snapshot.latency, LatencySnapshot::default());
        assert_eq!(snapshot.last_response_size, -1);
        assert_eq!(
            (snapshot.alive_connections, snapshot.outstanding_requests),
            (1, 1)
        );
    }

    #[test]
    fn gauges_never_wrap_below_zero() {
        let stats = ServerStats::new();
        stats.connection_closed();
        stats.request_finished();
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.alive_connections, snapshot.outstanding_requests),
            (0, 0)
        );
    }

    #[test]
    fn connection_stats_track_the_last_real_request() {
        let stats = ConnectionStats::established_at(1_700_000_000_000);
        let fresh = stats.snapshot();
        assert_eq!(fresh.last_op, "NA");
        assert_eq!((fresh.last_cxid, fresh.last_zxid), (-1, -1));
        assert_eq!(fresh.latency, LatencySnapshot::default());

        stats.packet_received();
        stats.packet_sent();
        stats.record_response(Some(OpCode::GetData), 8, 10, 5, 1_700_000_000_100);
        // A ping: its special xid must not replace the last cxid.
        stats.record_response(Some(OpCode::Ping), 0, -2, 5, 1_700_000_000_200);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.last_op, "PING");
        assert_eq!((snapshot.last_cxid, snapshot.last_zxid), (10, 5));
        assert_eq!(
            (snapshot.last_response_ms, snapshot.last_latency_ms),
            (1_700_000_000_200, 0)
        );
        assert_eq!((snapshot.latency.min, snapshot.latency.max), (0, 8));
        assert_eq!(snapshot.latency.avg_truncated(), 4);
        assert_eq!((snapshot.packets_received, snapshot.packets_sent), (1, 1));

        // record_reply leaves lop alone.
        stats.record_op(OpCode::Create);
        stats.record_reply(Duration::from_millis(3), 11, 6);
        assert_eq!(stats.snapshot().last_op, "CREA");
        assert_eq!(stats.snapshot().last_cxid, 11);

        stats.reset();
        let reset = stats.snapshot();
        assert_eq!(
            reset,
            ConnectionStatsSnapshot {
                established_ms: 1_700_000_000_000,
                ..fresh
            }
        );
    }

    #[test]
    fn short_op_names_match_the_reference() {
        assert_eq!(short_op_name(OpCode::GetData.code()), "GETD");
        assert_eq!(short_op_name(OpCode::Create2.code()), "CREA");
        assert_eq!(short_op_name(OpCode::GetChildren2.code()), "GETC");
        assert_eq!(short_op_name(OpCode::GetAllChildrenNumber.code()), "GETACN");
        assert_eq!(short_op_name(OpCode::WhoAmI.code()), "HOMI");
        assert_eq!(short_op_name(OpCode::Auth.code()), "NA");
        assert_eq!(short_op_name(12345), "NA");
        assert_eq!(short_op_name(NO_OP), "NA");
    }
}
