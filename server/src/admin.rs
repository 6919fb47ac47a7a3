//! The operator's view of a running server: `Admin` implements
//! `net::fourlw::FourLetterSource` for the four-letter words, and on top of
//! it the AdminServer's `http::commands::AdminSource` and the Prometheus
//! endpoint's `http::metrics::MetricsSource`, by reading `Shared` (briefly
//! taking the tree's read lock and the registries' locks), the config, the
//! data directories and `/proc`. It only reports, resets counters and keeps
//! the trace mask; it changes no state a client can see. The reactor calls it
//! on its `fourlw` thread and the HTTP endpoints on their own workers, so the
//! file reads here never hold up an I/O thread.

use crate::config::{Config, StorageBackend};
use crate::http::commands::AdminSource;
use crate::http::metrics::{
    IoThreadLoad, LogBatches, MetricsSnapshot, MetricsSource, SummaryValues,
};
use engine::storage::SyncStats;
use net::fourlw::{
    ConnectionSnapshot, DumpSnapshot, ExpiryBucket, FourLetterSource, HostSnapshot, ServerSnapshot,
    WatchSummary,
};
use net::shared::Shared;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The version line tools parse: the protocol generation we speak first,
/// then our own version.
pub const VERSION: &str = concat!(
    "3.8.0-zk-server-",
    env!("CARGO_PKG_VERSION"),
    ", built on unknown"
);

pub struct Admin {
    shared: Arc<Shared>,
    config: Config,
    started: Instant,
    /// `stmk` / `set_trace_mask`; nothing is traced, but the reference
    /// echoes the mask back from `gtmk`.
    trace_mask: AtomicI64,
    /// The configuration text as it was at start-up (`initial_configuration`).
    initial_configuration: String,
    /// The storage's log writer figures (`fsynctime`, `zkrs_wal_*`), if it
    /// keeps them.
    sync_stats: Option<Arc<SyncStats>>,
}

impl Admin {
    pub fn new(shared: Arc<Shared>, config: Config) -> Admin {
        let initial_configuration = match &config.source {
            Some(path) => std::fs::read_to_string(path).unwrap_or_else(|_| {
                config
                    .entries
                    .iter()
                    .map(|(key, value)| format!("{key}={value}\n"))
                    .collect()
            }),
            None => crate::config::EMBEDDED_ZOO_CFG.to_string(),
        };
        Admin {
            shared,
            config,
            started: Instant::now(),
            trace_mask: AtomicI64::new(net::fourlw::DEFAULT_TRACE_MASK),
            initial_configuration,
            sync_stats: None,
        }
    }

    /// Reports the storage's log writer figures (`Storage::sync_stats`).
    pub fn with_sync_stats(mut self, sync_stats: Option<Arc<SyncStats>>) -> Admin {
        self.sync_stats = sync_stats;
        self
    }

    fn session_of(&self, conn: engine::types::WatcherId) -> i64 {
        self.shared
            .session_of(conn)
            .map(|session| session.0)
            .unwrap_or(0)
    }
}

impl FourLetterSource for Admin {
    fn version(&self) -> String {
        VERSION.to_string()
    }

    fn is_serving(&self) -> bool {
        !self.shared.is_shutting_down() && self.shared.replica.is_serving()
    }

    fn is_read_only(&self) -> bool {
        self.shared.replica.is_read_only()
    }

    fn server(&self) -> ServerSnapshot {
        let (last_zxid, node_count, ephemerals_count, approximate_data_size, sessions) = {
            let tree = self.shared.tree.read();
            (
                tree.last_zxid().0,
                tree.node_count() as u64,
                tree.ephemeral_count() as u64,
                tree.approximate_data_size(),
                tree.session_count() as u64,
            )
        };
        let (open_file_descriptors, max_file_descriptors) = file_descriptors();
        let mut stats = self.shared.stats.snapshot();
        stats.outstanding_requests = self.shared.outstanding.load(Ordering::Relaxed) as u64;
        let replica = self.shared.replica.view();
        let (proposal_sizes, extra_metrics) = quorum_metrics(&replica);
        ServerSnapshot {
            mode: replica.mode.as_str().to_string(),
            last_zxid,
            // The reference counts the root twice (as "" and "/"); monitoring
            // compares against its figure, so report the same.
            node_count: node_count + 1,
            watch_count: self.shared.watches.count() as u64,
            ephemerals_count,
            approximate_data_size,
            global_sessions: sessions,
            local_sessions: 0,
            data_dir_size: dir_size(&self.config.data_dir),
            log_dir_size: dir_size(&self.config.data_log_dir),
            open_file_descriptors,
            max_file_descriptors,
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            stats,
            proposal_sizes,
            extra_metrics,
        }
    }

    fn config(&self) -> Vec<(String, String)> {
        self.config.conf_4lw(
            dir_size(&self.config.data_dir),
            dir_size(&self.config.data_log_dir),
        )
    }

    fn connections(&self) -> Vec<ConnectionSnapshot> {
        let connections = self.shared.connections.lock();
        let mut snapshots: Vec<ConnectionSnapshot> = connections
            .values()
            .map(|entry| ConnectionSnapshot {
                remote: entry.remote,
                interest_ops: 1,
                queued: entry.queued.load(Ordering::Relaxed),
                session_id: entry.session.load(Ordering::Relaxed),
                session_timeout_ms: entry.timeout_ms.load(Ordering::Relaxed),
                stats: entry.stats.snapshot(),
            })
            .collect();
        snapshots.sort_by_key(|snapshot| snapshot.stats.established_ms);
        snapshots
    }

    fn dump(&self) -> DumpSnapshot {
        // Deadlines are monotonic time; shown as the wall-clock time they
        // fall at, as the reference shows them.
        let clock = &self.shared.clock;
        let wall_minus_monotonic = clock.wall_ms() - clock.monotonic_ms();
        let session_expiry = self
            .shared
            .sessions
            .lock()
            .by_expiry()
            .into_iter()
            .map(|(at_ms, sessions)| ExpiryBucket {
                expires_at_ms: u64::try_from(at_ms + wall_minus_monotonic).unwrap_or(0),
                members: sessions.into_iter().map(|session| session.0).collect(),
            })
            .collect();
        let ephemerals = {
            let tree = self.shared.tree.read();
            tree.sessions_with_ephemerals()
                .into_iter()
                .map(|session| {
                    let mut paths = tree.ephemerals(session);
                    paths.sort();
                    (session.0, paths)
                })
                .collect()
        };
        DumpSnapshot {
            session_expiry,
            ephemerals,
            connection_expiry: Vec::new(),
        }
    }

    fn watches_by_session(&self) -> Vec<(i64, Vec<String>)> {
        let mut by_session: Vec<(i64, Vec<String>)> = self
            .shared
            .watches
            .by_watcher()
            .into_iter()
            .map(|(conn, paths)| (self.session_of(conn), paths))
            .collect();
        by_session.sort();
        by_session
    }

    fn watches_by_path(&self) -> Vec<(String, Vec<i64>)> {
        let sessions: HashMap<engine::types::WatcherId, i64> = self
            .shared
            .connections
            .lock()
            .iter()
            .map(|(conn, entry)| (*conn, entry.session.load(Ordering::Relaxed)))
            .collect();
        let mut by_path: Vec<(String, Vec<i64>)> = self
            .shared
            .watches
            .by_path()
            .into_iter()
            .map(|(path, conns)| {
                let ids = conns
                    .iter()
                    .map(|conn| sessions.get(conn).copied().unwrap_or(0))
                    .collect();
                (path, ids)
            })
            .collect();
        by_path.sort();
        by_path
    }

    fn watch_summary(&self) -> WatchSummary {
        let summary = self.shared.watches.summary();
        WatchSummary {
            connections: summary.connections,
            paths: summary.paths,
            watches: summary.watches,
        }
    }

    fn reset_connection_stats(&self) {
        for entry in self.shared.connections.lock().values() {
            entry.stats.reset();
        }
    }

    fn reset_server_stats(&self) {
        self.shared.stats.reset();
    }

    fn host(&self) -> HostSnapshot {
        host()
    }

    fn trace_mask(&self) -> i64 {
        self.trace_mask.load(Ordering::Relaxed)
    }

    fn set_trace_mask(&self, mask: i64) {
        self.trace_mask.store(mask, Ordering::Relaxed);
    }
}

impl AdminSource for Admin {
    fn quorum(&self) -> Option<crate::http::commands::QuorumView> {
        use net::shared::Mode;
        let me = self.config.my_id?;
        if !self.config.is_distributed() {
            return None;
        }
        let view = self.shared.replica.view();
        let server_value = |id: u64| {
            self.config.servers.get(&id).map(|spec| {
                spec.addresses
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.host, a.quorum_port, a.election_port))
                    .collect::<Vec<_>>()
                    .join("|")
            })
        };
        let spec = self.config.servers.get(&me)?;
        let first = spec.addresses.first()?;
        let voting_members = self
            .config
            .servers
            .iter()
            .filter(|(_, spec)| spec.role == crate::config::LearnerRole::Participant)
            .map(|(&id, spec)| {
                let mut value = server_value(id).unwrap_or_default();
                value.push_str(":participant");
                if let Some((host, port)) = &spec.client {
                    value.push_str(&format!(";{host}:{port}"));
                }
                (id, value)
            })
            .collect();
        Some(crate::http::commands::QuorumView {
            my_id: me,
            is_leader: view.mode == Mode::Leader,
            leader_id: view.leader.map_or(-1, |id| id as i64),
            leader_ip: view.leader.and_then(server_value).unwrap_or_default(),
            voting: spec.role == crate::config::LearnerRole::Participant,
            zab_state: if matches!(view.mode, Mode::Looking | Mode::ReadOnly) {
                "election"
            } else {
                "broadcast"
            },
            voting_members,
            quorum_address: format!("{}:{}", first.host, first.quorum_port),
            election_address: format!("{}:{}", first.host, first.election_port),
            client_address: format!(
                "{}:{}",
                self.config
                    .client_port_address
                    .map_or("0.0.0.0".to_string(), |a| a.to_string()),
                self.config.client_port
            ),
            last_zxid: self.shared.tree.read().last_zxid().0,
        })
    }

    fn last_snapshot(&self) -> Option<(i64, i64)> {
        match self.config.storage_backend {
            StorageBackend::Native => newest_snapshot_file(&self.config.data_dir),
            // Its checkpoint lives inside the database, not as a file.
            StorageBackend::RocksDb => None,
        }
    }

    fn initial_configuration(&self) -> String {
        self.initial_configuration.clone()
    }

    fn system_properties(&self) -> Vec<(String, String)> {
        let mut properties = self.environment();
        properties.extend(crate::config::parse_jvm_flags(
            &crate::config::jvm_flags_from_env(),
        ));
        properties
    }

    fn as_four_letter_source(&self) -> &dyn FourLetterSource {
        self
    }
}

impl MetricsSource for Admin {
    fn metrics(&self) -> MetricsSnapshot {
        let stats = &self.shared.stats;
        let summary = |summary: &net::stats::LatencySummary, per_mille: &[u64]| {
            let (latency, quantiles) = summary.percentiles(per_mille);
            SummaryValues {
                count: latency.count,
                sum: latency.total,
                quantiles,
            }
        };
        let mut io_threads = vec![IoThreadLoad::default(); self.shared.mailboxes.len()];
        for (conn, entry) in self.shared.connections.lock().iter() {
            if let Some(load) = io_threads.get_mut(conn.thread()) {
                load.connections += 1;
                load.queued_requests += entry.queued.load(Ordering::Relaxed);
            }
        }
        let histogram = |histogram: &wal::stats::Histogram, per_mille: &[u64]| {
            let summary = histogram.summary(per_mille);
            SummaryValues {
                count: summary.count,
                sum: summary.sum,
                quantiles: summary.quantiles,
            }
        };
        let log = self.sync_stats.as_deref().map(|sync| LogBatches {
            syncs: sync.syncs(),
            sync_time_us: histogram(sync.sync_time_us(), &MetricsSnapshot::ADVANCED_PER_MILLE),
            batch_txns: histogram(sync.batch_records(), &MetricsSnapshot::ADVANCED_PER_MILLE),
            batch_bytes: histogram(sync.batch_bytes(), &MetricsSnapshot::ADVANCED_PER_MILLE),
        });
        // The reference's `fsynctime` is in milliseconds.
        let fsync_time = self
            .sync_stats
            .as_deref()
            .map(|sync| {
                let micros = histogram(sync.sync_time_us(), &MetricsSnapshot::BASIC_PER_MILLE);
                SummaryValues {
                    count: micros.count,
                    sum: micros.sum / 1000,
                    quantiles: micros.quantiles.iter().map(|us| us / 1000).collect(),
                }
            })
            .unwrap_or_default();
        MetricsSnapshot {
            server: self.server(),
            read_latency: summary(stats.read_latency(), &MetricsSnapshot::ADVANCED_PER_MILLE),
            update_latency: summary(stats.update_latency(), &MetricsSnapshot::ADVANCED_PER_MILLE),
            snapshot_time: summary(stats.snapshot_time(), &MetricsSnapshot::BASIC_PER_MILLE),
            fsync_time,
            log,
            io_threads,
            pipeline_queued: self.shared.submit.len() as u64,
            backend: match self.config.storage_backend {
                StorageBackend::Native => "native",
                StorageBackend::RocksDb => "rocksdb",
            },
        }
    }
}

/// The newest `snapshot.<16 hex digits>` file directly under `dir`: its zxid
/// and modification time in Unix seconds (the reference's `last_snapshot`).
fn newest_snapshot_file(dir: &Path) -> Option<(i64, i64)> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let zxid = snapshot_zxid(name.to_str()?)?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            let seconds = modified
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|since| i64::try_from(since.as_secs()).ok())
                .unwrap_or(0);
            Some((zxid, seconds))
        })
        .max_by_key(|(zxid, _)| *zxid)
}

/// The zxid a finished snapshot's file name carries; `None` for anything
/// else (temporary files, other names).
fn snapshot_zxid(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("snapshot.")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|zxid| zxid as i64)
}

/// The machine and this process as `envi` shows them.
fn host() -> HostSnapshot {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    HostSnapshot {
        host_name: read_trimmed("/proc/sys/kernel/hostname").or_else(|| env("HOSTNAME")),
        os_version: read_trimmed("/proc/sys/kernel/osrelease"),
        user_name: env("USER").or_else(|| env("LOGNAME")),
        user_home: env("HOME"),
        user_dir: std::env::current_dir()
            .ok()
            .map(|dir| dir.display().to_string()),
        memory_available_kb: meminfo_kb("MemAvailable:"),
        memory_total_kb: meminfo_kb("MemTotal:"),
        resident_kb: resident_kb(),
        process_id: Some(std::process::id()),
    }
}

/// A one-line file's content, trimmed; `None` if unreadable or empty.
fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

/// A `/proc/meminfo` field in kB.
fn meminfo_kb(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kb_field(&text, field)
}

/// This process's resident set in kB.
fn resident_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    kb_field(&text, "VmRSS:")
}

/// The number after `field` on the line that starts with it (`MemTotal:  16 kB`).
fn kb_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(field))?;
    line.get(field.len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Bytes in the files directly under `dir` (the reference sums its snapshot
/// and log directories the same way).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(|metadata| metadata.is_file())
        .map(|metadata| metadata.len())
        .sum()
}

/// Open and maximum file descriptors of this process, where Linux tells.
fn file_descriptors() -> (Option<u64>, Option<u64>) {
    let open = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let max = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0)
        .then_some(limit.rlim_cur);
    (open, max)
}

/// The quorum lines of `mntr` (and their metrics) as Apache 3.8 prints them:
/// `zk_peer_state` and `zk_quorum_size` on every member, the learner counts
/// and proposal sizes on the leader.
#[allow(clippy::type_complexity)]
fn quorum_metrics(
    view: &net::shared::ReplicaView,
) -> (Option<(i64, i64, i64)>, Vec<(String, String)>) {
    use net::shared::Mode;
    let peer_state = match view.mode {
        Mode::Standalone => return (None, Vec::new()),
        // A read-only server is still electing.
        Mode::Looking | Mode::ReadOnly => "looking",
        Mode::Leader => "leading - broadcast",
        Mode::Follower => "following - broadcast",
        Mode::Observer => "observing - broadcast",
    };
    let mut metrics = vec![
        ("peer_state".to_string(), peer_state.to_string()),
        ("quorum_size".to_string(), view.voters.to_string()),
    ];
    if view.mode != Mode::Leader {
        return (None, metrics);
    }
    metrics.extend([
        ("learners".to_string(), view.learners.to_string()),
        (
            "synced_followers".to_string(),
            view.synced_followers.to_string(),
        ),
        ("synced_non_voting_followers".to_string(), "0".to_string()),
        (
            "synced_observers".to_string(),
            view.synced_observers.to_string(),
        ),
        ("pending_syncs".to_string(), "0".to_string()),
        (
            "last_proposal_size".to_string(),
            view.last_proposal_size.to_string(),
        ),
        (
            "max_proposal_size".to_string(),
            view.max_proposal_size.to_string(),
        ),
        (
            "min_proposal_size".to_string(),
            view.min_proposal_size.to_string(),
        ),
    ]);
    let size = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let sizes = (
        size(view.last_proposal_size),
        size(view.min_proposal_size),
        size(view.max_proposal_size),
    );
    (Some(sizes), metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only finished snapshots count for `last_snapshot`; the newest zxid wins.
    #[test]
    fn last_snapshot_is_the_newest_finished_file() {
        assert_eq!(
            snapshot_zxid("snapshot.00000001000000ff"),
            Some(0x1_0000_00ff)
        );
        assert_eq!(snapshot_zxid("snapshot.00000001000000ff.tmp"), None);
        assert_eq!(snapshot_zxid("snapshot.1"), None);
        assert_eq!(snapshot_zxid("log.0000000000000001"), None);
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(newest_snapshot_file(dir.path()), None);
        for name in [
            "snapshot.0000000000000010",
            "snapshot.0000000000000200",
            "snapshot.0000000000000300.tmp",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let (zxid, seconds) = newest_snapshot_file(dir.path()).expect("found");
        assert_eq!(zxid, 0x200);
        assert!(seconds > 1_600_000_000, "a Unix time in seconds: {seconds}");
    }

    /// `/proc` lines as the kernel writes them; anything else reads as unknown.
    #[test]
    fn kb_fields_of_proc_files() {
        let meminfo = "MemTotal:       16303476 kB\nMemFree:  12 kB\nMemAvailable:   9 kB\n";
        assert_eq!(kb_field(meminfo, "MemTotal:"), Some(16_303_476));
        assert_eq!(kb_field(meminfo, "MemAvailable:"), Some(9));
        assert_eq!(kb_field(meminfo, "VmRSS:"), None);
        assert_eq!(kb_field("VmRSS:\n", "VmRSS:"), None);
        assert_eq!(kb_field("VmRSS: lots kB\n", "VmRSS:"), None);
    }

    /// `envi` describes this process: on Linux every value is known, and the
    /// memory figures are whole megabytes.
    #[test]
    fn envi_describes_this_process() {
        let host = host();
        assert_eq!(host.process_id, Some(std::process::id()));
        assert!(host.user_dir.is_some());
        if cfg!(target_os = "linux") {
            assert!(host.host_name.is_some() && host.os_version.is_some());
            assert!(host.resident_kb.is_some_and(|kb| kb > 0));
            assert!(host.memory_total_kb >= host.memory_available_kb);
        }
        let environment = net::fourlw::default_environment(VERSION, &host);
        let value = |key: &str| {
            environment
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or("<missing>")
        };
        assert_eq!(value("zookeeper.version"), VERSION);
        assert_eq!(value("process.id"), std::process::id().to_string());
        if cfg!(target_os = "linux") {
            for key in ["os.memory.free", "os.memory.max", "os.memory.total"] {
                let megabytes = value(key).strip_suffix("MB").unwrap_or("not MB");
                assert!(megabytes.parse::<u64>().is_ok(), "{key}={}", value(key));
            }
        }
    }
}
