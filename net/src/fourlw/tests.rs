//! The words' text shapes against a fixed fake server, each as the
//! reference 3.8 prints it.

use super::*;
use crate::stats::{LatencySnapshot, SummarySnapshot};
use std::cell::Cell;

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
            return default_environment(&self.version(), &self.host());
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
    assert!(text.ends_with("Mode: leader\nNode count: 8\nProposal sizes last/min/max: 36/32/120\n"));
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
