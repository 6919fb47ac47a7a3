//! The four-letter words (`ruok`, `srvr`, `stat`, `mntr`, ...): recognising
//! one in the first four bytes of a connection, the whitelist that gates them,
//! and rendering each answer in Apache ZooKeeper 3.8's exact text shape, since
//! monitoring scripts, `zkServer.sh status`, kazoo and zktop parse it.
//!
//! This is not where the data comes from: the server implements
//! [`FourLetterSource`], which hands over plain snapshots. Rendering is a pure
//! function of the word, the whitelist and those snapshots, so every shape is
//! unit-tested here against a fixed fake. Invariant: nothing here panics or
//! blocks, whatever the snapshots contain; a word that is not whitelisted
//! gets the reference's refusal line and runs nothing (not even a reset).
//!
//! As in the reference, a connection whose first four bytes, read as the
//! big-endian frame length, spell a known word is a four-letter-word
//! connection: the reactor writes the rendered text and closes it.

use crate::stats::{ConnectionStatsSnapshot, ServerStatsSnapshot};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Every command the reference knows, including the ones only `*` enables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum FourLetterWord {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    /// Get the trace mask.
    Gtmk,
    Ruok,
    /// Set the trace mask: eight more bytes follow (see [`render_set_trace_mask`]).
    Stmk,
    Srst,
    Srvr,
    Stat,
    Wchc,
    Wchp,
    Wchs,
    Mntr,
    Isro,
    /// The tree digest log (`zookeeper.digest.enabled`).
    Hash,
    /// `IAC DO TIMING-MARK`-ish bytes telnet sends on close; known so the
    /// reference can log it quietly. Whitelisted it answers nothing.
    TelnetClose,
}

impl FourLetterWord {
    pub const ALL: [FourLetterWord; 19] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Ruok,
        FourLetterWord::Stmk,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
        FourLetterWord::Mntr,
        FourLetterWord::Isro,
        FourLetterWord::Hash,
        FourLetterWord::TelnetClose,
    ];

    /// The name used in the whitelist and in the refusal text.
    pub fn name(self) -> &'static str {
        use FourLetterWord::*;
        match self {
            Conf => "conf",
            Cons => "cons",
            Crst => "crst",
            Dirs => "dirs",
            Dump => "dump",
            Envi => "envi",
            Gtmk => "gtmk",
            Ruok => "ruok",
            Stmk => "stmk",
            Srst => "srst",
            Srvr => "srvr",
            Stat => "stat",
            Wchc => "wchc",
            Wchp => "wchp",
            Wchs => "wchs",
            Mntr => "mntr",
            Isro => "isro",
            Hash => "hash",
            TelnetClose => "telnet close",
        }
    }

    /// The first four bytes of a connection that start this command, read as
    /// a big-endian `i32` (the frame length position).
    pub fn code(self) -> i32 {
        match self {
            FourLetterWord::TelnetClose => i32::from_be_bytes([0xff, 0xf4, 0xff, 0xfd]),
            word => {
                let mut bytes = [0u8; 4];
                for (slot, byte) in bytes.iter_mut().zip(word.name().bytes()) {
                    *slot = byte;
                }
                i32::from_be_bytes(bytes)
            }
        }
    }

    pub fn from_name(name: &str) -> Option<FourLetterWord> {
        FourLetterWord::ALL
            .into_iter()
            .find(|word| word.name() == name)
    }

    /// Bytes the client sends after the four-byte command: `stmk` carries an
    /// eight-byte big-endian trace mask, the others nothing.
    pub fn argument_bytes(self) -> usize {
        if self == FourLetterWord::Stmk {
            8
        } else {
            0
        }
    }
}

/// The command whose code is `first_four_bytes`, if any. Any other value is an
/// ordinary frame length.
pub fn command_from_code(first_four_bytes: i32) -> Option<FourLetterWord> {
    FourLetterWord::ALL
        .into_iter()
        .find(|word| word.code() == first_four_bytes)
}

/// `4lw.commands.whitelist`: which commands run. `srvr` always does, because
/// `zkServer.sh status` depends on it; the reference adds `isro` when
/// `readonlymode.enabled` is set (see [`Whitelist::allow`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Whitelist {
    All,
    Only(BTreeSet<FourLetterWord>),
}

impl Default for Whitelist {
    fn default() -> Self {
        Whitelist::reference_default()
    }
}

impl Whitelist {
    /// The reference's default since 3.5.3: only `srvr`.
    pub fn reference_default() -> Whitelist {
        Whitelist::Only(BTreeSet::from([FourLetterWord::Srvr]))
    }

    pub fn all() -> Whitelist {
        Whitelist::All
    }

    /// Parses a comma-separated list as the reference does: items are
    /// trimmed, empty items skipped, `*` anywhere enables everything, names
    /// are case-sensitive, and unknown names are ignored (see
    /// [`Whitelist::unknown_words`] to report them).
    pub fn parse(list: &str) -> Whitelist {
        let mut words = BTreeSet::from([FourLetterWord::Srvr]);
        for item in list.split(',').map(str::trim) {
            if item == "*" {
                return Whitelist::All;
            }
            if let Some(word) = FourLetterWord::from_name(item) {
                words.insert(word);
            }
        }
        Whitelist::Only(words)
    }

    /// The non-empty items of `list` that name no command (stopping at `*`,
    /// as parsing does).
    pub fn unknown_words(list: &str) -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .take_while(|item| *item != "*")
            .filter(|item| !item.is_empty() && FourLetterWord::from_name(item).is_none())
            .map(str::to_string)
            .collect()
    }

    /// Enables one more command.
    pub fn allow(&mut self, word: FourLetterWord) {
        if let Whitelist::Only(words) = self {
            words.insert(word);
        }
    }

    pub fn allows(&self, word: FourLetterWord) -> bool {
        match self {
            Whitelist::All => true,
            Whitelist::Only(words) => words.contains(&word),
        }
    }
}

/// What `srvr`, `stat`, `mntr` and `dirs` show about the whole server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerSnapshot {
    /// `standalone`, `leader`, `follower`, `observer` or `read-only`.
    pub mode: String,
    /// The last zxid applied to the tree.
    pub last_zxid: i64,
    /// Znodes in the tree. The reference counts the root twice (as `""` and
    /// `/`), so a fresh tree reports 5; report the same to match it.
    pub node_count: u64,
    /// Watches of every kind (`zk_watch_count`).
    pub watch_count: u64,
    pub ephemerals_count: u64,
    /// Sum of path lengths and data sizes (`zk_approximate_data_size`).
    pub approximate_data_size: u64,
    pub global_sessions: u64,
    pub local_sessions: u64,
    /// Bytes in the snapshot and log directories (`dirs`).
    pub data_dir_size: u64,
    pub log_dir_size: u64,
    /// `None` where the platform cannot tell; printed as -1 like the reference.
    pub open_file_descriptors: Option<u64>,
    pub max_file_descriptors: Option<u64>,
    pub uptime_ms: u64,
    pub stats: ServerStatsSnapshot,
    /// Leader only: last/min/max proposal size, printed by `stat`/`srvr`.
    pub proposal_sizes: Option<(i64, i64, i64)>,
    /// Role-specific `mntr` lines appended after the standard ones, as
    /// `(key without the zk_ prefix, value)` (e.g. a leader's `synced_followers`).
    pub extra_metrics: Vec<(String, String)>,
}

/// One open client connection, for `cons` and `stat`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSnapshot {
    pub remote: SocketAddr,
    /// The selector interest set as the reference prints it (1 read, 4 write,
    /// 5 both, 0 none), shown in hex.
    pub interest_ops: u32,
    /// Requests received and not yet answered.
    pub queued: u64,
    /// 0 before the session is established: then `cons` prints only counts.
    pub session_id: i64,
    pub session_timeout_ms: i32,
    pub stats: ConnectionStatsSnapshot,
}

/// Members that expire together in one bucket (sessions by session timeout,
/// connections by the idle-connection timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiryBucket<T> {
    /// When the bucket expires, Unix ms (printed as a UTC date).
    pub expires_at_ms: u64,
    pub members: Vec<T>,
}

/// What `dump` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpSnapshot {
    pub session_expiry: Vec<ExpiryBucket<i64>>,
    /// Sessions that own ephemerals, with their ephemeral paths.
    pub ephemerals: Vec<(i64, Vec<String>)>,
    /// Open connections (remote address, session id or 0) by expiry bucket.
    pub connection_expiry: Vec<ExpiryBucket<(SocketAddr, i64)>>,
}

/// `wchs`: how many connections watch how many paths, and the total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchSummary {
    pub connections: usize,
    pub paths: usize,
    pub watches: usize,
}

/// The reference's trace mask before any `stmk`.
pub const DEFAULT_TRACE_MASK: i64 = 306;

/// The data the words show, implemented by the server. Every method returns
/// plain values; none may block on I/O for long (dir sizes are expected to be
/// cached or cheap). Watch listings follow the reference: `wchc`/`wchp`/`wchs`
/// cover data and exists watches only (its child watches live in a separate
/// table it does not dump), while `zk_watch_count` counts every kind.
pub trait FourLetterSource {
    /// The full version string, e.g. `3.8.0-<build>, built on <date>`;
    /// tools parse the leading `x.y.z`.
    fn version(&self) -> String;
    /// False while starting up or shutting down: most words then answer
    /// "This ZooKeeper instance is not currently serving requests".
    fn is_serving(&self) -> bool;
    fn is_read_only(&self) -> bool;
    fn server(&self) -> ServerSnapshot;
    /// `conf` lines, in order, as `key=value`. See the server's config for the
    /// reference's key set.
    fn config(&self) -> Vec<(String, String)>;
    fn connections(&self) -> Vec<ConnectionSnapshot>;
    fn dump(&self) -> DumpSnapshot;
    /// `wchc`: per connection, its session id and watched paths.
    fn watches_by_session(&self) -> Vec<(i64, Vec<String>)>;
    /// `wchp`: per path, the session ids of the connections watching it.
    fn watches_by_path(&self) -> Vec<(String, Vec<i64>)>;
    fn watch_summary(&self) -> WatchSummary;
    /// `crst`.
    fn reset_connection_stats(&self);
    /// `srst`.
    fn reset_server_stats(&self);

    /// `envi` lines after `Environment:`. The default describes this process.
    fn environment(&self) -> Vec<(String, String)> {
        default_environment(&self.version())
    }
    /// `gtmk`. There is no trace logging to mask; the reference's default is
    /// reported unless the server keeps what `stmk` set.
    fn trace_mask(&self) -> i64 {
        DEFAULT_TRACE_MASK
    }
    fn set_trace_mask(&self, _mask: i64) {}
    /// `hash`: `(zxid, digest)` pairs of the digest log, oldest first.
    fn digest_log(&self) -> Vec<(i64, i64)> {
        Vec::new()
    }
}

/// The reference's answer when the server is not up.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

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
                line(&mut out, format_args!("{key}={value}"));
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
pub fn default_environment(version: &str) -> Vec<(String, String)> {
    let read_trimmed = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let host_name = read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| "<NA>".to_string());
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
    let os_version =
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "<NA>".to_string());
    let user_dir = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|_| "<NA>".to_string());
    vec![
        ("zookeeper.version".to_string(), version.to_string()),
        ("host.name".to_string(), host_name),
        ("os.name".to_string(), os_name.to_string()),
        ("os.arch".to_string(), os_arch.to_string()),
        ("os.version".to_string(), os_version),
        (
            "user.name".to_string(),
            env("USER")
                .or_else(|| env("LOGNAME"))
                .unwrap_or_else(|| "?".to_string()),
        ),
        (
            "user.home".to_string(),
            env("HOME").unwrap_or_else(|| "?".to_string()),
        ),
        ("user.dir".to_string(), user_dir),
        // The reference reports its JVM heap here. With no heap, the honest
        // equivalents are: free = memory the machine has available, max = the
        // machine's memory (nothing smaller caps us), total = our resident set.
        (
            "os.memory.free".to_string(),
            megabytes(meminfo_kb("MemAvailable:")),
        ),
        (
            "os.memory.max".to_string(),
            megabytes(meminfo_kb("MemTotal:")),
        ),
        ("os.memory.total".to_string(), megabytes(resident_kb())),
        ("process.id".to_string(), std::process::id().to_string()),
    ]
}

fn megabytes(kb: Option<u64>) -> String {
    kb.map(|kb| format!("{}MB", kb / 1024))
        .unwrap_or_else(|| "<NA>".to_string())
}

/// A `/proc/meminfo` field in kB.
fn meminfo_kb(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// This process's resident set in kB.
fn resident_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|line| line.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Java's `Double.toString` for the values printed here: the shortest
/// representation that reads back the same, always with a fractional part,
/// and computerized scientific notation (`1.0E7`, `5.0E-4`) outside
/// [10^-3, 10^7).
pub fn java_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_string();
    }
    let magnitude = value.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let text = format!("{value}");
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    // Rust's `{:e}` gives `1e7` / `5e-4` / `1.5e-5`; Java wants `1.0E7`.
    let text = format!("{value:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// Java's `InetSocketAddress.toString` for an address without a host name:
/// `/127.0.0.1:2181`, `/[0:0:0:0:0:0:0:1]:2181`. IPv4-mapped IPv6 addresses
/// print as IPv4, as Java converts them.
pub fn java_socket_addr(address: &SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) => format!("/{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => {
            if let Some(v4) = v6.ip().to_ipv4_mapped() {
                return format!("/{}:{}", v4, v6.port());
            }
            let groups: Vec<String> = v6
                .ip()
                .segments()
                .iter()
                .map(|g| format!("{g:x}"))
                .collect();
            let scope = if v6.scope_id() != 0 {
                format!("%{}", v6.scope_id())
            } else {
                String::new()
            };
            format!("/[{}{}]:{}", groups.join(":"), scope, v6.port())
        }
    }
}

/// Java's `IpAddr` text as the reference prints it (`0:0:0:0:0:0:0:1`).
pub fn java_ip(address: &IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|g| format!("{g:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

/// Java's `Date.toString` in UTC: `Sat Nov 21 20:29:02 UTC 2026`.
pub fn java_date_utc(unix_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = unix_ms / 1000;
    let days = seconds / 86_400;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("???");
    let month_name = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("???");
    format!(
        "{weekday} {month_name} {day:02} {:02}:{:02}:{:02} UTC {year}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (Howard Hinnant's algorithm, unsigned since dates are >= 1970).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{LatencySnapshot, SummarySnapshot};
    use std::cell::Cell;
    use std::net::{Ipv6Addr, SocketAddrV6};

    const VERSION: &str = "3.8.0-test, built on 2024-12-29 17:54 UTC";

    /// A fixed server: two sessions, three connections, a few watches.
    struct Fake {
        serving: bool,
        read_only: bool,
        leader: bool,
        default_environment: bool,
        digests: Vec<(i64, i64)>,
        connection_resets: Cell<u32>,
        server_resets: Cell<u32>,
        trace_mask: Cell<i64>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                serving: true,
                read_only: false,
                leader: false,
                default_environment: false,
                digests: Vec::new(),
                connection_resets: Cell::new(0),
                server_resets: Cell::new(0),
                trace_mask: Cell::new(DEFAULT_TRACE_MASK),
            }
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    impl FourLetterSource for Fake {
        fn version(&self) -> String {
            VERSION.to_string()
        }
        fn is_serving(&self) -> bool {
            self.serving
        }
        fn is_read_only(&self) -> bool {
            self.read_only
        }
        fn server(&self) -> ServerSnapshot {
            let mut extra_metrics = Vec::new();
            if self.leader {
                extra_metrics.push(("synced_followers".to_string(), "2".to_string()));
            }
            ServerSnapshot {
                mode: if self.leader { "leader" } else { "standalone" }.to_string(),
                last_zxid: 5,
                node_count: 8,
                watch_count: 5,
                ephemerals_count: 2,
                approximate_data_size: 54,
                global_sessions: 2,
                local_sessions: 0,
                data_dir_size: 457,
                log_dir_size: 458,
                open_file_descriptors: Some(41),
                max_file_descriptors: None,
                uptime_ms: 20297,
                stats: ServerStatsSnapshot {
                    packets_received: 29,
                    packets_sent: 30,
                    bytes_received: 24,
                    outstanding_requests: 0,
                    alive_connections: 3,
                    connections_rejected: 0,
                    auth_failed: 0,
                    latency: LatencySnapshot {
                        count: 3,
                        total: 4,
                        min: 0,
                        max: 8,
                    },
                    read_latency: SummarySnapshot {
                        latency: LatencySnapshot {
                            count: 2,
                            total: 3,
                            min: 1,
                            max: 2,
                        },
                        p50: 1,
                        p95: 2,
                        p99: 2,
                        p999: 2,
                    },
                    update_latency: SummarySnapshot::default(),
                    snapshot_time: LatencySnapshot {
                        count: 2,
                        total: 30,
                        min: 12,
                        max: 18,
                    },
                    last_response_size: 88,
                    min_response_size: 16,
                    max_response_size: 89,
                },
                proposal_sizes: self.leader.then_some((36, 32, 120)),
                extra_metrics,
            }
        }
        fn config(&self) -> Vec<(String, String)> {
            vec![
                ("clientPort".to_string(), "2181".to_string()),
                ("tickTime".to_string(), "2000".to_string()),
            ]
        }
        fn connections(&self) -> Vec<ConnectionSnapshot> {
            vec![
                ConnectionSnapshot {
                    remote: addr("127.0.0.1:36542"),
                    interest_ops: 1,
                    queued: 0,
                    session_id: 0x10000052d6d0001,
                    session_timeout_ms: 30000,
                    stats: ConnectionStatsSnapshot {
                        established_ms: 1795292932096,
                        packets_received: 4,
                        packets_sent: 4,
                        latency: LatencySnapshot {
                            count: 3,
                            total: 1,
                            min: 0,
                            max: 1,
                        },
                        last_op: "GETD",
                        last_cxid: 3,
                        last_zxid: 5,
                        last_response_ms: 359539,
                        last_latency_ms: 0,
                    },
                },
                ConnectionSnapshot {
                    remote: addr("127.0.0.1:36556"),
                    interest_ops: 0,
                    queued: 0,
                    session_id: 0,
                    session_timeout_ms: 0,
                    stats: ConnectionStatsSnapshot {
                        packets_received: 1,
                        ..ConnectionStatsSnapshot::default()
                    },
                },
                ConnectionSnapshot {
                    remote: addr("[::1]:40000"),
                    interest_ops: 5,
                    queued: 2,
                    session_id: 0x10000052d6d0000,
                    session_timeout_ms: 10000,
                    stats: ConnectionStatsSnapshot {
                        established_ms: 1795292932082,
                        packets_received: 11,
                        packets_sent: 11,
                        latency: LatencySnapshot {
                            count: 11,
                            total: 16,
                            min: 0,
                            max: 8,
                        },
                        last_op: "NA",
                        last_cxid: -1,
                        last_zxid: -1,
                        last_response_ms: 0,
                        last_latency_ms: 0,
                    },
                },
            ]
        }
        fn dump(&self) -> DumpSnapshot {
            DumpSnapshot {
                session_expiry: vec![
                    ExpiryBucket {
                        expires_at_ms: 1_795_292_962_000,
                        members: vec![0x10000052d6d0001],
                    },
                    ExpiryBucket {
                        expires_at_ms: 1_795_292_942_000,
                        members: vec![0x10000052d6d0000],
                    },
                ],
                ephemerals: vec![(
                    0x10000052d6d0000,
                    vec!["/e1".to_string(), "/e2".to_string()],
                )],
                connection_expiry: vec![
                    ExpiryBucket {
                        expires_at_ms: 1_795_292_932_000,
                        members: vec![],
                    },
                    ExpiryBucket {
                        expires_at_ms: 1_795_292_942_000,
                        members: vec![
                            (addr("127.0.0.1:36558"), 0),
                            (addr("127.0.0.1:36540"), 0x10000052d6d0000),
                        ],
                    },
                ],
            }
        }
        fn watches_by_session(&self) -> Vec<(i64, Vec<String>)> {
            vec![
                (
                    0x10000052d6d0001,
                    vec!["/p".to_string(), "/e1".to_string(), "/nope".to_string()],
                ),
                (0x10000052d6d0000, vec!["/p".to_string()]),
            ]
        }
        fn watches_by_path(&self) -> Vec<(String, Vec<i64>)> {
            vec![
                ("/p".to_string(), vec![0x10000052d6d0000, 0x10000052d6d0001]),
                ("/e1".to_string(), vec![0x10000052d6d0001]),
            ]
        }
        fn watch_summary(&self) -> WatchSummary {
            WatchSummary {
                connections: 2,
                paths: 3,
                watches: 4,
            }
        }
        fn reset_connection_stats(&self) {
            self.connection_resets.set(self.connection_resets.get() + 1);
        }
        fn reset_server_stats(&self) {
            self.server_resets.set(self.server_resets.get() + 1);
        }
        fn environment(&self) -> Vec<(String, String)> {
            if self.default_environment {
                return default_environment(&self.version());
            }
            vec![
                ("zookeeper.version".to_string(), VERSION.to_string()),
                ("host.name".to_string(), "localhost".to_string()),
            ]
        }
        fn trace_mask(&self) -> i64 {
            self.trace_mask.get()
        }
        fn set_trace_mask(&self, mask: i64) {
            self.trace_mask.set(mask);
        }
        fn digest_log(&self) -> Vec<(i64, i64)> {
            self.digests.clone()
        }
    }

    #[track_caller]
    fn check(word: FourLetterWord, src: &Fake, expected: &str) {
        assert_eq!(
            render(word, &Whitelist::All, src),
            expected,
            "{}",
            word.name()
        );
    }

    #[test]
    fn codes_are_the_four_bytes_read_as_a_frame_length() {
        assert_eq!(
            command_from_code(i32::from_be_bytes(*b"ruok")),
            Some(FourLetterWord::Ruok)
        );
        assert_eq!(
            command_from_code(i32::from_be_bytes(*b"mntr")),
            Some(FourLetterWord::Mntr)
        );
        assert_eq!(command_from_code(0x7275_6f6b), Some(FourLetterWord::Ruok));
        assert_eq!(
            command_from_code(-720_899),
            Some(FourLetterWord::TelnetClose)
        );
        assert_eq!(command_from_code(i32::from_be_bytes(*b"RUOK")), None);
        assert_eq!(command_from_code(i32::from_be_bytes(*b"xyzw")), None);
        // Ordinary frame lengths are never words: every word's code is over 1 GiB
        // or negative.
        for length in [0, 1, 44, 1_048_575, 0x7fff_ffff] {
            assert_eq!(command_from_code(length), None);
        }
        for word in FourLetterWord::ALL {
            assert_eq!(command_from_code(word.code()), Some(word));
            assert_eq!(FourLetterWord::from_name(word.name()), Some(word));
        }
        assert_eq!(FourLetterWord::Stmk.argument_bytes(), 8);
        assert_eq!(FourLetterWord::Stat.argument_bytes(), 0);
    }

    #[test]
    fn whitelist_defaults_to_srvr_and_parses_like_the_reference() {
        let default = Whitelist::default();
        assert!(default.allows(FourLetterWord::Srvr));
        assert!(!default.allows(FourLetterWord::Ruok));
        assert!(!default.allows(FourLetterWord::Isro));

        let list = Whitelist::parse(" stat, ruok ,,conf,RUOK, bogus");
        for word in [
            FourLetterWord::Stat,
            FourLetterWord::Ruok,
            FourLetterWord::Conf,
        ] {
            assert!(list.allows(word), "{}", word.name());
        }
        assert!(list.allows(FourLetterWord::Srvr), "srvr is always enabled");
        assert!(!list.allows(FourLetterWord::Mntr));
        assert_eq!(
            Whitelist::unknown_words(" stat, ruok ,,conf,RUOK, bogus"),
            ["RUOK", "bogus"]
        );

        assert_eq!(Whitelist::parse("ruok, *"), Whitelist::All);
        assert_eq!(Whitelist::parse("*"), Whitelist::All);
        assert!(Whitelist::All.allows(FourLetterWord::TelnetClose));
        assert_eq!(Whitelist::parse(""), Whitelist::reference_default());
        assert!(Whitelist::unknown_words("ruok, *, bogus").is_empty());

        let mut read_only = Whitelist::default();
        read_only.allow(FourLetterWord::Isro);
        assert!(read_only.allows(FourLetterWord::Isro));
    }

    #[test]
    fn words_off_the_whitelist_are_refused_and_run_nothing() {
        let src = Fake::new();
        let whitelist = Whitelist::reference_default();
        assert_eq!(
            render(FourLetterWord::Ruok, &whitelist, &src),
            "ruok is not executed because it is not in the whitelist.\n"
        );
        assert_eq!(
            render(FourLetterWord::TelnetClose, &whitelist, &src),
            "telnet close is not executed because it is not in the whitelist.\n"
        );
        assert_eq!(
            render(FourLetterWord::Srst, &whitelist, &src),
            "srst is not executed because it is not in the whitelist.\n"
        );
        assert_eq!(src.server_resets.get(), 0);
        assert_eq!(
            render_set_trace_mask(7, &whitelist, &src),
            "stmk is not executed because it is not in the whitelist.\n"
        );
        assert_eq!(src.trace_mask.get(), DEFAULT_TRACE_MASK);
        assert!(render(FourLetterWord::Srvr, &whitelist, &src).starts_with("Zookeeper version: "));
    }

    #[test]
    fn ruok_isro_gtmk_stmk_and_telnet_close() {
        let src = Fake::new();
        check(FourLetterWord::Ruok, &src, "imok");
        check(FourLetterWord::Isro, &src, "rw");
        check(FourLetterWord::Gtmk, &src, "306");
        check(FourLetterWord::Stmk, &src, "");
        check(FourLetterWord::TelnetClose, &src, "");
        assert_eq!(render_set_trace_mask(1234, &Whitelist::All, &src), "1234");
        check(FourLetterWord::Gtmk, &src, "1234");
        let read_only = Fake {
            read_only: true,
            ..Fake::new()
        };
        check(FourLetterWord::Isro, &read_only, "ro");
    }

    #[test]
    fn srvr_shape() {
        check(
            FourLetterWord::Srvr,
            &Fake::new(),
            "Zookeeper version: 3.8.0-test, built on 2024-12-29 17:54 UTC\n\
             Latency min/avg/max: 0/1.3333/8\n\
             Received: 29\n\
             Sent: 30\n\
             Connections: 3\n\
             Outstanding: 0\n\
             Zxid: 0x5\n\
             Mode: standalone\n\
             Node count: 8\n",
        );
    }

    #[test]
    fn stat_shape_lists_clients_briefly() {
        check(
            FourLetterWord::Stat,
            &Fake {
                read_only: true,
                ..Fake::new()
            },
            "Zookeeper version: 3.8.0-test, built on 2024-12-29 17:54 UTC\n\
             READ-ONLY mode; serving only read-only clients\n\
             Clients:\n \
             /127.0.0.1:36542[1](queued=0,recved=4,sent=4)\n \
             /127.0.0.1:36556[0](queued=0,recved=1,sent=0)\n \
             /[0:0:0:0:0:0:0:1]:40000[5](queued=2,recved=11,sent=11)\n\
             \n\
             Latency min/avg/max: 0/1.3333/8\n\
             Received: 29\n\
             Sent: 30\n\
             Connections: 3\n\
             Outstanding: 0\n\
             Zxid: 0x5\n\
             Mode: standalone\n\
             Node count: 8\n",
        );
    }

    #[test]
    fn cons_shape_has_session_details_only_after_the_handshake() {
        check(
            FourLetterWord::Cons,
            &Fake::new(),
            " /127.0.0.1:36542[1](queued=0,recved=4,sent=4,sid=0x10000052d6d0001,lop=GETD,\
             est=1795292932096,to=30000,lcxid=0x3,lzxid=0x5,lresp=359539,llat=0,minlat=0,\
             avglat=0,maxlat=1)\n \
             /127.0.0.1:36556[0](queued=0,recved=1,sent=0)\n \
             /[0:0:0:0:0:0:0:1]:40000[5](queued=2,recved=11,sent=11,sid=0x10000052d6d0000,\
             lop=NA,est=1795292932082,to=10000,lzxid=0xffffffffffffffff,lresp=0,llat=0,\
             minlat=0,avglat=1,maxlat=8)\n\
             \n",
        );
    }

    #[test]
    fn crst_and_srst_reset_through_the_source() {
        let src = Fake::new();
        check(FourLetterWord::Crst, &src, "Connection stats reset.\n");
        check(FourLetterWord::Srst, &src, "Server stats reset.\n");
        assert_eq!(
            (src.connection_resets.get(), src.server_resets.get()),
            (1, 1)
        );
    }

    #[test]
    fn conf_dirs_and_envi_shapes() {
        let src = Fake::new();
        check(
            FourLetterWord::Conf,
            &src,
            "clientPort=2181\ntickTime=2000\n",
        );
        check(
            FourLetterWord::Dirs,
            &src,
            "datadir_size: 457\nlogdir_size: 458\n",
        );
        check(
            FourLetterWord::Envi,
            &src,
            "Environment:\nzookeeper.version=3.8.0-test, built on 2024-12-29 17:54 UTC\n\
             host.name=localhost\n",
        );
    }

    #[test]
    fn dump_shape_sorts_buckets_by_expiry() {
        check(
            FourLetterWord::Dump,
            &Fake::new(),
            "SessionTracker dump:\n\
             Session Sets (2)/(2):\n\
             1 expire at Sat Nov 21 20:29:02 UTC 2026:\n\
             \t0x10000052d6d0000\n\
             1 expire at Sat Nov 21 20:29:22 UTC 2026:\n\
             \t0x10000052d6d0001\n\
             ephemeral nodes dump:\n\
             Sessions with Ephemerals (1):\n\
             0x10000052d6d0000:\n\
             \t/e1\n\
             \t/e2\n\
             Connections dump:\n\
             Connections Sets (2)/(2):\n\
             0 expire at Sat Nov 21 20:28:52 UTC 2026:\n\
             2 expire at Sat Nov 21 20:29:02 UTC 2026:\n\
             \tip: /127.0.0.1:36558 sessionId: 0x0\n\
             \tip: /127.0.0.1:36540 sessionId: 0x10000052d6d0000\n",
        );
    }

    #[test]
    fn watch_word_shapes() {
        let src = Fake::new();
        check(
            FourLetterWord::Wchs,
            &src,
            "2 connections watching 3 paths\nTotal watches:4\n",
        );
        check(
            FourLetterWord::Wchc,
            &src,
            "0x10000052d6d0001\n\t/p\n\t/e1\n\t/nope\n0x10000052d6d0000\n\t/p\n\n",
        );
        check(
            FourLetterWord::Wchp,
            &src,
            "/p\n\t0x10000052d6d0000\n\t0x10000052d6d0001\n/e1\n\t0x10000052d6d0001\n\n",
        );
    }

    #[test]
    fn mntr_shape_is_tab_separated_and_starts_like_the_reference() {
        let text = render(FourLetterWord::Mntr, &Whitelist::All, &Fake::new());
        let lines: Vec<(&str, &str)> = text
            .lines()
            .map(|line| {
                line.split_once('\t')
                    .expect("every mntr line is key<TAB>value")
            })
            .collect();
        assert!(text.ends_with('\n'));
        assert!(lines.iter().all(|(key, _)| key.starts_with("zk_")));
        assert_eq!(
            lines[..6],
            [
                ("zk_version", VERSION),
                ("zk_server_state", "standalone"),
                ("zk_ephemerals_count", "2"),
                ("zk_num_alive_connections", "3"),
                ("zk_avg_latency", "1.3333"),
                ("zk_outstanding_requests", "0"),
            ]
        );
        let value = |key: &str| {
            lines
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .unwrap_or("<missing>")
        };
        assert_eq!(value("zk_znode_count"), "8");
        assert_eq!(value("zk_watch_count"), "5");
        assert_eq!(value("zk_packets_received"), "29");
        assert_eq!(value("zk_packets_sent"), "30");
        assert_eq!(value("zk_min_latency"), "0");
        assert_eq!(value("zk_max_latency"), "8");
        assert_eq!(value("zk_approximate_data_size"), "54");
        assert_eq!(value("zk_open_file_descriptor_count"), "41");
        assert_eq!(value("zk_max_file_descriptor_count"), "-1");
        assert_eq!(value("zk_uptime"), "20297");
        assert_eq!(value("zk_global_sessions"), "2");
        assert_eq!(value("zk_last_client_response_size"), "88");
        assert_eq!(value("zk_connection_drop_probability"), "0.0");
        assert_eq!(value("zk_avg_readlatency"), "1.5");
        assert_eq!(value("zk_p99_readlatency"), "2");
        assert_eq!(value("zk_avg_updatelatency"), "0.0");
        assert_eq!(value("zk_cnt_updatelatency"), "0");
        assert_eq!(value("zk_bytes_received_count"), "24");
    }

    #[test]
    fn leader_adds_proposal_sizes_and_its_own_metrics() {
        let leader = Fake {
            leader: true,
            ..Fake::new()
        };
        let text = render(FourLetterWord::Srvr, &Whitelist::All, &leader);
        assert!(
            text.ends_with("Mode: leader\nNode count: 8\nProposal sizes last/min/max: 36/32/120\n")
        );
        let text = render(FourLetterWord::Mntr, &Whitelist::All, &leader);
        assert!(text.contains("zk_server_state\tleader\n"));
        assert!(text.ends_with("zk_synced_followers\t2\n"));
    }

    #[test]
    fn default_environment_describes_this_process() {
        let src = Fake {
            default_environment: true,
            ..Fake::new()
        };
        let envi = render(FourLetterWord::Envi, &Whitelist::All, &src);
        let mut lines = envi.lines();
        assert_eq!(lines.next(), Some("Environment:"));
        assert_eq!(
            lines.next(),
            Some(format!("zookeeper.version={VERSION}").as_str())
        );
        let pairs: Vec<(&str, &str)> = lines.filter_map(|line| line.split_once('=')).collect();
        let keys: Vec<&str> = pairs.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            [
                "host.name",
                "os.name",
                "os.arch",
                "os.version",
                "user.name",
                "user.home",
                "user.dir",
                "os.memory.free",
                "os.memory.max",
                "os.memory.total",
                "process.id"
            ]
        );
        assert!(pairs.iter().all(|(_, value)| !value.is_empty()));
        assert_eq!(envi.lines().count(), 13);
    }

    #[test]
    fn words_while_not_serving() {
        let src = Fake {
            serving: false,
            ..Fake::new()
        };
        for word in [
            FourLetterWord::Conf,
            FourLetterWord::Cons,
            FourLetterWord::Crst,
            FourLetterWord::Dirs,
            FourLetterWord::Dump,
            FourLetterWord::Srst,
            FourLetterWord::Srvr,
            FourLetterWord::Stat,
            FourLetterWord::Wchc,
            FourLetterWord::Wchp,
            FourLetterWord::Wchs,
            FourLetterWord::Mntr,
        ] {
            check(
                word,
                &src,
                "This ZooKeeper instance is not currently serving requests\n",
            );
        }
        assert_eq!(
            (src.connection_resets.get(), src.server_resets.get()),
            (0, 0)
        );
        check(FourLetterWord::Isro, &src, "null");
        check(FourLetterWord::Hash, &src, NOT_SERVING);
        check(FourLetterWord::Ruok, &src, "imok");
        assert!(render(FourLetterWord::Envi, &Whitelist::All, &src).starts_with("Environment:\n"));
    }

    #[test]
    fn hash_lists_the_digest_log() {
        check(FourLetterWord::Hash, &Fake::new(), "");
        let src = Fake {
            digests: vec![(0x100000001, 2_973_221_411), (0x100000002, -5)],
            ..Fake::new()
        };
        check(
            FourLetterWord::Hash,
            &src,
            "100000001: 2973221411\n100000002: -5\n",
        );
    }

    #[test]
    fn java_number_and_address_formats() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.3333), "1.3333");
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(1.5), "1.5");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0005), "5.0E-4");
        assert_eq!(java_double(0.00015), "1.5E-4");
        assert_eq!(java_double(9_999_999.5), "9999999.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12_345_678.0), "1.2345678E7");
        assert_eq!(java_double(f64::NAN), "NaN");

        assert_eq!(java_socket_addr(&addr("10.1.2.3:2181")), "/10.1.2.3:2181");
        assert_eq!(
            java_socket_addr(&addr("[::ffff:127.0.0.1]:5")),
            "/127.0.0.1:5"
        );
        assert_eq!(
            java_socket_addr(&addr("[fe80::1:0:ab]:7")),
            "/[fe80:0:0:0:0:1:0:ab]:7"
        );
        let scoped = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0, 3));
        assert_eq!(java_socket_addr(&scoped), "/[0:0:0:0:0:0:0:1%3]:9");
        assert_eq!(java_ip(&"::1".parse().expect("ip")), "0:0:0:0:0:0:0:1");
        assert_eq!(java_ip(&"127.0.0.1".parse().expect("ip")), "127.0.0.1");

        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            java_date_utc(951_782_400_000),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(
            java_date_utc(1_795_292_942_999),
            "Sat Nov 21 20:29:02 UTC 2026"
        );
        assert_eq!(
            java_date_utc(4_102_444_799_000),
            "Thu Dec 31 23:59:59 UTC 2099"
        );
        // Never panics, even at the end of time.
        let _ = java_date_utc(u64::MAX);
    }
}
