//! The Prometheus endpoint (`metricsProvider.className=
//! org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider`):
//! `GET /metrics` in the Prometheus text format 0.0.4, with the metric
//! names, types and labels Apache ZooKeeper 3.8 exports, so dashboards built
//! for it work unchanged, plus this server's own under `zkrs_`.
//!
//! Not instrumentation: nothing is counted here. Each scrape takes a
//! [`MetricsSnapshot`] (the same snapshot the four-letter words read, plus
//! percentiles and per-thread loads) and turns it into metric families,
//! which the `prometheus` crate encodes. Rendering is a pure function of the
//! snapshot and never panics.
//!
//! What matches the reference (simpleclient 0.9, which its 3.8 provider
//! uses): gauges for what `ZooKeeperServer.registerMetrics` registers
//! (`znode_count`, `packets_received`, ...; a quorum role's extra gauges such
//! as `quorum_size`, `learners` and `synced_followers` come from the
//! snapshot's role metrics); counters named without a `_total` suffix; and
//! summaries with a `quantile` label — 0.5, 0.9 and 0.99 for the reference's
//! ADVANCED summaries, 0.5 for BASIC ones — plus `_sum` and `_count`, a
//! quantile of an empty summary being NaN. Differences: our quantiles are
//! over everything since the last `srst` (the reference's decay over a
//! ten-minute window) and come from buckets at most 25% wide; the ensemble
//! summaries (`election_time`, `propagation_latency`,
//! `commit_propagation_latency`, `local_write_committed_time_ms`) stay empty
//! while this server runs standalone, as the reference's do in standalone;
//! `fsynctime` times each group commit's write and sync together (the
//! reference times the sync of its txn log), in whole milliseconds summed
//! from microseconds; and the reference's metrics this server does not
//! measure (`commit_count` and most of `ServerMetrics`) are left out rather
//! than reported as zero.
//!
//! Ours, under `zkrs_`: the storage backend, the I/O threads' connections
//! and queue depths, the pipeline's queue depth, and the log writer's group
//! commits
//! (`zkrs_wal_batch_txns`, `zkrs_wal_batch_bytes`, `zkrs_wal_sync_seconds`
//! summaries and the `zkrs_wal_syncs_total` counter) on either backend.

use super::{Handler, Request, Response};
use net::fourlw::ServerSnapshot;
use prometheus::proto::{
    Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};
use prometheus::{Encoder, TextEncoder};
use std::sync::Arc;

/// The path Apache's provider serves.
pub const METRICS_PATH: &str = "/metrics";

/// Quantiles of the reference's ADVANCED and BASIC summaries.
const ADVANCED: &[f64] = &[0.5, 0.9, 0.99];
const BASIC: &[f64] = &[0.5];

/// One summary: its count and sum, and a value per quantile (same order as
/// the quantiles it is rendered with).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SummaryValues {
    pub count: u64,
    pub sum: u64,
    pub quantiles: Vec<u64>,
}

/// The log writer's group commits, from the backend's `SyncStats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogBatches {
    /// Batches that were synced.
    pub syncs: u64,
    /// Each synced batch's write and sync, in microseconds.
    pub sync_time_us: SummaryValues,
    /// Txns per batch written.
    pub batch_txns: SummaryValues,
    /// Bytes per batch written.
    pub batch_bytes: SummaryValues,
}

/// One I/O thread's load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoThreadLoad {
    pub connections: u64,
    /// Requests its connections have received and not yet been answered.
    pub queued_requests: u64,
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub server: ServerSnapshot,
    /// `readlatency` and `updatelatency` at [`ADVANCED`]'s quantiles,
    /// `snapshottime` at [`BASIC`]'s.
    pub read_latency: SummaryValues,
    pub update_latency: SummaryValues,
    pub snapshot_time: SummaryValues,
    /// `fsynctime` in milliseconds, at [`BASIC`]'s quantiles.
    pub fsync_time: SummaryValues,
    /// At [`ADVANCED`]'s quantiles; `None` when the backend keeps no such
    /// figures (then `fsynctime` stays empty).
    pub log: Option<LogBatches>,
    pub io_threads: Vec<IoThreadLoad>,
    /// Writes and syncs the I/O threads have handed over and the pipeline's
    /// sequencer has not taken yet (its queue depth).
    pub pipeline_queued: u64,
    /// `native` or `rocksdb`.
    pub backend: &'static str,
}

impl MetricsSnapshot {
    /// The per mille ranks to ask a latency summary for, for [`ADVANCED`] and
    /// [`BASIC`] summaries.
    pub const ADVANCED_PER_MILLE: [u64; 3] = [500, 900, 990];
    pub const BASIC_PER_MILLE: [u64; 1] = [500];
}

/// Takes a snapshot at each scrape. Called on an HTTP worker thread.
pub trait MetricsSource: Send + Sync {
    fn metrics(&self) -> MetricsSnapshot;
}

/// The HTTP handler for `/metrics`. As the reference's servlet does, it
/// honours `name[]=<family>` parameters, returning only those families.
pub struct MetricsEndpoint {
    source: Arc<dyn MetricsSource>,
}

impl MetricsEndpoint {
    pub fn new(source: Arc<dyn MetricsSource>) -> MetricsEndpoint {
        MetricsEndpoint { source }
    }
}

impl Handler for MetricsEndpoint {
    fn handle(&self, request: &Request) -> Response {
        if request.path != METRICS_PATH {
            return Response::error(404);
        }
        let names: Vec<&str> = request
            .query
            .iter()
            .filter(|(key, _)| key == "name[]")
            .map(|(_, value)| value.as_str())
            .collect();
        let mut families = families(&self.source.metrics());
        if !names.is_empty() {
            families.retain(|family| names.contains(&family.name()));
        }
        let mut body = Vec::new();
        match TextEncoder::new().encode(&families, &mut body) {
            Ok(()) => Response::ok("text/plain; version=0.0.4; charset=utf-8", body),
            Err(error) => {
                tracing::warn!("cannot encode metrics: {error}");
                Response::error(500)
            }
        }
    }
}

/// The text a scrape of `snapshot` returns.
#[cfg(test)]
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut text = String::new();
    match TextEncoder::new().encode_utf8(&families(snapshot), &mut text) {
        Ok(()) => text,
        Err(error) => format!("# cannot encode metrics: {error}\n"),
    }
}

/// Every family, in the order the reference registers them.
pub fn families(snapshot: &MetricsSnapshot) -> Vec<MetricFamily> {
    let server = &snapshot.server;
    let stats = &server.stats;
    let as_f64 = |value: u64| value as f64;
    let descriptor = |count: Option<u64>| count.map(as_f64);
    let mut out = Vec::new();
    let mut gauge = |name: &str, value: Option<f64>| {
        if let Some(value) = value {
            out.push(family(
                name,
                MetricType::GAUGE,
                vec![gauge_metric(value, &[])],
            ));
        }
    };
    // ZooKeeperServer.registerMetrics, in its order.
    gauge("avg_latency", Some(stats.latency.avg()));
    gauge("max_latency", Some(as_f64(stats.latency.max)));
    gauge("min_latency", Some(as_f64(stats.latency.min)));
    gauge("packets_received", Some(as_f64(stats.packets_received)));
    gauge("packets_sent", Some(as_f64(stats.packets_sent)));
    gauge(
        "num_alive_connections",
        Some(as_f64(stats.alive_connections)),
    );
    gauge(
        "outstanding_requests",
        Some(as_f64(stats.outstanding_requests)),
    );
    gauge("uptime", Some(as_f64(server.uptime_ms)));
    gauge("znode_count", Some(as_f64(server.node_count)));
    gauge("watch_count", Some(as_f64(server.watch_count)));
    gauge("ephemerals_count", Some(as_f64(server.ephemerals_count)));
    gauge(
        "approximate_data_size",
        Some(as_f64(server.approximate_data_size)),
    );
    gauge("global_sessions", Some(as_f64(server.global_sessions)));
    gauge("local_sessions", Some(as_f64(server.local_sessions)));
    gauge(
        "open_file_descriptor_count",
        descriptor(server.open_file_descriptors),
    );
    gauge(
        "max_file_descriptor_count",
        descriptor(server.max_file_descriptors),
    );
    gauge("connection_drop_probability", Some(0.0));
    gauge(
        "last_client_response_size",
        Some(stats.last_response_size as f64),
    );
    gauge(
        "max_client_response_size",
        Some(stats.max_response_size as f64),
    );
    gauge(
        "min_client_response_size",
        Some(stats.min_response_size as f64),
    );
    // No TLS listener: nothing is ever handshaking, and no connection is mTLS.
    gauge("outstanding_tls_handshake", Some(0.0));
    gauge("auth_failed_count", Some(as_f64(stats.auth_failed)));
    gauge("non_mtls_remote_conn_count", Some(0.0));
    gauge("non_mtls_local_conn_count", Some(0.0));
    // A quorum role's gauges (quorum_size, learners, synced_followers, ...).
    for (name, value) in &server.extra_metrics {
        if valid_name(name) {
            gauge(name, value.parse::<f64>().ok());
        }
    }

    // ServerMetrics counters this server counts.
    for (name, value) in [
        ("bytes_received_count", stats.bytes_received),
        ("connection_rejected", stats.connections_rejected),
    ] {
        let mut counter = Counter::default();
        counter.set_value(as_f64(value));
        let mut metric = Metric::default();
        metric.set_counter(counter);
        out.push(family(name, MetricType::COUNTER, vec![metric]));
    }

    // ServerMetrics summaries.
    let empty = SummaryValues::default();
    for (name, values, quantiles) in [
        ("readlatency", &snapshot.read_latency, ADVANCED),
        ("updatelatency", &snapshot.update_latency, ADVANCED),
        ("fsynctime", &snapshot.fsync_time, BASIC),
        ("snapshottime", &snapshot.snapshot_time, BASIC),
        // Ensemble-only: empty while standalone.
        ("election_time", &empty, BASIC),
        ("propagation_latency", &empty, ADVANCED),
        ("commit_propagation_latency", &empty, ADVANCED),
        ("local_write_committed_time_ms", &empty, ADVANCED),
    ] {
        out.push(family(
            name,
            MetricType::SUMMARY,
            vec![summary_metric(values, quantiles, 1.0)],
        ));
    }

    // Ours.
    let backend = gauge_metric(1.0, &[("backend", snapshot.backend)]);
    out.push(own_family(
        "zkrs_storage_backend",
        "The storage backend in use (label backend), always 1.",
        vec![backend],
    ));
    out.push(own_family(
        "zkrs_io_threads",
        "I/O threads serving client connections.",
        vec![gauge_metric(as_f64(snapshot.io_threads.len() as u64), &[])],
    ));
    out.push(own_family(
        "zkrs_pipeline_queued_submissions",
        "Writes and syncs waiting for the pipeline's sequencer (its queue depth).",
        vec![gauge_metric(as_f64(snapshot.pipeline_queued), &[])],
    ));
    if let Some(log) = &snapshot.log {
        let mut syncs = Counter::default();
        syncs.set_value(as_f64(log.syncs));
        let mut metric = Metric::default();
        metric.set_counter(syncs);
        let mut family = own_family(
            "zkrs_wal_syncs_total",
            "Group commits of the log that were synced (fdatasync, or a synced RocksDB write).",
            vec![metric],
        );
        family.set_field_type(MetricType::COUNTER);
        out.push(family);
        for (name, help, values, divisor) in [
            (
                "zkrs_wal_batch_txns",
                "Txns per group commit of the log.",
                &log.batch_txns,
                1.0,
            ),
            (
                "zkrs_wal_batch_bytes",
                "Bytes per group commit of the log, framing included.",
                &log.batch_bytes,
                1.0,
            ),
            (
                "zkrs_wal_sync_seconds",
                "Seconds from writing a group commit until it was durable (write and sync).",
                &log.sync_time_us,
                1e6,
            ),
        ] {
            let mut family =
                own_family(name, help, vec![summary_metric(values, ADVANCED, divisor)]);
            family.set_field_type(MetricType::SUMMARY);
            out.push(family);
        }
    }
    if !snapshot.io_threads.is_empty() {
        let per_thread = |pick: fn(&IoThreadLoad) -> u64| -> Vec<Metric> {
            snapshot
                .io_threads
                .iter()
                .enumerate()
                .map(|(thread, load)| {
                    gauge_metric(as_f64(pick(load)), &[("thread", &thread.to_string())])
                })
                .collect()
        };
        out.push(own_family(
            "zkrs_io_thread_connections",
            "Client connections on each I/O thread.",
            per_thread(|load| load.connections),
        ));
        out.push(own_family(
            "zkrs_io_thread_queued_requests",
            "Requests received on each I/O thread and not yet answered (its queue depth).",
            per_thread(|load| load.queued_requests),
        ));
    }
    out
}

/// The reference's families have their own name as help text.
fn family(name: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(name.to_string());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn own_family(name: &str, help: &str, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = family(name, MetricType::GAUGE, metrics);
    family.set_help(help.to_string());
    family
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut label = LabelPair::default();
            label.set_name(name.to_string());
            label.set_value(value.to_string());
            label
        })
        .collect()
}

fn gauge_metric(value: f64, label_pairs: &[(&str, &str)]) -> Metric {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_gauge(gauge);
    if !label_pairs.is_empty() {
        metric.set_label(labels(label_pairs));
    }
    metric
}

/// A summary whose values are divided by `divisor` (1e6 turns microseconds
/// into the seconds Prometheus prefers).
fn summary_metric(values: &SummaryValues, quantiles: &[f64], divisor: f64) -> Metric {
    let quantiles = quantiles
        .iter()
        .enumerate()
        .map(|(index, rank)| {
            let mut quantile = Quantile::default();
            quantile.set_quantile(*rank);
            // simpleclient reports NaN for the quantiles of an empty summary.
            let value = match values.quantiles.get(index) {
                Some(value) if values.count > 0 => *value as f64 / divisor,
                _ => f64::NAN,
            };
            quantile.set_value(value);
            quantile
        })
        .collect();
    let mut summary = Summary::default();
    summary.set_sample_count(values.count);
    summary.set_sample_sum(values.sum as f64 / divisor);
    summary.set_quantile(quantiles);
    let mut metric = Metric::default();
    metric.set_summary(summary);
    metric
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn snapshot() -> MetricsSnapshot {
        let mut server = ServerSnapshot {
            mode: "standalone".to_string(),
            node_count: 5,
            open_file_descriptors: Some(40),
            max_file_descriptors: None,
            ..ServerSnapshot::default()
        };
        server.stats.packets_received = 7;
        server.stats.bytes_received = 99;
        MetricsSnapshot {
            server,
            read_latency: SummaryValues {
                count: 4,
                sum: 10,
                quantiles: vec![2, 4, 4],
            },
            fsync_time: SummaryValues {
                count: 3,
                sum: 7,
                quantiles: vec![2],
            },
            log: Some(LogBatches {
                syncs: 3,
                sync_time_us: SummaryValues {
                    count: 3,
                    sum: 7_500,
                    quantiles: vec![2_000, 4_000, 4_000],
                },
                batch_txns: SummaryValues {
                    count: 3,
                    sum: 12,
                    quantiles: vec![3, 6, 6],
                },
                batch_bytes: SummaryValues {
                    count: 3,
                    sum: 900,
                    quantiles: vec![250, 400, 400],
                },
            }),
            io_threads: vec![
                IoThreadLoad {
                    connections: 2,
                    queued_requests: 3,
                },
                IoThreadLoad::default(),
            ],
            pipeline_queued: 5,
            backend: "native",
            ..MetricsSnapshot::default()
        }
    }

    /// Each family's `# TYPE` line, in order.
    fn types(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(str::to_string)
            .collect()
    }

    /// The reference's names and types, in its registration order; an
    /// unknown file-descriptor limit is left out rather than made up.
    #[test]
    fn families_carry_the_reference_names_and_types() {
        let text = render(&snapshot());
        let expected: Vec<String> = [
            "avg_latency gauge",
            "max_latency gauge",
            "min_latency gauge",
            "packets_received gauge",
            "packets_sent gauge",
            "num_alive_connections gauge",
            "outstanding_requests gauge",
            "uptime gauge",
            "znode_count gauge",
            "watch_count gauge",
            "ephemerals_count gauge",
            "approximate_data_size gauge",
            "global_sessions gauge",
            "local_sessions gauge",
            "open_file_descriptor_count gauge",
            "connection_drop_probability gauge",
            "last_client_response_size gauge",
            "max_client_response_size gauge",
            "min_client_response_size gauge",
            "outstanding_tls_handshake gauge",
            "auth_failed_count gauge",
            "non_mtls_remote_conn_count gauge",
            "non_mtls_local_conn_count gauge",
            "bytes_received_count counter",
            "connection_rejected counter",
            "readlatency summary",
            "updatelatency summary",
            "fsynctime summary",
            "snapshottime summary",
            "election_time summary",
            "propagation_latency summary",
            "commit_propagation_latency summary",
            "local_write_committed_time_ms summary",
            "zkrs_storage_backend gauge",
            "zkrs_io_threads gauge",
            "zkrs_pipeline_queued_submissions gauge",
            "zkrs_wal_syncs_total counter",
            "zkrs_wal_batch_txns summary",
            "zkrs_wal_batch_bytes summary",
            "zkrs_wal_sync_seconds summary",
            "zkrs_io_thread_connections gauge",
            "zkrs_io_thread_queued_requests gauge",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(types(&text), expected);
        // Counters keep Apache's names: no `_total` suffix (simpleclient 0.9).
        assert!(text.contains("\nbytes_received_count 99\n"), "{text}");
        assert!(text.contains("\npackets_received 7\n"));
        assert!(text.contains("# HELP znode_count znode_count\n"));
    }

    /// ADVANCED summaries have quantiles 0.5/0.9/0.99, BASIC ones 0.5; an
    /// empty summary's quantiles are NaN, as simpleclient reports them.
    #[test]
    fn summaries_have_quantile_labels() {
        let text = render(&snapshot());
        for line in [
            "readlatency{quantile=\"0.5\"} 2",
            "readlatency{quantile=\"0.9\"} 4",
            "readlatency{quantile=\"0.99\"} 4",
            "readlatency_sum 10",
            "readlatency_count 4",
            "updatelatency{quantile=\"0.99\"} NaN",
            "updatelatency_count 0",
            "snapshottime{quantile=\"0.5\"} NaN",
            "fsynctime{quantile=\"0.5\"} 2",
            "fsynctime_sum 7",
            "fsynctime_count 3",
            "zkrs_wal_syncs_total 3",
            "zkrs_pipeline_queued_submissions 5",
            "zkrs_wal_batch_txns{quantile=\"0.9\"} 6",
            "zkrs_wal_batch_txns_sum 12",
            "zkrs_wal_batch_bytes_count 3",
            "zkrs_wal_sync_seconds{quantile=\"0.5\"} 0.002",
            "zkrs_wal_sync_seconds_sum 0.0075",
            "zkrs_storage_backend{backend=\"native\"} 1",
            "zkrs_io_thread_connections{thread=\"0\"} 2",
            "zkrs_io_thread_queued_requests{thread=\"0\"} 3",
            "zkrs_io_thread_queued_requests{thread=\"1\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("snapshottime{quantile=\"0.9\"}"));
        assert!(!text.contains("fsynctime{quantile=\"0.9\"}"));
    }

    /// A backend without log figures shows an empty `fsynctime` and none of
    /// the `zkrs_wal_` families.
    #[test]
    fn no_log_figures_no_wal_families() {
        let text = render(&MetricsSnapshot {
            fsync_time: SummaryValues::default(),
            log: None,
            ..snapshot()
        });
        assert!(text.lines().any(|l| l == "fsynctime_count 0"), "{text}");
        assert!(!text.contains("zkrs_wal_"), "{text}");
    }

    /// A quorum role's numeric metrics become gauges under their own names;
    /// anything that is not a number or not a metric name is skipped.
    #[test]
    fn role_metrics_become_gauges() {
        let mut snapshot = snapshot();
        snapshot.server.extra_metrics = vec![
            ("quorum_size".to_string(), "3".to_string()),
            ("learners".to_string(), "2".to_string()),
            ("synced_followers".to_string(), "2".to_string()),
            ("peer_state".to_string(), "leading - broadcast".to_string()),
            ("bad name".to_string(), "1".to_string()),
        ];
        let text = render(&snapshot);
        for line in ["quorum_size 3", "learners 2", "synced_followers 2"] {
            assert!(text.lines().any(|l| l == line), "missing {line:?}");
        }
        assert!(!text.contains("peer_state") && !text.contains("bad name"));
    }

    struct Fixed;

    impl MetricsSource for Fixed {
        fn metrics(&self) -> MetricsSnapshot {
            snapshot()
        }
    }

    /// `/metrics` only; `name[]` selects families as the reference's servlet
    /// does.
    #[test]
    fn endpoint_serves_metrics_and_filters_by_name() {
        let endpoint = MetricsEndpoint::new(Arc::new(Fixed));
        let get = |path: &str, query: &[(&str, &str)]| {
            endpoint.handle(&Request {
                method: Method::Get,
                path: path.to_string(),
                query: query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
        };
        let all = get("/metrics", &[]);
        assert_eq!(all.status, 200);
        assert_eq!(all.content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(
            String::from_utf8(all.body).expect("utf-8"),
            render(&snapshot())
        );
        let some = get(
            "/metrics",
            &[("name[]", "znode_count"), ("name[]", "readlatency")],
        );
        let text = String::from_utf8(some.body).expect("utf-8");
        assert_eq!(types(&text), ["znode_count gauge", "readlatency summary"]);
        assert_eq!(get("/", &[]).status, 404);
        assert_eq!(get("/commands/ruok", &[]).status, 404);
    }
}
