//! Test-only fault injection: named points in server threads that panic on
//! demand, so tests can check what the process does when a thread dies, and
//! points that damage what a thread sends, once.
//!
//! Compiled in only with the `failpoints` feature (off by default; CI builds
//! every feature). Armed by the environment: `ZK_FAILPOINTS=point=/path,...`
//! makes `hit(point, path)` true whenever that point handles that znode path.
//! Without the feature `hit` is always false and costs nothing.

/// The points: the sequencer prepping a write of the path, the applier
/// applying it, an I/O thread answering a read of it.
pub const SEQUENCER: &str = "sequencer";
pub const APPLIER: &str = "applier";
pub const IO: &str = "io";
/// An ensemble member's applier; armed as `applier-delay=<ms>`, it waits
/// that long before applying each batch of commits: a lagging replica
/// whose log keeps up (its ACKs are not delayed) but whose tree does not.
pub const APPLIER_DELAY: &str = "applier-delay";
/// A leader's driver; armed as `snap-resend=<myid>`, it sends its first SNAP
/// stream to that server twice, the second after the NEWLEADER.
pub const SNAP_RESEND: &str = "snap-resend";
/// A leader's SNAP sender; armed as `snap-sender=<myid>`, it damages the
/// second frame of the streams it sends to that server until one of them
/// has reached its NEWLEADER.
pub const SNAP_SENDER: &str = "snap-sender";
/// An ensemble member's quorum ticks; armed as `tick-percent=<p>`, its tick
/// lasts p% of `tickTime`, so its limits (initLimit, syncLimit, election
/// timeouts) expire sooner or later than its peers'.
pub const TICK_PERCENT: &str = "tick-percent";
/// Armed as `commit-alone=unsafe`, a leader commits without a quorum
/// (`quorum::Config::unsafe_commit_alone`): a broken ensemble that
/// zk-chaos's self-test must catch losing acknowledged writes.
pub const COMMIT_ALONE: &str = "commit-alone";

#[cfg(feature = "failpoints")]
fn armed() -> &'static [(String, String)] {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let spec = std::env::var("ZK_FAILPOINTS").unwrap_or_default();
        let armed: Vec<(String, String)> = spec
            .split(',')
            .filter_map(|item| item.split_once('='))
            .map(|(point, path)| (point.trim().to_string(), path.trim().to_string()))
            .collect();
        if !armed.is_empty() {
            tracing::warn!(failpoints = %spec, "failpoints armed");
        }
        armed
    })
}

/// Arms the points named in `ZK_FAILPOINTS` (and logs them) now rather than
/// at first use.
pub fn init() {
    #[cfg(feature = "failpoints")]
    let _ = armed();
}

#[cfg(feature = "failpoints")]
pub fn hit(point: &str, path: &str) -> bool {
    armed().iter().any(|(p, q)| p == point && q == path)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_point: &str, _path: &str) -> bool {
    false
}

/// The value a point is armed with (`point=value`), if it is.
#[cfg(feature = "failpoints")]
pub fn value(point: &str) -> Option<&'static str> {
    armed()
        .iter()
        .find(|(p, _)| p == point)
        .map(|(_, value)| value.as_str())
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn value(_point: &str) -> Option<&'static str> {
    None
}

/// Like `hit`, but true only the first time in the process's life.
#[cfg(feature = "failpoints")]
pub fn hit_once(point: &str, path: &str) -> bool {
    use std::sync::Mutex;
    static FIRED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    if !hit(point, path) {
        return false;
    }
    let mut fired = FIRED.lock().unwrap_or_else(|e| e.into_inner());
    if fired.iter().any(|(p, q)| p == point && q == path) {
        return false;
    }
    fired.push((point.to_string(), path.to_string()));
    true
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit_once(_point: &str, _path: &str) -> bool {
    false
}

/// Panics if the point is armed for this path.
#[inline]
pub fn check(point: &str, path: &str) {
    if hit(point, path) {
        panic!("failpoint {point} hit for {path}");
    }
}
