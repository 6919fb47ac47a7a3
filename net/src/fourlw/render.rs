//! Each four-letter word's answer, byte for byte as the reference 3.8 prints
//! it, from the snapshots a [`FourLetterSource`] hands over. Pure: no I/O, and
//! nothing panics whatever the snapshots hold.

use super::{
    ConnectionSnapshot, DumpSnapshot, ExpiryBucket, FourLetterSource, FourLetterWord, HostSnapshot,
    ServerSnapshot, Whitelist, NOT_SERVING,
};
use crate::javafmt::{java_date_utc, java_double, java_socket_addr};
use std::fmt::Write as _;

/// The reference's answer to a known word that is not whitelisted.
pub fn refusal(word: FourLetterWord) -> String {
    format!(
        "{} is not executed because it is not in the whitelist.\n",
        word.name()
    )
}

/// The complete answer to `word`, to be written before closing the
/// connection. `stmk` needs its argument: use [`render_set_trace_mask`];
/// given here it answers nothing, like a reference whose read of the mask
/// failed. `telnet close`, even whitelisted, answers nothing.
pub fn render(word: FourLetterWord, whitelist: &Whitelist, src: &dyn FourLetterSource) -> String {
    use FourLetterWord::*;
    if !whitelist.allows(word) {
        return refusal(word);
    }
    let mut out = String::new();
    // Only these four answer whether or not the server is serving.
    match word {
        Ruok => return "imok".to_string(),
        Envi => return render_envi(&src.environment()),
        Gtmk => return src.trace_mask().to_string(),
        Stmk | TelnetClose => return out,
        Isro if !src.is_serving() => return "null".to_string(),
        Hash if !src.is_serving() => return NOT_SERVING.to_string(),
        _ if !src.is_serving() => return format!("{NOT_SERVING}\n"),
        _ => {}
    }
    match word {
        Isro => out.push_str(if src.is_read_only() { "ro" } else { "rw" }),
        Conf => {
            for (key, value) in src.config() {
                // A heading (Apache's `membership: ` before the server
                // lines) is a key ending in ':' with no value.
                if key.ends_with(':') && value.is_empty() {
                    line(&mut out, format_args!("{key} "));
                } else {
                    line(&mut out, format_args!("{key}={value}"));
                }
            }
        }
        Cons => {
            for connection in src.connections() {
                connection_info(&mut out, &connection, false);
                out.push('\n');
            }
            out.push('\n');
        }
        Crst => {
            src.reset_connection_stats();
            out.push_str("Connection stats reset.\n");
        }
        Srst => {
            src.reset_server_stats();
            out.push_str("Server stats reset.\n");
        }
        Dirs => {
            let server = src.server();
            line(
                &mut out,
                format_args!("datadir_size: {}", server.data_dir_size),
            );
            line(
                &mut out,
                format_args!("logdir_size: {}", server.log_dir_size),
            );
        }
        Srvr | Stat => render_stat(&mut out, word == Stat, src),
        Dump => render_dump(&mut out, &src.dump()),
        Wchs => {
            let summary = src.watch_summary();
            line(
                &mut out,
                format_args!(
                    "{} connections watching {} paths",
                    summary.connections, summary.paths
                ),
            );
            line(&mut out, format_args!("Total watches:{}", summary.watches));
        }
        Wchc => {
            for (session, paths) in src.watches_by_session() {
                line(&mut out, format_args!("0x{}", hex(session)));
                for path in paths {
                    line(&mut out, format_args!("\t{path}"));
                }
            }
            out.push('\n');
        }
        Wchp => {
            for (path, sessions) in src.watches_by_path() {
                line(&mut out, format_args!("{path}"));
                for session in sessions {
                    line(&mut out, format_args!("\t0x{}", hex(session)));
                }
            }
            out.push('\n');
        }
        Mntr => render_mntr(&mut out, &src.version(), &src.server()),
        Hash => {
            for (zxid, digest) in src.digest_log() {
                line(&mut out, format_args!("{}: {digest}", hex(zxid)));
            }
        }
        Ruok | Envi | Gtmk | Stmk | TelnetClose => {}
    }
    out
}

/// The answer to `stmk` with the eight-byte mask the client sent after it:
/// the server records the mask and the reference echoes it.
pub fn render_set_trace_mask(
    mask: i64,
    whitelist: &Whitelist,
    src: &dyn FourLetterSource,
) -> String {
    if !whitelist.allows(FourLetterWord::Stmk) {
        return refusal(FourLetterWord::Stmk);
    }
    src.set_trace_mask(mask);
    mask.to_string()
}

/// Appends `args` and a newline. Writing to a `String` cannot fail.
fn line(out: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
    out.push('\n');
}

/// Java's `Long.toHexString`: lowercase, no padding, two's complement for
/// negative values.
fn hex(value: i64) -> String {
    format!("{:x}", value as u64)
}

/// `srvr` (and `stat`, which adds the client list).
fn render_stat(out: &mut String, with_clients: bool, src: &dyn FourLetterSource) {
    line(out, format_args!("Zookeeper version: {}", src.version()));
    if src.is_read_only() {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if with_clients {
        out.push_str("Clients:\n");
        for connection in src.connections() {
            connection_info(out, &connection, true);
            out.push('\n');
        }
        out.push('\n');
    }
    let server = src.server();
    let stats = &server.stats;
    line(
        out,
        format_args!(
            "Latency min/avg/max: {}/{}/{}",
            stats.latency.min,
            java_double(stats.latency.avg()),
            stats.latency.max
        ),
    );
    line(out, format_args!("Received: {}", stats.packets_received));
    line(out, format_args!("Sent: {}", stats.packets_sent));
    line(
        out,
        format_args!("Connections: {}", stats.alive_connections),
    );
    line(
        out,
        format_args!("Outstanding: {}", stats.outstanding_requests),
    );
    line(out, format_args!("Zxid: 0x{}", hex(server.last_zxid)));
    line(out, format_args!("Mode: {}", server.mode));
    line(out, format_args!("Node count: {}", server.node_count));
    if let Some((last, min, max)) = server.proposal_sizes {
        line(
            out,
            format_args!("Proposal sizes last/min/max: {last}/{min}/{max}"),
        );
    }
}

/// One connection's line as `cons` (full) and `stat` (brief) print it, without
/// the trailing newline.
fn connection_info(out: &mut String, connection: &ConnectionSnapshot, brief: bool) {
    let stats = &connection.stats;
    let _ = write!(
        out,
        " {}[{:x}](queued={},recved={},sent={}",
        java_socket_addr(&connection.remote),
        connection.interest_ops,
        connection.queued,
        stats.packets_received,
        stats.packets_sent
    );
    if !brief && connection.session_id != 0 {
        let _ = write!(
            out,
            ",sid=0x{},lop={},est={},to={}",
            hex(connection.session_id),
            stats.last_op,
            stats.established_ms,
            connection.session_timeout_ms
        );
        if stats.last_cxid >= 0 {
            let _ = write!(out, ",lcxid=0x{}", hex(stats.last_cxid));
        }
        let _ = write!(
            out,
            ",lzxid=0x{},lresp={},llat={},minlat={},avglat={},maxlat={}",
            hex(stats.last_zxid),
            stats.last_response_ms,
            stats.last_latency_ms,
            stats.latency.min,
            stats.latency.avg_truncated(),
            stats.latency.max
        );
    }
    out.push(')');
}

fn render_dump(out: &mut String, dump: &DumpSnapshot) {
    out.push_str("SessionTracker dump:\n");
    render_expiry(out, "Session", &dump.session_expiry, |out, session| {
        line(out, format_args!("\t0x{}", hex(*session)));
    });
    out.push_str("ephemeral nodes dump:\n");
    line(
        out,
        format_args!("Sessions with Ephemerals ({}):", dump.ephemerals.len()),
    );
    for (session, paths) in &dump.ephemerals {
        line(out, format_args!("0x{}:", hex(*session)));
        for path in paths {
            line(out, format_args!("\t{path}"));
        }
    }
    out.push_str("Connections dump:\n");
    render_expiry(
        out,
        "Connections",
        &dump.connection_expiry,
        |out, (remote, session)| {
            line(
                out,
                format_args!(
                    "\tip: {} sessionId: 0x{}",
                    java_socket_addr(remote),
                    hex(*session)
                ),
            );
        },
    );
}

/// The reference's expiry-queue dump: a header counting buckets and members,
/// then each bucket, earliest first.
fn render_expiry<T>(
    out: &mut String,
    title: &str,
    buckets: &[ExpiryBucket<T>],
    member: impl Fn(&mut String, &T),
) {
    let members: usize = buckets.iter().map(|bucket| bucket.members.len()).sum();
    line(
        out,
        format_args!("{title} Sets ({})/({members}):", buckets.len()),
    );
    let mut order: Vec<&ExpiryBucket<T>> = buckets.iter().collect();
    order.sort_by_key(|bucket| bucket.expires_at_ms);
    for bucket in order {
        line(
            out,
            format_args!(
                "{} expire at {}:",
                bucket.members.len(),
                java_date_utc(bucket.expires_at_ms)
            ),
        );
        for item in &bucket.members {
            member(out, item);
        }
    }
}

/// `mntr`: `zk_<key>\t<value>` lines. The version and state come first, then
/// the gauges in the order the reference 3.8 printed them, then the counters
/// and latency summaries this server keeps. The reference also prints a few
/// hundred internal metrics (`zk_fsynctime`, `zk_commit_count`, ...) that
/// this server does not track; they are left out rather than faked as zero.
fn render_mntr(out: &mut String, version: &str, server: &ServerSnapshot) {
    let stats = &server.stats;
    let fd = |count: Option<u64>| count.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let mut metric = |key: &str, value: &dyn std::fmt::Display| {
        line(out, format_args!("zk_{key}\t{value}"));
    };
    metric("version", &version);
    metric("server_state", &server.mode);
    metric("ephemerals_count", &server.ephemerals_count);
    metric("num_alive_connections", &stats.alive_connections);
    metric("avg_latency", &java_double(stats.latency.avg()));
    metric("outstanding_requests", &stats.outstanding_requests);
    metric("znode_count", &server.node_count);
    metric("global_sessions", &server.global_sessions);
    metric("non_mtls_remote_conn_count", &0);
    metric("last_client_response_size", &stats.last_response_size);
    metric("packets_sent", &stats.packets_sent);
    metric("packets_received", &stats.packets_received);
    metric("max_client_response_size", &stats.max_response_size);
    metric("connection_drop_probability", &"0.0");
    metric("watch_count", &server.watch_count);
    metric("auth_failed_count", &stats.auth_failed);
    metric("min_latency", &stats.latency.min);
    metric(
        "max_file_descriptor_count",
        &fd(server.max_file_descriptors),
    );
    metric("approximate_data_size", &server.approximate_data_size);
    metric(
        "open_file_descriptor_count",
        &fd(server.open_file_descriptors),
    );
    metric("local_sessions", &server.local_sessions);
    metric("uptime", &server.uptime_ms);
    metric("max_latency", &stats.latency.max);
    metric("outstanding_tls_handshake", &0);
    metric("min_client_response_size", &stats.min_response_size);
    metric("non_mtls_local_conn_count", &0);
    metric("connection_rejected", &stats.connections_rejected);
    metric("bytes_received_count", &stats.bytes_received);
    for (name, summary) in [
        ("readlatency", &stats.read_latency),
        ("updatelatency", &stats.update_latency),
    ] {
        let latency = &summary.latency;
        metric(&format!("avg_{name}"), &java_double(latency.avg()));
        metric(&format!("min_{name}"), &latency.min);
        metric(&format!("max_{name}"), &latency.max);
        metric(&format!("cnt_{name}"), &latency.count);
        metric(&format!("sum_{name}"), &latency.total);
        metric(&format!("p50_{name}"), &summary.p50);
        metric(&format!("p95_{name}"), &summary.p95);
        metric(&format!("p99_{name}"), &summary.p99);
        metric(&format!("p999_{name}"), &summary.p999);
    }
    // The reference's `snapshottime` summary, in ms. Benchmarks poll it to
    // find when snapshots ran: a new count ends one of `last - min..` ms.
    let snapshots = &stats.snapshot_time;
    metric("avg_snapshottime", &java_double(snapshots.avg()));
    metric("min_snapshottime", &snapshots.min);
    metric("max_snapshottime", &snapshots.max);
    metric("cnt_snapshottime", &snapshots.count);
    metric("sum_snapshottime", &snapshots.total);
    for (key, value) in &server.extra_metrics {
        metric(key, value);
    }
}

fn render_envi(environment: &[(String, String)]) -> String {
    let mut out = String::from("Environment:\n");
    for (key, value) in environment {
        line(&mut out, format_args!("{key}={value}"));
    }
    out
}

/// `envi` for this process, in the reference's key order. The reference's
/// `java.*` lines (JVM version, vendor, class path...) and its JVM heap figures
/// (`os.memory.*`) have no equivalent here and are left out; `process.id` is
/// added. `os.name` and `os.arch` use Java's spellings (`Linux`, `amd64`) so
/// scripts written against the reference see familiar values. kazoo's
/// `server_version()` parses the leading `x.y.z` of `zookeeper.version`.
pub fn default_environment(version: &str, host: &HostSnapshot) -> Vec<(String, String)> {
    let or_na = |value: &Option<String>| value.clone().unwrap_or_else(|| "<NA>".to_string());
    let os_name = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Mac OS X",
        "windows" => "Windows",
        "freebsd" => "FreeBSD",
        other => other,
    };
    let os_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        other => other,
    };
    vec![
        ("zookeeper.version".to_string(), version.to_string()),
        ("host.name".to_string(), or_na(&host.host_name)),
        ("os.name".to_string(), os_name.to_string()),
        ("os.arch".to_string(), os_arch.to_string()),
        ("os.version".to_string(), or_na(&host.os_version)),
        (
            "user.name".to_string(),
            host.user_name.clone().unwrap_or_else(|| "?".to_string()),
        ),
        (
            "user.home".to_string(),
            host.user_home.clone().unwrap_or_else(|| "?".to_string()),
        ),
        ("user.dir".to_string(), or_na(&host.user_dir)),
        // The reference reports its JVM heap here. With no heap, the honest
        // equivalents are: free = memory the machine has available, max = the
        // machine's memory (nothing smaller caps us), total = our resident set.
        (
            "os.memory.free".to_string(),
            megabytes(host.memory_available_kb),
        ),
        ("os.memory.max".to_string(), megabytes(host.memory_total_kb)),
        ("os.memory.total".to_string(), megabytes(host.resident_kb)),
        (
            "process.id".to_string(),
            host.process_id
                .map_or_else(|| "<NA>".to_string(), |id| id.to_string()),
        ),
    ]
}

fn megabytes(kb: Option<u64>) -> String {
    kb.map(|kb| format!("{}MB", kb / 1024))
        .unwrap_or_else(|| "<NA>".to_string())
}
