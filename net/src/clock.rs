//! The server's two clocks, behind one trait so the pipeline and tests can
//! drive time by hand.
//!
//! Wall-clock milliseconds are for what ZooKeeper stores and shows: znode
//! ctime/mtime (carried inside txns), TTL deadlines, session id seeds, dates
//! in four-letter words. Monotonic milliseconds are for liveness: session
//! deadlines and expiry buckets. A step of the system clock (an NTP
//! correction, a VM resumed after hours) therefore moves no session deadline:
//! it neither expires every session at once nor keeps dead ones alive.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
    /// Milliseconds since an arbitrary fixed point; never goes backwards.
    fn monotonic_ms(&self) -> i64;
}

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        wall_ms()
    }

    fn monotonic_ms(&self) -> i64 {
        monotonic_ms()
    }
}

/// Wall-clock milliseconds, the unit znode times and TTLs use.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Monotonic milliseconds since the first call in this process, the unit
/// session deadlines use.
pub fn monotonic_ms() -> i64 {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    let anchor = *ANCHOR.get_or_init(Instant::now);
    i64::try_from(anchor.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// A clock that moves only when told to: for tests and simulation. Wall
/// and monotonic time can be moved apart, as an NTP step does.
#[derive(Debug)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    monotonic_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(wall_ms: i64) -> ManualClock {
        ManualClock {
            wall_ms: AtomicI64::new(wall_ms),
            monotonic_ms: AtomicI64::new(0),
        }
    }

    /// Real time passing: both clocks move.
    pub fn advance(&self, ms: i64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        self.monotonic_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The system clock being set: only wall time moves.
    pub fn step_wall(&self, ms: i64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn wall_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> i64 {
        self.monotonic_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_backwards() {
        let first = monotonic_ms();
        let second = monotonic_ms();
        assert!(second >= first);
    }

    #[test]
    fn a_wall_step_leaves_monotonic_time_alone() {
        let clock = ManualClock::new(1_000);
        clock.advance(10);
        clock.step_wall(3_600_000);
        assert_eq!(clock.monotonic_ms(), 10);
        assert_eq!(clock.wall_ms(), 3_601_010);
    }
}
