//! The AdminServer: Apache ZooKeeper's commands over HTTP (`GET
//! <commandURL>` lists them, `GET <commandURL>/<name>` runs one) with the
//! JSON shape of the reference 3.8's answers — the same field names, value
//! types and nesting, every answer ending in `command` (the primary name)
//! and `error` (`null`, or why the command did not run), answered 200 like
//! the reference, which also puts unknown commands in `error`.
//!
//! Not the data: every answer is built from the snapshots the four-letter
//! words use ([`FourLetterSource`]) plus the few facts only the HTTP
//! commands show ([`AdminSource`]). `monitor` is the `mntr` word's own
//! lines, typed, so the two never list different keys. Building an answer
//! is a pure function of those snapshots; nothing here panics. The
//! four-letter-word whitelist does not apply here (it does not in the
//! reference either); commands that need a running server answer the
//! reference's "not currently serving" error while starting or stopping.
//! Ensemble-only commands give the reference's standalone answers.

use super::json::{Json, Object};
use super::{Handler, Request, Response};
use net::fourlw::{render, FourLetterSource, FourLetterWord, Whitelist, NOT_SERVING};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The reference's digest version (`DigestCalculator.DIGEST_VERSION`), shown
/// beside every `hash` entry.
const DIGEST_VERSION: i64 = 2;

/// What the HTTP commands show beyond the four-letter words.
pub trait AdminSource: FourLetterSource + Send + Sync {
    /// `last_snapshot`: the newest snapshot's zxid and when it was written
    /// (Unix seconds), if there is one.
    fn last_snapshot(&self) -> Option<(i64, i64)>;
    /// `initial_configuration`: the configuration text the server started
    /// from.
    fn initial_configuration(&self) -> String;
    /// `system_properties`: the settings in effect, by name.
    fn system_properties(&self) -> Vec<(String, String)>;
    /// This source as the four-letter words see it (`self`; spelled out
    /// because the crate's minimum Rust has no trait upcasting).
    fn as_four_letter_source(&self) -> &dyn FourLetterSource;
    /// An ensemble member's view of its quorum (`leader`, `voting_view`,
    /// `zabstate`); `None` standalone.
    fn quorum(&self) -> Option<QuorumView> {
        None
    }
}

/// What the quorum commands show of an ensemble member.
#[derive(Clone, Debug, Default)]
pub struct QuorumView {
    pub my_id: u64,
    pub is_leader: bool,
    /// -1 while there is none.
    pub leader_id: i64,
    /// The leader's `host:quorumPort:electionPort`, or "".
    pub leader_ip: String,
    pub voting: bool,
    /// Apache's ZabState in lower case: `election`, `discovery`,
    /// `synchronization` or `broadcast`.
    pub zab_state: &'static str,
    /// Every voter: its id and its `server.N` value.
    pub voting_members: Vec<(u64, String)>,
    pub quorum_address: String,
    pub election_address: String,
    pub client_address: String,
    pub last_zxid: i64,
}

/// Every command: its primary name, its other names, and whether it needs a
/// serving server (the reference's `serverRequired`).
const COMMANDS: &[(&str, &[&str], bool)] = &[
    ("configuration", &["conf", "config"], true),
    ("connection_stat_reset", &["crst"], true),
    ("connections", &["cons"], true),
    ("dirs", &[], true),
    ("dump", &[], true),
    ("environment", &["env", "envi"], false),
    ("get_trace_mask", &["gtmk"], false),
    ("hash", &[], true),
    ("initial_configuration", &["icfg"], true),
    ("is_read_only", &["isro"], true),
    ("last_snapshot", &["lsnp"], true),
    ("leader", &["lead"], true),
    ("monitor", &["mntr"], false),
    ("observer_connection_stat_reset", &["orst"], true),
    ("observers", &["obsr"], true),
    ("ruok", &[], true),
    ("server_stats", &["srvr"], true),
    ("set_trace_mask", &["stmk"], false),
    ("stat_reset", &["srst"], true),
    ("stats", &["stat"], true),
    ("system_properties", &["sysp"], false),
    ("voting_view", &[], true),
    ("watch_summary", &["wchs"], true),
    ("watches", &["wchc"], true),
    ("watches_by_path", &["wchp"], true),
    ("zabstate", &[], false),
];

/// The primary name of `name` (itself or an alias) and whether the command
/// needs a serving server.
fn lookup(name: &str) -> Option<(&'static str, bool)> {
    COMMANDS
        .iter()
        .find(|(primary, aliases, _)| *primary == name || aliases.contains(&name))
        .map(|(primary, _, needs_server)| (*primary, *needs_server))
}

/// The primary names, sorted, as the listing shows them.
pub fn primary_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = COMMANDS.iter().map(|(primary, _, _)| *primary).collect();
    names.sort_unstable();
    names
}

/// The HTTP handler: routes `<commandURL>[/<name>]`.
pub struct AdminServer {
    source: Arc<dyn AdminSource>,
    /// `admin.commandURL` without a trailing `/`.
    command_url: String,
}

impl AdminServer {
    pub fn new(source: Arc<dyn AdminSource>, command_url: &str) -> AdminServer {
        AdminServer {
            source,
            command_url: command_url.trim_end_matches('/').to_string(),
        }
    }

    /// `GET <commandURL>`: a link per command, as the reference lists them.
    fn listing(&self) -> String {
        let mut out = String::new();
        for name in primary_names() {
            out.push_str(&format!(
                "<a href=\"{}/{name}\">{name}</a>\n<br/>\n",
                self.command_url
            ));
        }
        out
    }
}

impl Handler for AdminServer {
    fn handle(&self, request: &Request) -> Response {
        let Some(rest) = request.path.strip_prefix(&self.command_url) else {
            return Response::error(404);
        };
        if rest.is_empty() || rest == "/" {
            return Response::ok("text/html; charset=utf-8", self.listing());
        }
        let Some(name) = rest.strip_prefix('/') else {
            // `/commandsx`: not under the command URL.
            return Response::error(404);
        };
        let answer = run(name, request, self.source.as_ref());
        Response::ok("application/json", answer.to_pretty())
    }
}

/// Runs command `name` (any of its names) with the request's parameters.
pub fn run(name: &str, request: &Request, source: &dyn AdminSource) -> Json {
    let Some((primary, needs_server)) = lookup(name) else {
        return answer(
            name,
            Object::new(),
            Some(format!("Unknown command: {name}")),
        );
    };
    if needs_server && !source.is_serving() {
        return answer(name, Object::new(), Some(NOT_SERVING.to_string()));
    }
    let mut data = Object::new();
    match primary {
        "configuration" => configuration(&mut data, source),
        "connection_stat_reset" => source.reset_connection_stats(),
        "connections" => {
            data.put("connections", connections(source, false));
            data.put("secure_connections", Vec::<Json>::new());
        }
        "dirs" => {
            let server = source.server();
            data.put("datadir_size", server.data_dir_size);
            data.put("logdir_size", server.log_dir_size);
        }
        "dump" => dump(&mut data, source),
        "environment" => {
            for (key, value) in source.environment() {
                data.put(key, value);
            }
        }
        "get_trace_mask" => data.put("tracemask", source.trace_mask()),
        "hash" => {
            let digests: Vec<Json> = source
                .digest_log()
                .into_iter()
                .map(|(zxid, digest)| {
                    let mut entry = Object::new();
                    entry.put("zxid", zxid);
                    entry.put("digest_version", DIGEST_VERSION);
                    entry.put("digest", digest);
                    Json::Object(entry)
                })
                .collect();
            data.put("digests", digests);
        }
        "initial_configuration" => {
            data.put("initial_configuration", source.initial_configuration())
        }
        "is_read_only" => data.put("read_only", source.is_read_only()),
        "last_snapshot" => {
            let (zxid, timestamp) = source.last_snapshot().unwrap_or((-1, -1));
            // Java's Long.toHexString: two's complement, no padding.
            data.put("zxid", format!("{:x}", zxid as u64));
            data.put("timestamp", timestamp);
        }
        "leader" => match source.quorum() {
            Some(quorum) => {
                data.put("is_leader", quorum.is_leader);
                data.put("leader_id", quorum.leader_id);
                data.put("leader_ip", quorum.leader_ip);
            }
            // Standalone: the reference has no quorum peer to ask.
            None => data.put("error", "server is not initialized"),
        },
        "monitor" => {
            if !source.is_serving() {
                return answer(primary, data, Some(NOT_SERVING.to_string()));
            }
            monitor(&mut data, source);
        }
        "observer_connection_stat_reset" => {}
        "observers" => {
            data.put("synced_observers", 0i64);
            data.put("observers", Vec::<Json>::new());
        }
        "ruok" => {}
        "server_stats" => server_stats(&mut data, source),
        "set_trace_mask" => match request.param("traceMask") {
            None => data.put("error", "setTraceMask requires long traceMask argument"),
            Some(text) => match text.parse::<i64>() {
                Ok(mask) => {
                    source.set_trace_mask(mask);
                    data.put("tracemask", mask);
                }
                Err(_) => data.put(
                    "error",
                    format!("setTraceMask requires long traceMask argument, got {text}"),
                ),
            },
        },
        "stat_reset" => source.reset_server_stats(),
        "stats" => {
            server_stats(&mut data, source);
            data.put("connections", connections(source, true));
            data.put("secure_connections", Vec::<Json>::new());
        }
        "system_properties" => {
            let sorted: BTreeMap<String, String> = source.system_properties().into_iter().collect();
            for (key, value) in sorted {
                data.put(key, value);
            }
        }
        "voting_view" => {
            let mut members = Object::new();
            for (id, server) in source
                .quorum()
                .map(|q| q.voting_members)
                .unwrap_or_default()
            {
                members.put(id.to_string(), server);
            }
            data.put("current_config", members);
        }
        "watch_summary" => {
            let summary = source.watch_summary();
            data.put("num_connections", summary.connections);
            data.put("num_paths", summary.paths);
            data.put("num_total_watches", summary.watches);
        }
        "watches" => {
            let mut by_session: BTreeMap<i64, Vec<String>> = BTreeMap::new();
            for (session, paths) in source.watches_by_session() {
                by_session.entry(session).or_default().extend(paths);
            }
            data.put("session_id_to_watched_paths", keyed(by_session));
        }
        "watches_by_path" => {
            let by_path: BTreeMap<String, Vec<i64>> =
                source.watches_by_path().into_iter().collect();
            data.put("path_to_session_ids", keyed(by_path));
        }
        "zabstate" => match source.quorum() {
            Some(quorum) => {
                data.put("myid", quorum.my_id as i64);
                data.put("is_leader", quorum.is_leader);
                data.put("quorum_address", quorum.quorum_address);
                data.put("election_address", quorum.election_address);
                data.put("client_address", quorum.client_address);
                data.put("voting", quorum.voting);
                data.put("last_zxid", format!("0x{:x}", quorum.last_zxid as u64));
                data.put("zab_epoch", quorum.last_zxid >> 32);
                data.put("zab_counter", quorum.last_zxid & 0xffff_ffff);
                data.put("zabstate", quorum.zab_state);
            }
            None => {
                data.put("voting", false);
                data.put("zabstate", "");
            }
        },
        _ => {}
    }
    answer(primary, data, None)
}

/// The reference's `CommandResponse.toMap`: the data's keys, then `command`
/// and `error` unless the data already holds them (`leader` in standalone
/// puts its own `error` first).
fn answer(command: &str, data: Object, error: Option<String>) -> Json {
    let mut out = data.clone();
    if out.get("command").is_none() {
        out.put("command", command);
    }
    if out.get("error").is_none() {
        out.put("error", error);
    }
    Json::Object(out)
}

/// A JSON object whose keys are `map`'s keys as text.
fn keyed<K: ToString, V: Into<Json>>(map: BTreeMap<K, V>) -> Object {
    let mut object = Object::new();
    for (key, value) in map {
        object.put(key.to_string(), value);
    }
    object
}

/// `configuration`: the reference's standalone `ZooKeeperServerConf` fields,
/// from the `conf` word's lines.
fn configuration(data: &mut Object, source: &dyn AdminSource) {
    const FIELDS: &[(&str, &str, bool)] = &[
        ("clientPort", "client_port", true),
        ("dataDir", "data_dir", false),
        ("dataLogDir", "data_log_dir", false),
        ("tickTime", "tick_time", true),
        ("maxClientCnxns", "max_client_cnxns", true),
        ("minSessionTimeout", "min_session_timeout", true),
        ("maxSessionTimeout", "max_session_timeout", true),
        ("serverId", "server_id", true),
        (
            "clientPortListenBacklog",
            "client_port_listen_backlog",
            true,
        ),
    ];
    let lines = source.config();
    for (word_key, json_key, numeric) in FIELDS {
        let Some((_, value)) = lines.iter().find(|(key, _)| key == word_key) else {
            continue;
        };
        let value = match value.parse::<i64>() {
            Ok(number) if *numeric => Json::Int(number),
            _ => Json::Str(value.clone()),
        };
        data.put(*json_key, value);
    }
}

/// One entry per connection; `brief` (as `stats` lists them) stops after the
/// packet counts.
fn connections(source: &dyn AdminSource, brief: bool) -> Vec<Json> {
    source
        .connections()
        .into_iter()
        .map(|connection| {
            let stats = &connection.stats;
            let mut info = Object::new();
            info.put(
                "remote_socket_address",
                format!("{}:{}", connection.remote.ip(), connection.remote.port()),
            );
            info.put("interest_ops", connection.interest_ops);
            info.put("outstanding_requests", connection.queued);
            info.put("packets_received", stats.packets_received);
            info.put("packets_sent", stats.packets_sent);
            if !brief {
                info.put("session_id", connection.session_id);
                info.put("last_operation", stats.last_op);
                info.put("established", stats.established_ms);
                info.put("session_timeout", connection.session_timeout_ms);
                info.put("last_cxid", stats.last_cxid);
                info.put("last_zxid", stats.last_zxid);
                info.put("last_response_time", stats.last_response_ms);
                info.put("last_latency", stats.last_latency_ms);
                info.put("min_latency", stats.latency.min);
                info.put("avg_latency", stats.latency.avg_truncated());
                info.put("max_latency", stats.latency.max);
            }
            Json::Object(info)
        })
        .collect()
}

fn dump(data: &mut Object, source: &dyn AdminSource) {
    let dump = source.dump();
    let mut expiry: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for bucket in dump.session_expiry {
        expiry
            .entry(bucket.expires_at_ms)
            .or_default()
            .extend(bucket.members);
    }
    data.put("expiry_time_to_session_ids", keyed(expiry));
    let ephemerals: BTreeMap<i64, Vec<String>> = dump.ephemerals.into_iter().collect();
    data.put("session_id_to_ephemeral_paths", keyed(ephemerals));
}

/// `server_stats` (and the first part of `stats`).
fn server_stats(data: &mut Object, source: &dyn AdminSource) {
    let server = source.server();
    let stats = &server.stats;
    let buffer_stats = |last: i64, min: i64, max: i64| {
        let mut object = Object::new();
        object.put("last_buffer_size", last);
        object.put("min_buffer_size", min);
        object.put("max_buffer_size", max);
        object
    };
    let client_response = buffer_stats(
        stats.last_response_size,
        stats.min_response_size,
        stats.max_response_size,
    );
    let mut server_stats = Object::new();
    server_stats.put("packets_sent", stats.packets_sent);
    server_stats.put("packets_received", stats.packets_received);
    server_stats.put("fsync_threshold_exceed_count", 0i64);
    server_stats.put("client_response_stats", client_response.clone());
    server_stats.put("data_dir_size", server.data_dir_size);
    server_stats.put("log_dir_size", server.log_dir_size);
    server_stats.put("provider_null", false);
    server_stats.put("server_state", server.mode.as_str());
    server_stats.put("last_processed_zxid", server.last_zxid);
    server_stats.put("outstanding_requests", stats.outstanding_requests);
    server_stats.put("avg_latency", stats.latency.avg());
    server_stats.put("max_latency", stats.latency.max);
    server_stats.put("min_latency", stats.latency.min);
    server_stats.put("num_alive_client_connections", stats.alive_connections);
    server_stats.put("uptime", server.uptime_ms);
    server_stats.put("auth_failed_count", stats.auth_failed);
    server_stats.put("non_mtlsremote_conn_count", 0i64);
    server_stats.put("non_mtlslocal_conn_count", 0i64);

    data.put("version", source.version());
    data.put("read_only", source.is_read_only());
    data.put("server_stats", server_stats);
    data.put("client_response", client_response);
    if let Some((last, min, max)) = server.proposal_sizes {
        data.put("proposal_stats", buffer_stats(last, min, max));
    }
    data.put("node_count", server.node_count);
}

/// `monitor`: the `mntr` word's `zk_<key>\t<value>` lines as fields without
/// the prefix; whole numbers are integers, decimals floats (Java prints
/// every double with a point), the rest strings.
fn monitor(data: &mut Object, source: &dyn AdminSource) {
    let text = render(
        FourLetterWord::Mntr,
        &Whitelist::All,
        source.as_four_letter_source(),
    );
    for line in text.lines() {
        let Some((key, value)) = line.split_once('\t') else {
            continue;
        };
        let key = key.strip_prefix("zk_").unwrap_or(key);
        let value = if let Ok(number) = value.parse::<i64>() {
            Json::Int(number)
        } else if let Ok(number) = value.parse::<f64>() {
            Json::Float(number)
        } else {
            Json::Str(value.to_string())
        };
        data.put(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use net::fourlw::{
        ConnectionSnapshot, DumpSnapshot, ExpiryBucket, ServerSnapshot, WatchSummary,
    };
    use net::stats::ConnectionStats;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

    /// A fixed standalone server: one session with an ephemeral and two
    /// watches, one more connection without a session.
    struct Fake {
        serving: AtomicBool,
        trace_mask: AtomicI64,
        resets: AtomicU32,
        quorum: Option<QuorumView>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                serving: AtomicBool::new(true),
                trace_mask: AtomicI64::new(net::fourlw::DEFAULT_TRACE_MASK),
                resets: AtomicU32::new(0),
                quorum: None,
            }
        }
    }

    const SESSION: i64 = 0x0100_0000_0000_0001;

    impl FourLetterSource for Fake {
        fn version(&self) -> String {
            "3.8.0-test, built on unknown".to_string()
        }
        fn is_serving(&self) -> bool {
            self.serving.load(Ordering::Relaxed)
        }
        fn is_read_only(&self) -> bool {
            false
        }
        fn server(&self) -> ServerSnapshot {
            let mut server = ServerSnapshot {
                mode: "standalone".to_string(),
                last_zxid: 4,
                node_count: 8,
                uptime_ms: 1234,
                ..ServerSnapshot::default()
            };
            server.stats.latency.count = 10;
            server.stats.latency.total = 21;
            server.stats.last_response_size = -1;
            server.stats.min_response_size = -1;
            server.stats.max_response_size = -1;
            server
        }
        fn config(&self) -> Vec<(String, String)> {
            [
                ("clientPort", "2181"),
                ("secureClientPort", "-1"),
                ("dataDir", "/data"),
                ("dataDirSize", "457"),
                ("dataLogDir", "/data"),
                ("dataLogSize", "457"),
                ("tickTime", "2000"),
                ("maxClientCnxns", "60"),
                ("minSessionTimeout", "4000"),
                ("maxSessionTimeout", "40000"),
                ("clientPortListenBacklog", "-1"),
                ("serverId", "0"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        }
        fn connections(&self) -> Vec<ConnectionSnapshot> {
            let stats = ConnectionStats::established_at(1_796_287_140_480);
            stats.record_response(Some(engine::types::OpCode::GetChildren2), 1, 9, 4, 5000);
            vec![ConnectionSnapshot {
                remote: "127.0.0.1:36384".parse().expect("address"),
                interest_ops: 1,
                queued: 0,
                session_id: SESSION,
                session_timeout_ms: 10_000,
                stats: stats.snapshot(),
            }]
        }
        fn dump(&self) -> DumpSnapshot {
            DumpSnapshot {
                session_expiry: vec![ExpiryBucket {
                    expires_at_ms: 4_716_000,
                    members: vec![SESSION],
                }],
                ephemerals: vec![(SESSION, vec!["/eph".to_string()])],
                connection_expiry: Vec::new(),
            }
        }
        fn watches_by_session(&self) -> Vec<(i64, Vec<String>)> {
            vec![
                (SESSION, vec!["/a".to_string()]),
                (SESSION, vec!["/nope".to_string()]),
            ]
        }
        fn watches_by_path(&self) -> Vec<(String, Vec<i64>)> {
            vec![("/a".to_string(), vec![SESSION])]
        }
        fn watch_summary(&self) -> WatchSummary {
            WatchSummary {
                connections: 1,
                paths: 2,
                watches: 2,
            }
        }
        fn reset_connection_stats(&self) {
            self.resets.fetch_add(1, Ordering::Relaxed);
        }
        fn reset_server_stats(&self) {
            self.resets.fetch_add(10, Ordering::Relaxed);
        }
        fn trace_mask(&self) -> i64 {
            self.trace_mask.load(Ordering::Relaxed)
        }
        fn set_trace_mask(&self, mask: i64) {
            self.trace_mask.store(mask, Ordering::Relaxed);
        }
        fn digest_log(&self) -> Vec<(i64, i64)> {
            vec![(4, 1_234_567)]
        }
    }

    impl AdminSource for Fake {
        fn last_snapshot(&self) -> Option<(i64, i64)> {
            None
        }
        fn initial_configuration(&self) -> String {
            "tickTime=2000\n".to_string()
        }
        fn system_properties(&self) -> Vec<(String, String)> {
            vec![
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ]
        }
        fn as_four_letter_source(&self) -> &dyn FourLetterSource {
            self
        }
        fn quorum(&self) -> Option<QuorumView> {
            self.quorum.clone()
        }
    }

    #[test]
    fn quorum_commands_answer_an_ensemble_members_view() {
        let mut fake = Fake::new();
        fake.quorum = Some(QuorumView {
            my_id: 2,
            is_leader: false,
            leader_id: 3,
            leader_ip: "10.0.0.3:2888:3888".into(),
            voting: true,
            zab_state: "broadcast",
            voting_members: vec![
                (1, "10.0.0.1:2888:3888:participant".into()),
                (3, "10.0.0.3:2888:3888:participant".into()),
            ],
            quorum_address: "10.0.0.2:2888".into(),
            election_address: "10.0.0.2:3888".into(),
            client_address: "0.0.0.0:2181".into(),
            last_zxid: 0x5_0000_0007,
        });
        let fake = Arc::new(fake);
        let leader = answer_of(&fake, "leader");
        assert_eq!(leader["is_leader"], false);
        assert_eq!(leader["leader_id"], 3);
        assert_eq!(leader["leader_ip"], "10.0.0.3:2888:3888");
        assert!(leader["error"].is_null());
        let view = answer_of(&fake, "voting_view");
        assert_eq!(
            view["current_config"]["3"],
            "10.0.0.3:2888:3888:participant"
        );
        let zab = answer_of(&fake, "zabstate");
        assert_eq!(zab["zabstate"], "broadcast");
        assert_eq!(zab["voting"], true);
        assert_eq!(zab["last_zxid"], "0x500000007");
        assert_eq!(zab["zab_epoch"], 5);
        assert_eq!(zab["zab_counter"], 7);
    }

    fn get(path: &str) -> Request {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Request {
            method: Method::Get,
            path: path.to_string(),
            query: query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
        }
    }

    /// The answer to `GET /commands/<path>`, parsed.
    fn answer_of(fake: &Arc<Fake>, path: &str) -> serde_json::Value {
        let server = AdminServer::new(fake.clone(), "/commands");
        let response = server.handle(&get(&format!("/commands/{path}")));
        assert_eq!(
            (response.status, response.content_type),
            (200, "application/json")
        );
        serde_json::from_slice(&response.body).expect("valid JSON")
    }

    /// The answer's keys in order, each with its JSON type (objects and
    /// arrays recursively; an array by its first element), one per line.
    fn shape(value: &serde_json::Value) -> String {
        fn walk(value: &serde_json::Value, out: &mut String) {
            use serde_json::Value;
            match value {
                Value::Null => out.push_str("null"),
                Value::Bool(_) => out.push_str("bool"),
                Value::Number(n) if n.is_f64() => out.push_str("float"),
                Value::Number(_) => out.push_str("int"),
                Value::String(_) => out.push_str("str"),
                Value::Array(items) => {
                    out.push('[');
                    if let Some(first) = items.first() {
                        walk(first, out);
                    }
                    out.push(']');
                }
                Value::Object(map) => {
                    out.push('{');
                    for (index, (key, value)) in map.iter().enumerate() {
                        if index > 0 {
                            out.push(' ');
                        }
                        out.push_str(key);
                        out.push(':');
                        walk(value, out);
                    }
                    out.push('}');
                }
            }
        }
        let mut out = String::new();
        walk(value, &mut out);
        out
    }

    /// The answer to `path` has this shape (keys sorted, as serde_json's map
    /// holds them; order is checked separately where it matters).
    #[track_caller]
    fn check(path: &str, expected: &str) {
        let fake = Arc::new(Fake::new());
        assert_eq!(
            shape(&answer_of(&fake, path)),
            expected,
            "GET /commands/{path}"
        );
    }

    /// The shapes below are the reference 3.8's, taken from its AdminServer
    /// (standalone, one client with an ephemeral and watches): same keys,
    /// same types, same nesting.
    #[test]
    fn answers_have_the_reference_shapes() {
        check("ruok", "{command:str error:null}");
        check("is_read_only", "{command:str error:null read_only:bool}");
        check("isro", "{command:str error:null read_only:bool}");
        check(
            "dirs",
            "{command:str datadir_size:int error:null logdir_size:int}",
        );
        check(
            "configuration",
            "{client_port:int client_port_listen_backlog:int command:str data_dir:str \
             data_log_dir:str error:null max_client_cnxns:int max_session_timeout:int \
             min_session_timeout:int server_id:int tick_time:int}",
        );
        let server_stats = "server_stats:{auth_failed_count:int avg_latency:float \
             client_response_stats:{last_buffer_size:int max_buffer_size:int min_buffer_size:int} \
             data_dir_size:int fsync_threshold_exceed_count:int last_processed_zxid:int \
             log_dir_size:int max_latency:int min_latency:int non_mtlslocal_conn_count:int \
             non_mtlsremote_conn_count:int num_alive_client_connections:int \
             outstanding_requests:int packets_received:int packets_sent:int provider_null:bool \
             server_state:str uptime:int}";
        let client_response =
            "client_response:{last_buffer_size:int max_buffer_size:int min_buffer_size:int}";
        check(
            "srvr",
            &format!(
                "{{{client_response} command:str error:null node_count:int read_only:bool \
                 {server_stats} version:str}}"
            ),
        );
        check(
            "stats",
            &format!(
                "{{{client_response} command:str connections:[{{interest_ops:int \
                 outstanding_requests:int packets_received:int packets_sent:int \
                 remote_socket_address:str}}] error:null node_count:int read_only:bool \
                 secure_connections:[] {server_stats} version:str}}"
            ),
        );
        check(
            "cons",
            "{command:str connections:[{avg_latency:int established:int interest_ops:int \
             last_cxid:int last_latency:int last_operation:str last_response_time:int \
             last_zxid:int max_latency:int min_latency:int outstanding_requests:int \
             packets_received:int packets_sent:int remote_socket_address:str session_id:int \
             session_timeout:int}] error:null secure_connections:[]}",
        );
        check(
            "dump",
            "{command:str error:null expiry_time_to_session_ids:{4716000:[int]} \
             session_id_to_ephemeral_paths:{72057594037927937:[str]}}",
        );
        check(
            "wchc",
            "{command:str error:null session_id_to_watched_paths:{72057594037927937:[str]}}",
        );
        check(
            "watches_by_path",
            "{command:str error:null path_to_session_ids:{/a:[int]}}",
        );
        check(
            "wchs",
            "{command:str error:null num_connections:int num_paths:int num_total_watches:int}",
        );
        check(
            "last_snapshot",
            "{command:str error:null timestamp:int zxid:str}",
        );
        check("icfg", "{command:str error:null initial_configuration:str}");
        check("leader", "{command:str error:str}");
        check("voting_view", "{command:str current_config:{} error:null}");
        check("gtmk", "{command:str error:null tracemask:int}");
        check(
            "hash",
            "{command:str digests:[{digest:int digest_version:int zxid:int}] error:null}",
        );
        check(
            "observers",
            "{command:str error:null observers:[] synced_observers:int}",
        );
        check(
            "zabstate",
            "{command:str error:null voting:bool zabstate:str}",
        );
        check("stat_reset", "{command:str error:null}");
        check("crst", "{command:str error:null}");
        check("orst", "{command:str error:null}");
        check("sysp", "{a:str b:str command:str error:null}");
    }

    /// `command` is the primary name, and the answer lists the data first,
    /// then `command`, then `error` (the reference's `toMap`); `leader` in
    /// standalone keeps its own `error` first.
    #[test]
    fn command_and_error_close_the_answer() {
        let fake = Arc::new(Fake::new());
        let server = AdminServer::new(fake.clone(), "/commands");
        let body = |path: &str| String::from_utf8(server.handle(&get(path)).body).expect("utf-8");
        assert_eq!(
            body("/commands/ruok"),
            "{\n  \"command\" : \"ruok\",\n  \"error\" : null\n}\n"
        );
        assert_eq!(
            body("/commands/lead"),
            "{\n  \"error\" : \"server is not initialized\",\n  \"command\" : \"leader\"\n}\n"
        );
        assert!(body("/commands/wchs").starts_with("{\n  \"num_connections\" : 1,"));
        assert_eq!(answer_of(&fake, "mntr")["command"], "monitor");
        assert_eq!(answer_of(&fake, "env")["command"], "environment");
    }

    /// Unknown commands and a stopped server are errors in the body, with the
    /// name as given; commands the reference runs without a server still run.
    #[test]
    fn errors_as_the_reference_words_them() {
        let fake = Arc::new(Fake::new());
        let unknown = answer_of(&fake, "nonexistent");
        assert_eq!(unknown["command"], "nonexistent");
        assert_eq!(unknown["error"], "Unknown command: nonexistent");
        assert_eq!(answer_of(&fake, "a/b")["error"], "Unknown command: a/b");
        fake.serving.store(false, Ordering::Relaxed);
        let stopped = answer_of(&fake, "srvr");
        assert_eq!(stopped["command"], "srvr");
        assert_eq!(stopped["error"], NOT_SERVING);
        assert_eq!(answer_of(&fake, "gtmk")["tracemask"], 306);
        assert!(answer_of(&fake, "envi")["error"].is_null());
        assert!(answer_of(&fake, "zabstate")["error"].is_null());
    }

    /// `set_trace_mask` takes `traceMask` as Java's parseLong does; the mask
    /// is then what `get_trace_mask` reports.
    #[test]
    fn trace_mask_round_trips_through_the_query() {
        let fake = Arc::new(Fake::new());
        let missing = answer_of(&fake, "set_trace_mask");
        assert_eq!(
            missing["error"],
            "setTraceMask requires long traceMask argument"
        );
        assert!(missing.get("tracemask").is_none());
        let bad = answer_of(&fake, "stmk?traceMask=x");
        assert_eq!(
            bad["error"],
            "setTraceMask requires long traceMask argument, got x"
        );
        let set = answer_of(&fake, "stmk?traceMask=-5&traceMask=7");
        assert_eq!(
            (set["tracemask"].as_i64(), set["error"].is_null()),
            (Some(-5), true)
        );
        assert_eq!(answer_of(&fake, "get_trace_mask")["tracemask"], -5);
    }

    /// `monitor` is `mntr`'s lines typed: integers, Java-printed doubles as
    /// floats, text as strings; the `zk_` prefix is dropped.
    #[test]
    fn monitor_types_the_mntr_lines() {
        let fake = Arc::new(Fake::new());
        let monitor = answer_of(&fake, "monitor");
        assert_eq!(monitor["version"], "3.8.0-test, built on unknown");
        assert_eq!(monitor["server_state"], "standalone");
        assert_eq!(monitor["znode_count"].as_i64(), Some(8));
        assert_eq!(monitor["avg_latency"].as_f64(), Some(2.1));
        assert!(monitor["avg_latency"].is_f64());
        assert!(monitor["connection_drop_probability"].is_f64());
        assert_eq!(monitor["max_file_descriptor_count"].as_i64(), Some(-1));
        assert!(monitor.get("zk_version").is_none());
    }

    /// Other values the shapes do not show: `last_snapshot` without a
    /// snapshot is the reference's -1 in both fields, sessions are decimal
    /// keys, the resets run.
    #[test]
    fn values_follow_the_reference() {
        let fake = Arc::new(Fake::new());
        let snapshot = answer_of(&fake, "lsnp");
        assert_eq!(snapshot["zxid"], "ffffffffffffffff");
        assert_eq!(snapshot["timestamp"], -1);
        let watches = answer_of(&fake, "watches");
        assert_eq!(
            watches["session_id_to_watched_paths"][SESSION.to_string()],
            serde_json::json!(["/a", "/nope"])
        );
        let cons = answer_of(&fake, "connections");
        assert_eq!(cons["connections"][0]["last_operation"], "GETC");
        assert_eq!(
            cons["connections"][0]["remote_socket_address"],
            "127.0.0.1:36384"
        );
        answer_of(&fake, "crst");
        answer_of(&fake, "srst");
        assert_eq!(fake.resets.load(Ordering::Relaxed), 11);
        assert_eq!(answer_of(&fake, "hash")["digests"][0]["digest_version"], 2);
    }

    /// `GET <commandURL>` (with or without the slash) lists every primary
    /// name, sorted, as links; other paths are 404; every alias resolves.
    #[test]
    fn listing_routes_and_aliases() {
        let fake = Arc::new(Fake::new());
        let server = AdminServer::new(fake, "/commands/");
        for path in ["/commands", "/commands/"] {
            let response = server.handle(&get(path));
            assert_eq!(response.status, 200);
            let body = String::from_utf8(response.body).expect("utf-8");
            assert!(body.starts_with(
                "<a href=\"/commands/configuration\">configuration</a>\n<br/>\n\
                 <a href=\"/commands/connection_stat_reset\">connection_stat_reset</a>\n"
            ));
            assert_eq!(body.matches("<a href=").count(), COMMANDS.len());
        }
        for path in ["/", "/other", "/commandsx", "/metrics"] {
            assert_eq!(server.handle(&get(path)).status, 404, "{path}");
        }
        let names = primary_names();
        assert!(names.windows(2).all(|pair| pair[0] < pair[1]));
        for (primary, aliases, _) in COMMANDS {
            for name in std::iter::once(primary).chain(aliases.iter()) {
                assert_eq!(lookup(name).map(|(p, _)| p), Some(*primary), "{name}");
            }
        }
        for required in [
            "ruok",
            "stat",
            "srvr",
            "server_stats",
            "conf",
            "configuration",
            "cons",
            "connections",
            "dump",
            "envi",
            "environment",
            "mntr",
            "monitor",
            "wchs",
            "watch_summary",
            "wchc",
            "watches",
            "wchp",
            "watches_by_path",
            "isro",
            "is_read_only",
            "dirs",
            "last_snapshot",
            "initial_configuration",
            "leader",
            "voting_view",
            "get_trace_mask",
            "hash",
            "observers",
            "zabstate",
        ] {
            assert!(lookup(required).is_some(), "{required}");
        }
    }
}
