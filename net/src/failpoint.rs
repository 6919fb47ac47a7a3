//! Test-only fault injection: named points in server threads that panic on
//! demand, so tests can check what the process does when a thread dies.
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

/// Panics if the point is armed for this path.
#[inline]
pub fn check(point: &str, path: &str) {
    if hit(point, path) {
        panic!("failpoint {point} hit for {path}");
    }
}
