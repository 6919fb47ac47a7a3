//! zoo.cfg: Apache ZooKeeper's configuration file (Java properties syntax),
//! plus the Java system properties (`-Dname=value` words in `SERVER_JVMFLAGS`
//! and `JVMFLAGS`) that zkServer.sh users and container images set.
//!
//! Precedence follows the reference's `QuorumPeerConfig`: a key it knows
//! (`tickTime`, `dataDir`, `server.N`, ...) is read from the file only; any
//! other key `K` becomes the system property `zookeeper.K`, overriding a
//! `-Dzookeeper.K` flag; properties without the `zookeeper.` prefix
//! (`jute.maxbuffer`, `readonlymode.enabled`, `znode.container.*`) come from
//! JVM flags only. Our own keys (`ioThreads`, `connectionOutstandingLimit`,
//! the request bounds `maxResponseBytes`, `maxMultiOps`, `maxAclEntries`)
//! follow the same rule, so a zoo.cfg using them still loads in the reference.
//!
//! This file is not the server: it only reads text into a [`Config`]. The file
//! and flags are untrusted input; parsing never panics, and a bad value is a
//! [`ConfigError`] naming the file, the key and the value. Keys this server
//! does not implement are warned about once and ignored, so existing configs
//! load.

use engine::prep::{PrepLimits, DEFAULT_MAX_ACL_ENTRIES, DEFAULT_MAX_MULTI_OPS};
use engine::read::{ReadLimits, DEFAULT_MAX_RESPONSE_BYTES, GET_DATA_OVERHEAD_BYTES};
use net::fourlw::{FourLetterWord, Whitelist};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// The reference's defaults, where they are not obvious from the field.
const DEFAULT_TICK_TIME_MS: u32 = 3000;
const DEFAULT_MAX_CLIENT_CNXNS: u32 = 60;
const DEFAULT_GLOBAL_OUTSTANDING_LIMIT: u32 = 1000;
const DEFAULT_JUTE_MAX_BUFFER: usize = 0xfffff;
const DEFAULT_CONNECTION_OUTSTANDING_LIMIT: usize = 1000;
const DEFAULT_CONTAINER_CHECK_INTERVAL_MS: u64 = 60_000;
const DEFAULT_CONTAINER_MAX_PER_MINUTE: u32 = 10_000;
const DEFAULT_SNAP_COUNT: u32 = 100_000;
const DEFAULT_SNAP_SIZE_LIMIT_KB: u64 = 4_194_304;
const DEFAULT_PRE_ALLOC_SIZE_KB: u64 = 65_536;
const MIN_SNAP_RETAIN_COUNT: u32 = 3;
const DEFAULT_ADMIN_PORT: u16 = 8080;

/// How the write-ahead log writes and syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalIo {
    Pwrite,
    IoUring,
}

/// Which storage backend keeps the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageBackend {
    /// The write-ahead log plus snapshot files.
    Native,
    /// A RocksDB database in `<dataDir>/rocksdb`.
    RocksDb,
}

/// Where JVM flags come from, for error messages.
const JVM_FLAGS_ORIGIN: &str = "SERVER_JVMFLAGS/JVMFLAGS";

/// The server's configuration. Field names carry their units; the zoo.cfg key
/// or system property each comes from is in its comment.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `tickTime`. Default 3000 as in the reference when the key is absent.
    pub tick_time_ms: u32,
    /// `initLimit`, `syncLimit` (ticks); required in a replicated ensemble.
    pub init_limit: u32,
    pub sync_limit: u32,
    /// `connectToLearnerMasterLimit` (ticks); 0 means use `initLimit`.
    pub connect_to_learner_master_limit: u32,
    /// `dataDir`: snapshots (and `myid`).
    pub data_dir: PathBuf,
    /// `dataLogDir`: the transaction log; defaults to `dataDir`.
    pub data_log_dir: PathBuf,
    /// `clientPort`, or the client port of this server's `server.N` line.
    pub client_port: u16,
    /// `clientPortAddress`; `None` binds every interface.
    pub client_port_address: Option<IpAddr>,
    /// `clientPortListenBacklog`; -1 is the OS default.
    pub client_port_listen_backlog: i32,
    /// `maxClientCnxns`: connections per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    /// `zookeeper.maxCnxns`: connections in total; 0 = unlimited.
    pub max_cnxns: u32,
    /// `minSessionTimeout` / `maxSessionTimeout`: default 2 and 20 ticks.
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// `zookeeper.globalOutstandingLimit`.
    pub global_outstanding_limit: u32,
    /// `zookeeper.4lw.commands.whitelist` (`4lw.commands.whitelist` in zoo.cfg).
    pub four_letter_words: Whitelist,
    /// `zookeeper.extendedTypesEnabled`: TTL nodes.
    pub extended_types_enabled: bool,
    /// `-Djute.maxbuffer`: the largest request frame accepted.
    pub jute_max_buffer: usize,
    /// `zookeeper.DigestAuthenticationProvider.superDigest` (`super:<base64 sha1>`).
    pub super_digest: Option<String>,
    /// `-Dreadonlymode.enabled`.
    pub read_only_mode: bool,
    /// `zookeeper.skipACL=yes`.
    pub skip_acl: bool,
    /// `zookeeper.digest.enabled` (default true): keep a tree digest.
    pub digest_enabled: bool,
    /// `ioThreads` (ours), else `zookeeper.nio.numSelectorThreads`: I/O
    /// threads; 0 = one per core. The reference's worker threads have no
    /// equivalent and `zookeeper.nio.numWorkerThreads` is ignored.
    pub io_threads: usize,
    /// `connectionOutstandingLimit` (ours): requests one connection may have
    /// in flight before the server stops reading from it. Default 1000.
    pub connection_outstanding_limit: usize,
    /// `maxResponseBytes` (ours): the largest reply a read may build; one
    /// that would be larger is answered BadArguments instead of built.
    /// Default 16 MiB, or `jute.maxbuffer` plus a getData reply's overhead
    /// when that is more, so a node of the largest size can be read back.
    pub max_response_bytes: usize,
    /// `maxMultiOps` (ours): ops one multi or multiRead may carry; more is
    /// BadArguments. Default 10000.
    pub max_multi_ops: usize,
    /// `maxAclEntries` (ours): entries one ACL list may have, as given or
    /// once `auth` expands; more is InvalidACL. Default 1024.
    pub max_acl_entries: usize,
    /// `walIo` (ours): how the log is written and synced: `pwrite` (default:
    /// pwrite + fdatasync on the writer thread) or `io_uring` (the writer's
    /// ring does both; falls back to pwrite where the kernel refuses).
    pub wal_io: WalIo,
    /// `storage.backend` (ours): `native` (default) or `rocksdb`.
    pub storage_backend: StorageBackend,
    /// `-Dznode.container.checkIntervalMs` (default 60000).
    pub container_check_interval_ms: u64,
    /// `-Dznode.container.maxPerMinute` (default 10000).
    pub container_max_per_minute: u32,
    /// `zookeeper.snapCount` (`snapCount` in zoo.cfg): txns between snapshots,
    /// at least 2.
    pub snap_count: u32,
    /// `zookeeper.snapSizeLimitInKb`: log bytes between snapshots; 0 = off.
    pub snap_size_limit_kb: u64,
    /// `zookeeper.preAllocSize` (KB): log segment preallocation.
    pub pre_alloc_size_kb: u64,
    /// `zookeeper.forceSync`: anything but `no` keeps fsync on.
    pub force_sync: bool,
    /// `autopurge.snapRetainCount` (at least 3) and `autopurge.purgeInterval`
    /// (hours; 0 = never).
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    /// `syncEnabled`: observers log to disk too.
    pub sync_enabled: bool,
    /// `peerType`; corrected from the `server.N` list once `myid` is known.
    pub peer_type: LearnerRole,
    /// `standaloneEnabled`, `reconfigEnabled`.
    pub standalone_enabled: bool,
    pub reconfig_enabled: bool,
    /// `localSessionsEnabled`, `localSessionsUpgradingEnabled`.
    pub local_sessions_enabled: bool,
    pub local_sessions_upgrading_enabled: bool,
    /// `quorumListenOnAllIPs`.
    pub quorum_listen_on_all_ips: bool,
    /// `multiAddress.enabled` (or `zookeeper.multiAddress.enabled`).
    pub multi_address_enabled: bool,
    /// `dynamicConfigFile`: `server.N` lines live there instead.
    pub dynamic_config_file: Option<PathBuf>,
    /// `version` of the dynamic configuration (hex in the file).
    pub config_version: Option<u64>,
    /// `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`.
    pub servers: BTreeMap<u64, ServerSpec>,
    /// The `myid` file in `dataDir`, read by [`Config::load`].
    pub my_id: Option<u64>,
    /// `zookeeper.admin.enableServer`, `.serverAddress`, `.serverPort`, `.commandURL`.
    pub admin_enable_server: bool,
    pub admin_server_address: String,
    pub admin_server_port: u16,
    pub admin_command_url: String,
    /// `metricsProvider.className` and the other `metricsProvider.*` keys
    /// (prefix removed), e.g. `httpPort` for the Prometheus provider.
    pub metrics_provider_class: Option<String>,
    pub metrics_provider: BTreeMap<String, String>,
    /// The file this came from; `None` for the embedded default.
    pub source: Option<PathBuf>,
    /// Every key and value read from the file, in file order (a repeated key
    /// keeps its first position and its last value, as Java's `Properties`).
    pub entries: Vec<(String, String)>,
    /// Everything warned about while parsing (also logged), for callers and
    /// tests that want to show or check them.
    pub warnings: Vec<String>,
}

/// A member of the ensemble, from one `server.N` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    /// One address, or several separated by `|` with `multiAddress.enabled`.
    pub addresses: Vec<PeerAddress>,
    pub role: LearnerRole,
    /// The `;[host:]port` part: where this member serves clients. A bare port
    /// means host `0.0.0.0`.
    pub client: Option<(String, u16)>,
}

/// Where one member listens to its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnerRole {
    Participant,
    Observer,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: invalid value \"{value}\" for {key}: expected {expected}")]
    InvalidValue {
        origin: String,
        key: String,
        value: String,
        expected: String,
    },
    #[error("{origin}: {key} is not set")]
    Missing { origin: String, key: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// One value and where it came from, so an error can name both.
struct Setting<'a> {
    origin: &'a str,
    /// As the user wrote it: the zoo.cfg key, or `-Dname` for a JVM flag.
    key: String,
    value: &'a str,
}

impl Setting<'_> {
    fn invalid(&self, expected: &str) -> ConfigError {
        ConfigError::InvalidValue {
            origin: self.origin.to_string(),
            key: self.key.clone(),
            value: self.value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// An integer in `min..=max`, written as Java's `Integer.parseInt` /
    /// `Long.parseLong` accept it (optional sign, decimal digits).
    fn int(&self, min: i64, max: i64, expected: &str) -> Result<i64, ConfigError> {
        match self.value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(expected)),
        }
    }

    fn u32(&self, min: u32, expected: &str) -> Result<u32, ConfigError> {
        // Bounded by i32::MAX: the reference reads these as Java ints, and
        // callers may hand them on as i32.
        let n = self.int(i64::from(min), i64::from(i32::MAX), expected)?;
        u32::try_from(n).map_err(|_| self.invalid(expected))
    }

    fn u64(&self, min: u64, expected: &str) -> Result<u64, ConfigError> {
        let min = i64::try_from(min).unwrap_or(i64::MAX);
        let n = self.int(min, i64::MAX, expected)?;
        u64::try_from(n).map_err(|_| self.invalid(expected))
    }

    /// `QuorumPeerConfig.parseBoolean`: `true` or `false`, any case.
    fn strict_bool(&self) -> Result<bool, ConfigError> {
        if self.value.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if self.value.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(self.invalid("true or false"))
        }
    }
}

/// Keys the reference's `QuorumPeerConfig` knows but this server does not
/// implement. They are read by name there, so they never become
/// `zookeeper.*` properties; here they are warned about and ignored.
const UNSUPPORTED_REFERENCE_KEYS: &[&str] = &[
    "secureClientPort",
    "secureClientPortAddress",
    "observerMasterPort",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "quorum.auth.enableSasl",
    "quorum.auth.serverRequireSasl",
    "quorum.auth.learnerRequireSasl",
    "quorum.auth.learner.saslLoginContext",
    "quorum.auth.server.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal",
    "quorum.cnxn.threads.size",
    "jvm.pause.info-threshold.ms",
    "jvm.pause.warn-threshold.ms",
    "jvm.pause.sleep.time.ms",
    "jvm.pause.monitor",
    "multiAddress.reachabilityCheckTimeoutMs",
    "multiAddress.reachabilityCheckEnabled",
    "oraclePath",
];

/// System properties (after mapping zoo.cfg keys to `zookeeper.<key>`) that
/// this server reads.
const HONOURED_PROPERTIES: &[&str] = &[
    "zookeeper.4lw.commands.whitelist",
    "zookeeper.globalOutstandingLimit",
    "zookeeper.snapCount",
    "zookeeper.snapSizeLimitInKb",
    "zookeeper.preAllocSize",
    "zookeeper.forceSync",
    "zookeeper.extendedTypesEnabled",
    "zookeeper.DigestAuthenticationProvider.superDigest",
    "zookeeper.maxCnxns",
    "zookeeper.nio.numSelectorThreads",
    "zookeeper.skipACL",
    "zookeeper.digest.enabled",
    "zookeeper.multiAddress.enabled",
    "zookeeper.admin.enableServer",
    "zookeeper.admin.serverAddress",
    "zookeeper.admin.serverPort",
    "zookeeper.admin.commandURL",
    "zookeeper.ioThreads",
    "zookeeper.connectionOutstandingLimit",
    "zookeeper.maxResponseBytes",
    "zookeeper.maxMultiOps",
    "zookeeper.maxAclEntries",
    "zookeeper.walIo",
    "zookeeper.storage.backend",
];

/// Properties the reference reads without the `zookeeper.` prefix: only JVM
/// flags can set them, and the same key in zoo.cfg silently does nothing there.
const JVM_ONLY_PROPERTIES: &[&str] = &[
    "jute.maxbuffer",
    "readonlymode.enabled",
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
];

/// The configuration being built, with the sources still at hand.
struct Builder<'a> {
    origin: &'a str,
    config: Config,
    /// System properties: JVM flags, then zoo.cfg's unknown keys on top.
    properties: BTreeMap<String, (String, PropertySource)>,
    warned: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PropertySource {
    JvmFlag,
    /// From zoo.cfg under this key (the property name minus `zookeeper.`).
    File(String),
}

impl<'a> Builder<'a> {
    fn warn(&mut self, key: &str, message: String) {
        if self.warned.insert(key.to_string()) {
            tracing::warn!("{message}");
            self.config.warnings.push(message);
        }
    }

    fn file_setting<'v>(&self, key: &str, value: &'v str) -> Setting<'v>
    where
        'a: 'v,
    {
        Setting {
            origin: self.origin,
            key: key.to_string(),
            value,
        }
    }

    fn property(&self, name: &str) -> Option<Setting<'_>> {
        let (value, source) = self.properties.get(name)?;
        Some(match source {
            PropertySource::JvmFlag => Setting {
                origin: JVM_FLAGS_ORIGIN,
                key: format!("-D{name}"),
                value,
            },
            PropertySource::File(key) => Setting {
                origin: self.origin,
                key: key.clone(),
                value,
            },
        })
    }
}

impl Config {
    /// The no-argument server: standalone on port 2181 with data in `./data`,
    /// `tickTime` 2000, `initLimit` 10, `syncLimit` 5 (the values of the
    /// reference's sample zoo.cfg), and the reference's defaults otherwise.
    #[cfg(test)]
    pub fn embedded_default() -> Config {
        match Config::embedded("") {
            Ok(config) => config,
            // The embedded text is fixed and a unit test parses it.
            Err(error) => unreachable!("embedded default config does not parse: {error}"),
        }
    }

    /// [`Config::embedded_default`] with JVM flags applied (pass
    /// [`jvm_flags_from_env`] so that `-D` settings work without a zoo.cfg).
    pub fn embedded(jvm_flags: &str) -> Result<Config, ConfigError> {
        const TEXT: &str =
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=./data\nclientPort=2181\n";
        let mut config = Config::parse(TEXT, Path::new("<embedded default>"), jvm_flags)?;
        config.source = None;
        config.entries.clear();
        Ok(config)
    }

    /// Reads `path`, the dynamic config file it names (if any) and
    /// `dataDir/myid`, with JVM flags from `SERVER_JVMFLAGS` and `JVMFLAGS`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path)?;
        let mut config = Config::parse(&text, path, &jvm_flags_from_env())?;
        if let Some(dynamic) = config.dynamic_config_file.clone() {
            let text = read_text(&dynamic)?;
            config.apply_dynamic(&text, &dynamic)?;
        }
        let my_id = read_my_id(&config.data_dir)?;
        config.apply_my_id(my_id)?;
        Ok(config)
    }

    /// Parses zoo.cfg text. `source` names the file in errors; `jvm_flags`
    /// holds `-Dname=value` words (other words are ignored). Does not read
    /// any file: see [`Config::load`] for `myid` and the dynamic config.
    pub fn parse(text: &str, source: &Path, jvm_flags: &str) -> Result<Config, ConfigError> {
        let origin = source.display().to_string();
        let properties = parse_properties(text).map_err(|error| ConfigError::Syntax {
            origin: origin.clone(),
            line: error.line,
            message: error.message,
        })?;
        let entries = last_value_wins(properties);

        let mut builder = Builder {
            origin: &origin,
            config: Config::defaults(),
            properties: BTreeMap::new(),
            warned: BTreeSet::new(),
        };
        builder.config.source = Some(source.to_path_buf());
        builder.config.entries = entries.clone();
        for (name, value) in parse_jvm_flags(jvm_flags) {
            builder
                .properties
                .insert(name, (value, PropertySource::JvmFlag));
        }

        let mut seen = FileKeys::default();
        let mut server_lines = Vec::new();
        for (key, value) in &entries {
            read_file_key(&mut builder, &mut seen, &mut server_lines, key, value)?;
        }
        read_properties(&mut builder)?;
        finish_file_keys(&mut builder, &seen)?;

        if builder.config.dynamic_config_file.is_some() && !server_lines.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.clone(),
                message: format!(
                    "{} must be in the separate dynamic config file named by dynamicConfigFile",
                    server_lines[0].0
                ),
            });
        }
        let multi = builder.config.multi_address_enabled;
        builder.config.servers = parse_servers(&origin, &server_lines, multi)?;
        let mut config = builder.config;
        config.validate_quorum(&origin)?;
        // A quorum member may take its client port from its server.N line
        // (here or in the dynamic file), known only once myid is read.
        if config.servers.is_empty()
            && config.dynamic_config_file.is_none()
            && config.client_port == 0
        {
            return Err(ConfigError::Missing {
                origin,
                key: "clientPort".to_string(),
            });
        }
        Ok(config)
    }

    /// Merges a dynamic config file (`server.N` lines and `version` only).
    pub fn apply_dynamic(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let origin = path.display().to_string();
        let properties = parse_properties(text).map_err(|error| ConfigError::Syntax {
            origin: origin.clone(),
            line: error.line,
            message: error.message,
        })?;
        let mut server_lines = Vec::new();
        for (key, value) in last_value_wins(properties) {
            if key.starts_with("server.") {
                server_lines.push((key, value));
            } else if key == "version" {
                let setting = Setting {
                    origin: &origin,
                    key: key.clone(),
                    value: &value,
                };
                self.config_version = Some(parse_hex_version(&setting)?);
            } else if key.starts_with("group") || key.starts_with("weight") {
                return Err(hierarchical_unsupported(&origin, &key));
            } else {
                return Err(ConfigError::Invalid {
                    origin,
                    message: format!("unrecognised parameter {key} in a dynamic config file"),
                });
            }
        }
        self.servers = parse_servers(&origin, &server_lines, self.multi_address_enabled)?;
        self.validate_quorum(&origin)
    }

    /// Applies this server's id (the `myid` file): takes the client address
    /// from its `server.N` line (as the reference does), settles `peer_type`
    /// from the list, and checks what a replicated ensemble needs.
    pub fn apply_my_id(&mut self, my_id: Option<u64>) -> Result<(), ConfigError> {
        let origin = self.origin();
        self.my_id = my_id;
        if let Some(spec) = my_id.and_then(|id| self.servers.get(&id)).cloned() {
            if let Some((host, port)) = &spec.client {
                let address =
                    resolve_client_host(host).ok_or_else(|| ConfigError::InvalidValue {
                        origin: origin.clone(),
                        key: format!("server.{}", spec.id),
                        value: format!("{host}:{port}"),
                        expected: "a client address with an IP address or resolvable host name"
                            .to_string(),
                    })?;
                let differs = self.client_port != 0
                    && (self.client_port != *port
                        || (self.client_port_address.is_some()
                            && address.is_some()
                            && self.client_port_address != address));
                if differs {
                    return Err(ConfigError::Invalid {
                        origin,
                        message: format!(
                            "client address for this server (id = {}) is {}:{} in clientPort/clientPortAddress \
                             but {host}:{port} in its server.{} line",
                            spec.id,
                            self.client_port_address.map_or("0.0.0.0".to_string(), |a| a.to_string()),
                            self.client_port,
                            spec.id
                        ),
                    });
                }
                self.client_port = *port;
                if address.is_some() {
                    self.client_port_address = address;
                }
            }
            if spec.role != self.peer_type {
                let message = format!(
                    "{origin}: peerType {:?} does not match server.{} ({:?}); using the server list",
                    self.peer_type, spec.id, spec.role
                );
                tracing::warn!("{message}");
                self.warnings.push(message);
                self.peer_type = spec.role;
            }
        }
        if self.is_distributed() {
            match my_id {
                None => {
                    return Err(ConfigError::Invalid {
                        origin,
                        message: format!(
                        "the myid file is missing from dataDir {}; a replicated server needs it",
                        self.data_dir.display()
                    ),
                    })
                }
                Some(id) if !self.servers.contains_key(&id) => {
                    return Err(ConfigError::Invalid {
                        origin,
                        message: format!("myid {id} is not in the server.N list"),
                    })
                }
                Some(_) => {}
            }
        }
        if self.client_port == 0 {
            return Err(ConfigError::Missing {
                origin,
                key: "clientPort".to_string(),
            });
        }
        Ok(())
    }

    /// Whether this runs as a member of a replicated ensemble. As in the
    /// reference, a single participant with `standaloneEnabled` runs alone.
    pub fn is_distributed(&self) -> bool {
        !self.servers.is_empty() && (!self.standalone_enabled || self.participants() > 1)
    }

    fn participants(&self) -> usize {
        self.servers
            .values()
            .filter(|s| s.role == LearnerRole::Participant)
            .count()
    }

    fn origin(&self) -> String {
        self.source.as_ref().map_or_else(
            || "<embedded default>".to_string(),
            |p| p.display().to_string(),
        )
    }

    /// The `conf` four-letter word's lines, in the reference's order and
    /// spelling. The reference prints its snapshot and log directories (its
    /// `version-2` subdirectories); here the configured directories are
    /// shown, made absolute. `secureClientPort` is always -1 (no TLS port).
    pub fn conf_4lw(&self, data_dir_size: u64, log_dir_size: u64) -> Vec<(String, String)> {
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        let mut lines = vec![
            ("clientPort".to_string(), self.client_port.to_string()),
            ("secureClientPort".to_string(), "-1".to_string()),
            ("dataDir".to_string(), absolute(&self.data_dir)),
            ("dataDirSize".to_string(), data_dir_size.to_string()),
            ("dataLogDir".to_string(), absolute(&self.data_log_dir)),
            ("dataLogSize".to_string(), log_dir_size.to_string()),
            ("tickTime".to_string(), self.tick_time_ms.to_string()),
            (
                "maxClientCnxns".to_string(),
                self.max_client_cnxns.to_string(),
            ),
            (
                "minSessionTimeout".to_string(),
                self.min_session_timeout_ms.to_string(),
            ),
            (
                "maxSessionTimeout".to_string(),
                self.max_session_timeout_ms.to_string(),
            ),
            (
                "clientPortListenBacklog".to_string(),
                self.client_port_listen_backlog.to_string(),
            ),
            ("serverId".to_string(), self.my_id.unwrap_or(0).to_string()),
        ];
        if self.is_distributed() {
            let me = self.my_id.and_then(|id| self.servers.get(&id));
            let ports = |pick: fn(&PeerAddress) -> u16| {
                me.map(|spec| {
                    spec.addresses
                        .iter()
                        .map(|a| pick(a).to_string())
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .unwrap_or_default()
            };
            lines.push(("initLimit".to_string(), self.init_limit.to_string()));
            lines.push(("syncLimit".to_string(), self.sync_limit.to_string()));
            lines.push(("electionAlg".to_string(), "3".to_string()));
            lines.push(("electionPort".to_string(), ports(|a| a.election_port)));
            lines.push(("quorumPort".to_string(), ports(|a| a.quorum_port)));
            let ordinal = if self.peer_type == LearnerRole::Observer {
                "1"
            } else {
                "0"
            };
            lines.push(("peerType".to_string(), ordinal.to_string()));
        }
        lines
    }

    /// The bounds every read is answered under (`maxResponseBytes`,
    /// `maxMultiOps`).
    pub fn read_limits(&self) -> ReadLimits {
        ReadLimits {
            max_response_bytes: self.max_response_bytes,
            max_multi_ops: self.max_multi_ops,
        }
    }

    /// The bounds prep enforces on writes (`maxMultiOps`, `maxAclEntries`).
    pub fn prep_limits(&self) -> PrepLimits {
        PrepLimits {
            max_multi_ops: self.max_multi_ops,
            max_acl_entries: self.max_acl_entries,
        }
    }

    /// Every field at the reference's default; `dataDir` empty (it is
    /// required) and no client port.
    fn defaults() -> Config {
        Config {
            tick_time_ms: DEFAULT_TICK_TIME_MS,
            init_limit: 0,
            sync_limit: 0,
            connect_to_learner_master_limit: 0,
            data_dir: PathBuf::new(),
            data_log_dir: PathBuf::new(),
            client_port: 0,
            client_port_address: None,
            client_port_listen_backlog: -1,
            max_client_cnxns: DEFAULT_MAX_CLIENT_CNXNS,
            max_cnxns: 0,
            min_session_timeout_ms: 0,
            max_session_timeout_ms: 0,
            global_outstanding_limit: DEFAULT_GLOBAL_OUTSTANDING_LIMIT,
            four_letter_words: Whitelist::reference_default(),
            extended_types_enabled: false,
            jute_max_buffer: DEFAULT_JUTE_MAX_BUFFER,
            super_digest: None,
            read_only_mode: false,
            skip_acl: false,
            digest_enabled: true,
            io_threads: 0,
            connection_outstanding_limit: DEFAULT_CONNECTION_OUTSTANDING_LIMIT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_multi_ops: DEFAULT_MAX_MULTI_OPS,
            max_acl_entries: DEFAULT_MAX_ACL_ENTRIES,
            wal_io: WalIo::Pwrite,
            storage_backend: StorageBackend::Native,
            container_check_interval_ms: DEFAULT_CONTAINER_CHECK_INTERVAL_MS,
            container_max_per_minute: DEFAULT_CONTAINER_MAX_PER_MINUTE,
            snap_count: DEFAULT_SNAP_COUNT,
            snap_size_limit_kb: DEFAULT_SNAP_SIZE_LIMIT_KB,
            pre_alloc_size_kb: DEFAULT_PRE_ALLOC_SIZE_KB,
            force_sync: true,
            autopurge_snap_retain_count: MIN_SNAP_RETAIN_COUNT,
            autopurge_purge_interval_hours: 0,
            sync_enabled: true,
            peer_type: LearnerRole::Participant,
            standalone_enabled: true,
            reconfig_enabled: false,
            local_sessions_enabled: false,
            local_sessions_upgrading_enabled: false,
            quorum_listen_on_all_ips: false,
            multi_address_enabled: false,
            dynamic_config_file: None,
            config_version: None,
            servers: BTreeMap::new(),
            my_id: None,
            admin_enable_server: true,
            admin_server_address: "0.0.0.0".to_string(),
            admin_server_port: DEFAULT_ADMIN_PORT,
            admin_command_url: "/commands".to_string(),
            metrics_provider_class: None,
            metrics_provider: BTreeMap::new(),
            source: None,
            entries: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The reference's quorum checks on the `server.N` list.
    fn validate_quorum(&mut self, origin: &str) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Ok(());
        }
        let participants = self.participants();
        let observers = self.servers.len() - participants;
        let invalid = |message: &str| ConfigError::Invalid {
            origin: origin.to_string(),
            message: message.to_string(),
        };
        if participants == 0 {
            if !self.standalone_enabled {
                return Err(invalid(
                    "standaloneEnabled=false needs at least one participant in the server.N list",
                ));
            }
            if observers > 0 {
                return Err(invalid(
                    "observers without participants is an invalid configuration",
                ));
            }
        } else if participants == 1 && self.standalone_enabled {
            if observers > 0 {
                return Err(invalid(
                    "observers without a quorum is an invalid configuration",
                ));
            }
            let message = format!(
                "{origin}: only one server in the server.N list; running standalone (set standaloneEnabled=false to run a one-member ensemble)"
            );
            tracing::warn!("{message}");
            self.warnings.push(message);
        } else if participants <= 2 {
            let message = format!("{origin}: no server failure will be tolerated; an ensemble needs at least 3 servers");
            tracing::warn!("{message}");
            self.warnings.push(message);
        } else if participants & 1 == 0 {
            let message = format!("{origin}: an even number of participants tolerates no more failures than one fewer; consider an odd number");
            tracing::warn!("{message}");
            self.warnings.push(message);
        }
        if self.is_distributed() {
            if self.init_limit == 0 {
                return Err(ConfigError::Missing {
                    origin: origin.to_string(),
                    key: "initLimit".to_string(),
                });
            }
            if self.sync_limit == 0 {
                return Err(ConfigError::Missing {
                    origin: origin.to_string(),
                    key: "syncLimit".to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Which directly-read keys appeared, for the checks after the loop.
#[derive(Default)]
struct FileKeys {
    data_dir: bool,
    data_log_dir: bool,
    client_port_address: Option<String>,
    min_session_timeout: Option<u32>,
    max_session_timeout: Option<u32>,
}

/// One zoo.cfg key: the keys the reference reads by name, `server.N`, or
/// anything else as the system property `zookeeper.<key>`.
fn read_file_key(
    builder: &mut Builder<'_>,
    seen: &mut FileKeys,
    server_lines: &mut Vec<(String, String)>,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let setting = builder.file_setting(key, value);
    let config = &mut builder.config;
    match key {
        "dataDir" | "dataLogDir" => {
            if value.is_empty() {
                return Err(setting.invalid("a directory path"));
            }
            if key == "dataDir" {
                config.data_dir = PathBuf::from(value);
                seen.data_dir = true;
            } else {
                config.data_log_dir = PathBuf::from(value);
                seen.data_log_dir = true;
            }
        }
        "clientPort" => {
            let port = setting.int(0, 65535, "a port number (1-65535)")?;
            config.client_port =
                u16::try_from(port).map_err(|_| setting.invalid("a port number"))?;
        }
        "clientPortAddress" => seen.client_port_address = Some(value.to_string()),
        "clientPortListenBacklog" => {
            let backlog = setting.int(-1, i64::from(i32::MAX), "-1 or a positive integer")?;
            config.client_port_listen_backlog =
                i32::try_from(backlog).map_err(|_| setting.invalid("an integer"))?;
        }
        "tickTime" => config.tick_time_ms = setting.u32(1, "a positive integer")?,
        "initLimit" => config.init_limit = setting.u32(0, "a non-negative integer")?,
        "syncLimit" => config.sync_limit = setting.u32(0, "a non-negative integer")?,
        "connectToLearnerMasterLimit" => {
            config.connect_to_learner_master_limit = setting.u32(0, "a non-negative integer")?
        }
        "maxClientCnxns" => {
            // The reference treats any value below 1 as "no limit".
            let max = setting.int(i64::from(i32::MIN), i64::from(i32::MAX), "an integer")?;
            config.max_client_cnxns = u32::try_from(max.max(0)).unwrap_or(0);
        }
        "minSessionTimeout" | "maxSessionTimeout" => {
            let timeout = setting.int(
                -1,
                i64::from(i32::MAX),
                "a timeout in milliseconds, or -1 for the default",
            )?;
            // -1 is the reference's "not set".
            let timeout = u32::try_from(timeout).ok();
            if key == "minSessionTimeout" {
                seen.min_session_timeout = timeout;
            } else {
                seen.max_session_timeout = timeout;
            }
        }
        "electionAlg" => {
            if value != "3" {
                return Err(setting.invalid("3 (the only election algorithm)"));
            }
        }
        "peerType" => {
            config.peer_type =
                parse_role(value).ok_or_else(|| setting.invalid("observer or participant"))?
        }
        "syncEnabled" => config.sync_enabled = setting.strict_bool()?,
        "standaloneEnabled" => config.standalone_enabled = setting.strict_bool()?,
        "reconfigEnabled" => config.reconfig_enabled = setting.strict_bool()?,
        "localSessionsEnabled" => config.local_sessions_enabled = setting.strict_bool()?,
        "localSessionsUpgradingEnabled" => {
            config.local_sessions_upgrading_enabled = setting.strict_bool()?
        }
        "quorumListenOnAllIPs" => config.quorum_listen_on_all_ips = setting.strict_bool()?,
        "multiAddress.enabled" => {
            config.multi_address_enabled = config.multi_address_enabled || setting.strict_bool()?
        }
        "dynamicConfigFile" => config.dynamic_config_file = Some(PathBuf::from(value)),
        "autopurge.snapRetainCount" => {
            let count = setting.int(i64::from(i32::MIN), i64::from(i32::MAX), "an integer")?;
            let retained = match u32::try_from(count) {
                Ok(count) if count >= MIN_SNAP_RETAIN_COUNT => count,
                _ => {
                    let message = format!(
                        "{}: autopurge.snapRetainCount {count} is below {MIN_SNAP_RETAIN_COUNT}; using {MIN_SNAP_RETAIN_COUNT}",
                        builder.origin
                    );
                    builder.warn(key, message);
                    MIN_SNAP_RETAIN_COUNT
                }
            };
            builder.config.autopurge_snap_retain_count = retained;
        }
        "autopurge.purgeInterval" => {
            let hours = setting.int(i64::from(i32::MIN), i64::from(i32::MAX), "an integer")?;
            // The reference disables purging for any value below 1.
            config.autopurge_purge_interval_hours = u32::try_from(hours.max(0)).unwrap_or(0);
        }
        "metricsProvider.className" => config.metrics_provider_class = Some(value.to_string()),
        "version" => config.config_version = Some(parse_hex_version(&setting)?),
        _ if key.starts_with("metricsProvider.") => {
            let name = key.trim_start_matches("metricsProvider.");
            config
                .metrics_provider
                .insert(name.to_string(), value.to_string());
        }
        _ if key.starts_with("server.") => server_lines.push((key.to_string(), value.to_string())),
        _ if key.starts_with("group") || key.starts_with("weight") => {
            return Err(hierarchical_unsupported(builder.origin, key));
        }
        _ if UNSUPPORTED_REFERENCE_KEYS.contains(&key) => {
            let message = format!(
                "{}: ignoring {key}: not supported by this server",
                builder.origin
            );
            builder.warn(key, message);
        }
        _ => {
            let name = format!("zookeeper.{key}");
            if JVM_ONLY_PROPERTIES.contains(&key) {
                let message = format!(
                    "{}: ignoring {key}: as in Apache ZooKeeper it has no effect in zoo.cfg; \
                     set -D{key}={value} in SERVER_JVMFLAGS instead",
                    builder.origin
                );
                builder.warn(key, message);
            } else if !HONOURED_PROPERTIES.contains(&name.as_str()) {
                let message = format!(
                    "{}: ignoring {key}: not supported by this server",
                    builder.origin
                );
                builder.warn(key, message);
            }
            // The reference's rule: the file overrides a -Dzookeeper.<key> flag.
            builder.properties.insert(
                name,
                (value.to_string(), PropertySource::File(key.to_string())),
            );
        }
    }
    Ok(())
}

/// The checks the reference makes once every key is read.
fn finish_file_keys(builder: &mut Builder<'_>, seen: &FileKeys) -> Result<(), ConfigError> {
    let origin = builder.origin;
    let config = &mut builder.config;
    if !seen.data_dir {
        return Err(ConfigError::Missing {
            origin: origin.to_string(),
            key: "dataDir".to_string(),
        });
    }
    if !seen.data_log_dir {
        config.data_log_dir = config.data_dir.clone();
    }
    if let Some(address) = &seen.client_port_address {
        if config.client_port == 0 {
            return Err(ConfigError::Invalid {
                origin: origin.to_string(),
                message: "clientPortAddress is set but clientPort is not".to_string(),
            });
        }
        let setting = Setting {
            origin,
            key: "clientPortAddress".to_string(),
            value: address,
        };
        config.client_port_address = resolve_client_host(address)
            .ok_or_else(|| setting.invalid("an IP address or a resolvable host name"))?;
    }
    let tick = u64::from(config.tick_time_ms);
    let ticks = |n: u64| u32::try_from((tick * n).min(i32::MAX as u64)).unwrap_or(u32::MAX);
    config.min_session_timeout_ms = seen.min_session_timeout.unwrap_or_else(|| ticks(2));
    config.max_session_timeout_ms = seen.max_session_timeout.unwrap_or_else(|| ticks(20));
    if config.min_session_timeout_ms > config.max_session_timeout_ms {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            message: format!(
                "minSessionTimeout ({} ms) must not be larger than maxSessionTimeout ({} ms)",
                config.min_session_timeout_ms, config.max_session_timeout_ms
            ),
        });
    }
    Ok(())
}

/// Reads the system properties this server honours, wherever they came from.
fn read_properties(builder: &mut Builder<'_>) -> Result<(), ConfigError> {
    if let Some(setting) = builder.property("zookeeper.4lw.commands.whitelist") {
        let whitelist = Whitelist::parse(setting.value);
        let unknown = Whitelist::unknown_words(setting.value);
        let (origin, key) = (setting.origin.to_string(), setting.key.clone());
        builder.config.four_letter_words = whitelist;
        if !unknown.is_empty() {
            let message = format!(
                "{origin}: {key} names unknown commands {}; they are ignored",
                unknown.join(", ")
            );
            builder.warn("4lw.commands.whitelist", message);
        }
    }
    if let Some(setting) = builder.property("zookeeper.globalOutstandingLimit") {
        builder.config.global_outstanding_limit = setting.u32(1, "a positive integer")?;
    }
    if let Some(setting) = builder.property("zookeeper.snapCount") {
        let count = setting.u32(0, "a non-negative integer")?;
        if count < 2 {
            let message = format!(
                "{}: {} {count} is below 2; using 2",
                setting.origin, setting.key
            );
            builder.warn("snapCount", message);
        }
        builder.config.snap_count = count.max(2);
    }
    if let Some(setting) = builder.property("zookeeper.snapSizeLimitInKb") {
        // Like the reference, zero or a negative value turns the size trigger off.
        let limit = setting.int(i64::MIN, i64::MAX, "an integer (KB; 0 or less disables)")?;
        builder.config.snap_size_limit_kb = u64::try_from(limit).unwrap_or(0);
    }
    if let Some(setting) = builder.property("zookeeper.preAllocSize") {
        builder.config.pre_alloc_size_kb = setting.u64(0, "a size in KB")?;
    }
    if let Some(setting) = builder.property("zookeeper.forceSync") {
        // The reference syncs unless the value is exactly `no`.
        let force_sync = setting.value != "no";
        if setting.value != "yes" && setting.value != "no" {
            let message = format!(
                "{}: {}={} is neither yes nor no; fsync stays on (only \"no\" turns it off)",
                setting.origin, setting.key, setting.value
            );
            builder.warn("forceSync", message);
        }
        builder.config.force_sync = force_sync;
    }
    if let Some(value) = lenient_bool(builder, "zookeeper.extendedTypesEnabled") {
        builder.config.extended_types_enabled = value;
    }
    if let Some(setting) = builder.property("zookeeper.DigestAuthenticationProvider.superDigest") {
        if !setting.value.contains(':') {
            return Err(setting.invalid(
                "super:<base64 SHA-1 digest>, as DigestAuthenticationProvider generates",
            ));
        }
        builder.config.super_digest = Some(setting.value.to_string());
    }
    if let Some(setting) = builder.property("zookeeper.maxCnxns") {
        // The reference uses 0 (no limit) for negative values.
        let max = setting.int(i64::from(i32::MIN), i64::from(i32::MAX), "an integer")?;
        builder.config.max_cnxns = u32::try_from(max.max(0)).unwrap_or(0);
    }
    if let Some(setting) = builder.property("zookeeper.nio.numSelectorThreads") {
        let threads = setting.u32(1, "a positive number of threads")?;
        builder.config.io_threads = usize::try_from(threads).unwrap_or(0);
    }
    if let Some(setting) = builder.property("zookeeper.ioThreads") {
        let threads = setting.u32(0, "a number of threads (0 = one per core)")?;
        builder.config.io_threads = usize::try_from(threads).unwrap_or(0);
    }
    if let Some(setting) = builder.property("zookeeper.connectionOutstandingLimit") {
        let limit = setting.u32(1, "a positive integer")?;
        builder.config.connection_outstanding_limit =
            usize::try_from(limit).unwrap_or(DEFAULT_CONNECTION_OUTSTANDING_LIMIT);
    }
    if let Some(setting) = builder.property("zookeeper.maxMultiOps") {
        let ops = setting.u32(1, "a positive number of ops")?;
        builder.config.max_multi_ops = usize::try_from(ops).unwrap_or(DEFAULT_MAX_MULTI_OPS);
    }
    if let Some(setting) = builder.property("zookeeper.maxAclEntries") {
        let entries = setting.u32(1, "a positive number of entries")?;
        builder.config.max_acl_entries =
            usize::try_from(entries).unwrap_or(DEFAULT_MAX_ACL_ENTRIES);
    }
    if let Some(setting) = builder.property("zookeeper.walIo") {
        builder.config.wal_io = match setting.value {
            "pwrite" => WalIo::Pwrite,
            "io_uring" => WalIo::IoUring,
            _ => return Err(setting.invalid("pwrite or io_uring")),
        };
    }
    if let Some(setting) = builder.property("zookeeper.storage.backend") {
        builder.config.storage_backend = match setting.value {
            "native" => StorageBackend::Native,
            "rocksdb" => StorageBackend::RocksDb,
            _ => return Err(setting.invalid("native or rocksdb")),
        };
    }
    if let Some(setting) = builder.property("zookeeper.skipACL") {
        builder.config.skip_acl = setting.value == "yes";
    }
    if let Some(value) = lenient_bool(builder, "zookeeper.digest.enabled") {
        builder.config.digest_enabled = value;
    }
    if let Some(value) = lenient_bool(builder, "zookeeper.multiAddress.enabled") {
        builder.config.multi_address_enabled |= value;
    }
    if let Some(value) = lenient_bool(builder, "zookeeper.admin.enableServer") {
        builder.config.admin_enable_server = value;
    }
    if let Some(setting) = builder.property("zookeeper.admin.serverAddress") {
        builder.config.admin_server_address = setting.value.to_string();
    }
    if let Some(setting) = builder.property("zookeeper.admin.serverPort") {
        let port = setting.int(0, 65535, "a port number")?;
        builder.config.admin_server_port =
            u16::try_from(port).map_err(|_| setting.invalid("a port number"))?;
    }
    if let Some(setting) = builder.property("zookeeper.admin.commandURL") {
        builder.config.admin_command_url = setting.value.to_string();
    }
    if let Some(setting) = builder.property("jute.maxbuffer") {
        let bytes = setting.u32(1, "a positive number of bytes")?;
        builder.config.jute_max_buffer = usize::try_from(bytes).unwrap_or(DEFAULT_JUTE_MAX_BUFFER);
    }
    if let Some(value) = lenient_bool(builder, "readonlymode.enabled") {
        builder.config.read_only_mode = value;
    }
    // Only the exact value "true" adds isro to the whitelist in the reference.
    if builder
        .property("readonlymode.enabled")
        .is_some_and(|s| s.value == "true")
    {
        builder.config.four_letter_words.allow(FourLetterWord::Isro);
    }
    if let Some(setting) = builder.property("znode.container.checkIntervalMs") {
        builder.config.container_check_interval_ms =
            u64::from(setting.u32(1, "a positive number of milliseconds")?);
    }
    if let Some(setting) = builder.property("znode.container.maxPerMinute") {
        builder.config.container_max_per_minute = setting.u32(1, "a positive integer")?;
    }
    read_max_response_bytes(builder)
}

/// `maxResponseBytes`, once `jute.maxbuffer` is known: a budget below the
/// largest getData reply would accept a node that can never be read back.
fn read_max_response_bytes(builder: &mut Builder<'_>) -> Result<(), ConfigError> {
    let floor = builder
        .config
        .jute_max_buffer
        .saturating_add(GET_DATA_OVERHEAD_BYTES);
    let Some(setting) = builder.property("zookeeper.maxResponseBytes") else {
        builder.config.max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES.max(floor);
        return Ok(());
    };
    let expected = format!(
        "a number of bytes of at least jute.maxbuffer + {GET_DATA_OVERHEAD_BYTES} ({floor}), \
         so that the largest node can be read back"
    );
    let bytes = setting.u32(1, &expected)?;
    match usize::try_from(bytes) {
        Ok(bytes) if bytes >= floor => {
            builder.config.max_response_bytes = bytes;
            Ok(())
        }
        _ => Err(setting.invalid(&expected)),
    }
}

/// Java's `Boolean.getBoolean`: true iff the value is `true` in any case;
/// anything else is false (warned about, since it is probably a typo).
fn lenient_bool(builder: &mut Builder<'_>, name: &str) -> Option<bool> {
    let setting = builder.property(name)?;
    let value = setting.value.eq_ignore_ascii_case("true");
    if !value && !setting.value.eq_ignore_ascii_case("false") {
        let message = format!(
            "{}: {}={} is not true or false; treated as false",
            setting.origin, setting.key, setting.value
        );
        builder.warn(name, message);
    }
    Some(value)
}

fn hierarchical_unsupported(origin: &str, key: &str) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message: format!("{key}: hierarchical quorums (group.N / weight.N) are not supported"),
    }
}

fn parse_hex_version(setting: &Setting<'_>) -> Result<u64, ConfigError> {
    u64::from_str_radix(setting.value, 16).map_err(|_| setting.invalid("a hexadecimal version"))
}

fn parse_role(text: &str) -> Option<LearnerRole> {
    match text.trim().to_ascii_lowercase().as_str() {
        "participant" => Some(LearnerRole::Participant),
        "observer" => Some(LearnerRole::Observer),
        _ => None,
    }
}

/// A client host from zoo.cfg: an IP literal, or a name resolved as the
/// reference's `InetAddress.getByName` would. `0.0.0.0` (and `::`) mean every
/// interface, `None`. The outer `None` means unresolvable.
fn resolve_client_host(host: &str) -> Option<Option<IpAddr>> {
    let address = match host.parse::<IpAddr>() {
        Ok(address) => address,
        Err(_) => {
            // Only something shaped like a host name is worth a DNS query.
            let plausible = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !plausible {
                return None;
            }
            (host, 0).to_socket_addrs().ok()?.next()?.ip()
        }
    };
    Some((!address.is_unspecified()).then_some(address))
}

/// The reference's `server.N` grammar (`QuorumServer`):
/// `host:quorumPort:electionPort[:type]`, several joined by `|`, then
/// optionally `;[host:]clientPort`. IPv6 hosts go in brackets.
fn parse_servers(
    origin: &str,
    lines: &[(String, String)],
    multi_address_enabled: bool,
) -> Result<BTreeMap<u64, ServerSpec>, ConfigError> {
    let mut servers = BTreeMap::new();
    for (key, value) in lines {
        let setting = Setting {
            origin,
            key: key.clone(),
            value,
        };
        let id_text = key.trim_start_matches("server.");
        let id = id_text
            .parse::<u64>()
            .map_err(|_| ConfigError::InvalidValue {
                origin: origin.to_string(),
                key: key.clone(),
                value: value.clone(),
                expected: format!("a non-negative server id after \"server.\", not \"{id_text}\""),
            })?;
        let spec = parse_server(&setting, id, multi_address_enabled)?;
        servers.insert(id, spec);
    }
    Ok(servers)
}

const SERVER_FORMAT: &str =
    "host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]";

fn parse_server(setting: &Setting<'_>, id: u64, multi: bool) -> Result<ServerSpec, ConfigError> {
    let wrong = || setting.invalid(SERVER_FORMAT);
    let parts = java_split(setting.value, ';');
    if parts.is_empty() || parts.len() > 2 {
        return Err(wrong());
    }
    let client = match parts.get(1) {
        None => None,
        Some(client) => {
            let pieces = host_and_port(client).ok_or_else(wrong)?;
            let (host, port) = match pieces.as_slice() {
                [port] => ("0.0.0.0".to_string(), port),
                [host, port] => (host.clone(), port),
                _ => return Err(wrong()),
            };
            let port = port
                .parse::<u16>()
                .map_err(|_| setting.invalid("a client port number"))?;
            Some((host, port))
        }
    };
    let mut addresses = Vec::new();
    let mut role = None;
    let first = parts.first().ok_or_else(wrong)?;
    let alternatives = java_split(first, '|');
    if alternatives.len() > 1 && !multi {
        return Err(setting.invalid(
            "a single address (several addresses separated by | need multiAddress.enabled=true)",
        ));
    }
    for address in alternatives {
        let pieces = host_and_port(&address).ok_or_else(wrong)?;
        if pieces.len() < 3 || pieces.len() > 4 {
            return Err(wrong());
        }
        let host = pieces.first().ok_or_else(wrong)?.clone();
        if host.is_empty() {
            return Err(wrong());
        }
        let port = |index: usize| -> Result<u16, ConfigError> {
            pieces
                .get(index)
                .and_then(|text| text.parse::<u16>().ok())
                .ok_or_else(|| {
                    setting.invalid("port numbers (0-65535) in host:quorumPort:electionPort")
                })
        };
        let (quorum_port, election_port) = (port(1)?, port(2)?);
        if quorum_port == election_port {
            return Err(ConfigError::Invalid {
                origin: setting.origin.to_string(),
                message: format!(
                    "server.{id}: the quorum port and the election port must be different ({quorum_port})"
                ),
            });
        }
        if let Some(text) = pieces.get(3) {
            let this = parse_role(text)
                .ok_or_else(|| setting.invalid("observer or participant as the fourth field"))?;
            if role.is_some_and(|previous| previous != this) {
                return Err(setting.invalid("the same role for every address of one server"));
            }
            role = Some(this);
        }
        addresses.push(PeerAddress {
            host,
            quorum_port,
            election_port,
        });
    }
    Ok(ServerSpec {
        id,
        addresses,
        role: role.unwrap_or(LearnerRole::Participant),
        client,
    })
}

/// Java's `String.split` with a literal one-character separator: trailing
/// empty pieces are dropped (so `a:b:` is two pieces).
fn java_split(text: &str, separator: char) -> Vec<String> {
    let mut pieces: Vec<String> = text.split(separator).map(str::to_string).collect();
    while pieces.last().is_some_and(|piece| piece.is_empty()) {
        pieces.pop();
    }
    pieces
}

/// The reference's `ConfigUtils.getHostAndPort`: `[v6addr]:a:b` keeps the
/// bracketed host whole; otherwise a plain split on `:`.
fn host_and_port(text: &str) -> Option<Vec<String>> {
    let Some(rest) = text.strip_prefix('[') else {
        return Some(java_split(text, ':'));
    };
    let close = rest.find(']')?;
    let host = rest.get(..close)?.to_string();
    let after = rest.get(close + 1..)?;
    if after.is_empty() {
        return Some(vec![host]);
    }
    let ports = after.strip_prefix(':')?;
    if ports.is_empty() {
        return None;
    }
    let mut pieces = vec![host];
    pieces.extend(java_split(ports, ':'));
    Some(pieces)
}

/// A file as text: UTF-8, or ISO-8859-1 (what Java's `Properties.load`
/// assumes) when it is not valid UTF-8.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => error.into_bytes().iter().map(|&b| char::from(b)).collect(),
    })
}

/// `dataDir/myid`: this server's id in the ensemble, if the file exists.
/// Surrounding whitespace is tolerated (the reference reads the first line).
pub fn read_my_id(data_dir: &Path) -> Result<Option<u64>, ConfigError> {
    let path = data_dir.join("myid");
    if !path.is_file() {
        return Ok(None);
    }
    let text = read_text(&path)?;
    let first = text.lines().next().unwrap_or("").trim();
    first
        .parse::<u64>()
        .map(Some)
        .map_err(|_| ConfigError::InvalidValue {
            origin: path.display().to_string(),
            key: "myid".to_string(),
            value: first.to_string(),
            expected: "a non-negative server id".to_string(),
        })
}

/// `$SERVER_JVMFLAGS $JVMFLAGS`, the order zkServer.sh passes them in (so a
/// `-D` in `JVMFLAGS` wins, being later on the Java command line).
pub fn jvm_flags_from_env() -> String {
    let get = |name: &str| std::env::var(name).unwrap_or_default();
    format!("{} {}", get("SERVER_JVMFLAGS"), get("JVMFLAGS"))
}

/// The `-Dname=value` words of a JVM command line, in order (a later
/// definition of a name overrides an earlier one when collected). Words are
/// split as a POSIX shell would: quotes group and are removed, backslash
/// escapes. zkServer.sh expands `$JVMFLAGS` unquoted, so the reference's JVM
/// would see literal quote characters; treating them as quoting is what people
/// who write `-Dx="a b"` mean. A `-Dname` without `=` sets an empty value.
pub fn parse_jvm_flags(flags: &str) -> Vec<(String, String)> {
    shell_words(flags)
        .into_iter()
        .filter_map(|word| {
            let definition = word.strip_prefix("-D")?;
            let (name, value) = definition.split_once('=').unwrap_or((definition, ""));
            (!name.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// POSIX-shell-like word splitting with quote removal; an unterminated quote
/// runs to the end of the text.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(next @ ('"' | '\\' | '$' | '`')) => word.push(next),
                            Some('\n') => {}
                            Some(next) => {
                                word.push('\\');
                                word.push(next);
                            }
                            None => word.push('\\'),
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(next) => word.push(next),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A properties-syntax error: the line and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct PropertiesError {
    pub line: usize,
    pub message: String,
}

/// Java `Properties.load` rules: `#` and `!` comments, `key=value`,
/// `key: value` or `key value`, a line ending in an odd number of backslashes
/// continues (leading whitespace of the next line dropped), `\t \n \r \f
/// \uXXXX` escapes, any other escaped character stands for itself. Keys and
/// values are then trimmed as ZooKeeper trims them. Returns every
/// (key, value, line) in order, duplicates included.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String, usize)>, PropertiesError> {
    let mut properties = Vec::new();
    for (line, chars) in logical_lines(text) {
        let (key, value) = split_key_value(&chars);
        let key = unescape(key).map_err(|message| PropertiesError { line, message })?;
        let value = unescape(value).map_err(|message| PropertiesError { line, message })?;
        properties.push((
            java_trim(&key).to_string(),
            java_trim(&value).to_string(),
            line,
        ));
    }
    Ok(properties)
}

/// Keeps each key once, at its first position, with its last value.
fn last_value_wins(properties: Vec<(String, String, usize)>) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (key, value, _) in properties {
        match index.get(&key) {
            Some(&at) => {
                if let Some(entry) = entries.get_mut(at) {
                    entry.1 = value;
                }
            }
            None => {
                index.insert(key.clone(), entries.len());
                entries.push((key, value));
            }
        }
    }
    entries
}

/// Java's `String.trim`: strips every char up to U+0020 from both ends.
fn java_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// Java's `LineReader` (JDK 9 and later, which the reference runs on): joins
/// continued lines and drops comments and blank lines. Each logical line comes
/// with the 1-based number of the natural line it starts on; escapes are
/// still in the text. Quirks kept on purpose: a `#`/`!` is a comment only
/// while the logical line is still empty (so it can follow a continuation of
/// an empty line), and a line that is only a continuation backslash at the
/// very end of the input still counts as an (empty) line.
fn logical_lines(text: &str) -> Vec<(usize, Vec<char>)> {
    let chars: Vec<char> = text.chars().collect();
    // The natural line of each char; a terminator belongs to the line it ends.
    let mut line_of = Vec::with_capacity(chars.len());
    let mut line = 1;
    for (index, &c) in chars.iter().enumerate() {
        line_of.push(line);
        if c == '\n' || (c == '\r' && chars.get(index + 1) != Some(&'\n')) {
            line += 1;
        }
    }
    let line_at = |index: usize| line_of.get(index).copied().unwrap_or(line);

    let mut lines = Vec::new();
    let mut pos = 0;
    let mut skip_lf = false;
    loop {
        let mut buffer: Vec<char> = Vec::new();
        let mut start = None;
        let mut skip_whitespace = true;
        let mut appended_line_begin = false;
        let mut preceding_backslash = false;
        let logical = loop {
            let Some(&c) = chars.get(pos) else {
                // End of input.
                if buffer.is_empty() {
                    break None;
                }
                if preceding_backslash {
                    buffer.pop();
                }
                break Some(buffer);
            };
            let here = pos;
            pos += 1;
            if skip_lf {
                skip_lf = false;
                if c == '\n' {
                    continue;
                }
            }
            if skip_whitespace {
                if is_blank(c) {
                    continue;
                }
                if !appended_line_begin && (c == '\r' || c == '\n') {
                    continue;
                }
                skip_whitespace = false;
                appended_line_begin = false;
            }
            if buffer.is_empty() && (c == '#' || c == '!') {
                // A comment runs to the end of its natural line.
                while let Some(&d) = chars.get(pos) {
                    pos += 1;
                    if d == '\r' || d == '\n' {
                        break;
                    }
                }
                skip_whitespace = true;
                continue;
            }
            if c != '\n' && c != '\r' {
                start.get_or_insert(here);
                buffer.push(c);
                preceding_backslash = c == '\\' && !preceding_backslash;
                continue;
            }
            if buffer.is_empty() {
                skip_whitespace = true;
                continue;
            }
            if pos >= chars.len() {
                // A terminator ends the input: the line ends here, minus a
                // continuation backslash, even if that leaves it empty.
                if preceding_backslash {
                    buffer.pop();
                }
                break Some(buffer);
            }
            if preceding_backslash {
                // An escaped terminator: the logical line goes on.
                buffer.pop();
                skip_whitespace = true;
                appended_line_begin = true;
                preceding_backslash = false;
                skip_lf = c == '\r';
            } else {
                break Some(buffer);
            }
        };
        match logical {
            Some(buffer) => lines.push((line_at(start.unwrap_or(pos.saturating_sub(1))), buffer)),
            None => break,
        }
    }
    lines
}

/// Java's `Properties.load0`: the key ends at the first unescaped `=`, `:` or
/// blank; blanks and at most one `=`/`:` separate it from the value.
fn split_key_value(chars: &[char]) -> (&[char], &[char]) {
    let mut key_len = 0;
    let mut value_start = chars.len();
    let mut has_separator = false;
    let mut preceding_backslash = false;
    while let Some(&c) = chars.get(key_len) {
        if (c == '=' || c == ':') && !preceding_backslash {
            value_start = key_len + 1;
            has_separator = true;
            break;
        }
        if is_blank(c) && !preceding_backslash {
            value_start = key_len + 1;
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
        key_len += 1;
    }
    while let Some(&c) = chars.get(value_start) {
        if !is_blank(c) {
            if !has_separator && (c == '=' || c == ':') {
                has_separator = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    let key = chars.get(..key_len).unwrap_or(&[]);
    let value = chars.get(value_start..).unwrap_or(&[]);
    (key, value)
}

/// Java's `loadConvert`: resolves escapes. `\uXXXX` needs exactly four hex
/// digits; surrogate pairs combine, a lone surrogate becomes U+FFFD.
fn unescape(chars: &[char]) -> Result<String, String> {
    let mut units: Vec<u16> = Vec::with_capacity(chars.len());
    let mut iter = chars.iter().copied();
    while let Some(c) = iter.next() {
        let c = if c == '\\' {
            match iter.next() {
                Some('u') => {
                    let mut unit: u16 = 0;
                    for _ in 0..4 {
                        let digit = iter
                            .next()
                            .and_then(|d| d.to_digit(16))
                            .ok_or_else(|| "malformed \\uxxxx escape".to_string())?;
                        // At most four hex digits: fits in 16 bits.
                        unit = (unit << 4) | u16::try_from(digit).unwrap_or(0);
                    }
                    units.push(unit);
                    continue;
                }
                Some('t') => '\t',
                Some('r') => '\r',
                Some('n') => '\n',
                Some('f') => '\x0c',
                Some(other) => other,
                // A lone trailing backslash cannot reach here from a logical
                // line, but drop it rather than trust that.
                None => break,
            }
        } else {
            c
        };
        let mut buffer = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut buffer));
    }
    Ok(String::from_utf16_lossy(&units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[track_caller]
    fn parse(text: &str) -> Config {
        match Config::parse(text, Path::new("zoo.cfg"), "") {
            Ok(config) => config,
            Err(error) => panic!("parse failed: {error}"),
        }
    }

    #[track_caller]
    fn parse_err(text: &str, jvm_flags: &str) -> String {
        match Config::parse(text, Path::new("zoo.cfg"), jvm_flags) {
            Ok(_) => panic!("expected an error for {text:?} / {jvm_flags:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[track_caller]
    fn props(text: &str) -> Vec<(String, String)> {
        match parse_properties(text) {
            Ok(list) => list.into_iter().map(|(k, v, _)| (k, v)).collect(),
            Err(error) => panic!("properties error: {error:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MINIMAL: &str = "dataDir=/var/lib/zk\nclientPort=2181\n";

    #[test]
    fn storage_backend_defaults_to_native_and_accepts_rocksdb() {
        assert_eq!(parse(MINIMAL).storage_backend, StorageBackend::Native);
        assert_eq!(
            parse(&format!("{MINIMAL}storage.backend=rocksdb\n")).storage_backend,
            StorageBackend::RocksDb
        );
        assert_eq!(
            parse_err(&format!("{MINIMAL}storage.backend=lmdb\n"), ""),
            "zoo.cfg: invalid value \"lmdb\" for storage.backend: expected native or rocksdb"
        );
    }

    #[test]
    fn wal_io_defaults_to_pwrite_and_accepts_io_uring() {
        assert_eq!(parse(MINIMAL).wal_io, WalIo::Pwrite);
        assert_eq!(
            parse(&format!("{MINIMAL}walIo=io_uring\n")).wal_io,
            WalIo::IoUring
        );
        assert_eq!(
            parse_err(&format!("{MINIMAL}walIo=fast\n"), ""),
            "zoo.cfg: invalid value \"fast\" for walIo: expected pwrite or io_uring"
        );
    }

    #[test]
    fn properties_separators_comments_and_whitespace() {
        let text = "# comment\n! also a comment\n\n   \n  a=1\nb = 2 \nc:3\nd 4\ne\t\t:  5\nf\ng=\n h = x = y\n";
        assert_eq!(
            props(text),
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5"),
                ("f", ""),
                ("g", ""),
                ("h", "x = y")
            ])
        );
        // A separator after blanks counts once; a second one is value.
        assert_eq!(props("k = = v"), pairs(&[("k", "= v")]));
        assert_eq!(props("k  :=v"), pairs(&[("k", "=v")]));
    }

    #[test]
    fn properties_continuations() {
        assert_eq!(
            props("list = a,\\\n    b,\\\n\tc\n"),
            pairs(&[("list", "a,b,c")])
        );
        // An even number of backslashes does not continue.
        assert_eq!(props("a=x\\\\\nb=y"), pairs(&[("a", "x\\"), ("b", "y")]));
        // A comment line cannot be continued.
        assert_eq!(props("# c \\\nb=y"), pairs(&[("b", "y")]));
        // `#` at the start of a continuation is data, unless nothing came
        // before it: then it starts a comment (as in Java 9+).
        assert_eq!(props("a=1\\\n#2\n"), pairs(&[("a", "1#2")]));
        assert_eq!(props("\\\n#c\nx=1"), pairs(&[("x", "1")]));
        // A lone continuation at the very end still makes an empty property.
        assert_eq!(props("\x0c\\\r\\\n\\\r"), pairs(&[("", "")]));
        // CRLF and lone CR terminate lines; a trailing backslash at EOF is dropped.
        assert_eq!(
            props("a=1\r\nb=2\rc=3\\"),
            pairs(&[("a", "1"), ("b", "2"), ("c", "3")])
        );
        assert_eq!(props("a=1\\\r\n  2"), pairs(&[("a", "12")]));
        // A blank line after a continuation ends the logical line.
        assert_eq!(props("a=1\\\n\nb=2"), pairs(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn properties_escapes() {
        assert_eq!(props("a\\=b=c"), pairs(&[("a=b", "c")]));
        assert_eq!(props("a\\ b c"), pairs(&[("a b", "c")]));
        assert_eq!(
            props("k=\\u0041\\u00e9\\t\\x"),
            pairs(&[("k", "A\u{e9}\tx")])
        );
        assert_eq!(props("k=\\uD83D\\uDE00"), pairs(&[("k", "\u{1F600}")]));
        assert_eq!(props("k=\\uD83D"), pairs(&[("k", "\u{FFFD}")]));
        assert_eq!(
            props("dataDir=C:\\\\zk\\\\data"),
            pairs(&[("dataDir", "C:\\zk\\data")])
        );
        let error = parse_properties("a=1\nb=\\u12G4\n").expect_err("malformed escape");
        assert_eq!(
            error,
            PropertiesError {
                line: 2,
                message: "malformed \\uxxxx escape".to_string()
            }
        );
        let lines: Vec<usize> = parse_properties("# c\n\na=1\\\n 2\n\r\nb=3")
            .expect("parses")
            .iter()
            .map(|(_, _, line)| *line)
            .collect();
        assert_eq!(lines, [3, 6]);
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nx=\\u00\n", ""),
            "zoo.cfg:3: malformed \\uxxxx escape"
        );
    }

    #[test]
    fn minimal_config_gets_the_reference_defaults() {
        let config = parse(MINIMAL);
        assert_eq!(config.tick_time_ms, 3000);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/zk"));
        assert_eq!(config.data_log_dir, config.data_dir);
        assert_eq!(config.client_port, 2181);
        assert_eq!(config.client_port_address, None);
        assert_eq!(config.max_client_cnxns, 60);
        assert_eq!(
            (config.min_session_timeout_ms, config.max_session_timeout_ms),
            (6000, 60000)
        );
        assert_eq!(config.global_outstanding_limit, 1000);
        assert_eq!(config.four_letter_words, Whitelist::reference_default());
        assert!(!config.extended_types_enabled);
        assert_eq!(config.jute_max_buffer, 1_048_575);
        assert_eq!(config.super_digest, None);
        assert!(!config.read_only_mode);
        assert_eq!(config.io_threads, 0);
        assert_eq!(config.connection_outstanding_limit, 1000);
        assert_eq!(config.container_check_interval_ms, 60_000);
        assert_eq!(config.snap_count, 100_000);
        assert_eq!(config.pre_alloc_size_kb, 65_536);
        assert!(config.force_sync);
        assert_eq!(config.autopurge_snap_retain_count, 3);
        assert_eq!(config.autopurge_purge_interval_hours, 0);
        assert!(config.servers.is_empty());
        assert!(!config.is_distributed());
        assert_eq!(config.source, Some(PathBuf::from("zoo.cfg")));
        assert_eq!(
            config.entries,
            pairs(&[("dataDir", "/var/lib/zk"), ("clientPort", "2181")])
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn conf_word_lines_for_a_standalone_server() {
        let config = parse("tickTime=2000\ndataDir=/tmp/refzk/data\nclientPort=49487\n");
        let lines: Vec<String> = config
            .conf_4lw(457, 457)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // The reference's shape, observed on 3.8.0 (which shows its
        // version-2 subdirectories where we show the configured ones).
        assert_eq!(
            lines,
            [
                "clientPort=49487",
                "secureClientPort=-1",
                "dataDir=/tmp/refzk/data",
                "dataDirSize=457",
                "dataLogDir=/tmp/refzk/data",
                "dataLogSize=457",
                "tickTime=2000",
                "maxClientCnxns=60",
                "minSessionTimeout=4000",
                "maxSessionTimeout=40000",
                "clientPortListenBacklog=-1",
                "serverId=0",
            ]
        );
    }

    #[test]
    fn embedded_default_is_the_no_argument_server() {
        let config = Config::embedded_default();
        assert_eq!(config.client_port, 2181);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.tick_time_ms, 2000);
        assert_eq!((config.init_limit, config.sync_limit), (10, 5));
        assert_eq!(
            (config.min_session_timeout_ms, config.max_session_timeout_ms),
            (4000, 40000)
        );
        assert_eq!(config.source, None);
        assert!(config.entries.is_empty());
        let with_flags = Config::embedded("-Dzookeeper.4lw.commands.whitelist=*").expect("parses");
        assert_eq!(with_flags.four_letter_words, Whitelist::All);
    }

    /// /etc/zookeeper/conf/zoo.cfg as the Debian package ships it.
    const DEBIAN_ZOO_CFG: &str = "\
# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial 
# synchronization phase can take
initLimit=10
# The number of ticks that can pass between 
# sending a request and getting an acknowledgement
syncLimit=5
# the directory where the snapshot is stored.
# do not use /tmp for storage, /tmp here is just 
# example sakes.
dataDir=/tmp/zookeeper
# the port at which the clients will connect
clientPort=2181
# the maximum number of client connections.
# increase this if you need to handle more clients
#maxClientCnxns=60
#
# Be sure to read the maintenance section of the 
# administrator guide before turning on autopurge.
#
# https://zookeeper.apache.org/doc/current/zookeeperAdmin.html#sc_maintenance
#
# The number of snapshots to retain in dataDir
#autopurge.snapRetainCount=3
# Purge task interval in hours
# Set to \"0\" to disable auto purge feature
#autopurge.purgeInterval=1

## Metrics Providers
#
# https://prometheus.io Metrics Exporter
#metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
#metricsProvider.httpHost=0.0.0.0
#metricsProvider.httpPort=7000
#metricsProvider.exportJvmInfo=true
";

    #[test]
    fn debian_package_zoo_cfg() {
        let config = parse(DEBIAN_ZOO_CFG);
        assert_eq!(config.tick_time_ms, 2000);
        assert_eq!((config.init_limit, config.sync_limit), (10, 5));
        assert_eq!(config.data_dir, PathBuf::from("/tmp/zookeeper"));
        assert_eq!(config.client_port, 2181);
        assert_eq!(config.max_client_cnxns, 60);
        assert_eq!(config.entries.len(), 5);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        // The installed file, when present, must parse the same way.
        if let Ok(text) = std::fs::read_to_string("/etc/zookeeper/conf/zoo.cfg") {
            let installed = Config::parse(&text, Path::new("/etc/zookeeper/conf/zoo.cfg"), "");
            assert!(installed.is_ok(), "{:?}", installed.err());
        }
    }

    /// A typical production ensemble config (Kafka / ClickHouse deployments
    /// look like this), with a few keys this server ignores.
    const ENSEMBLE_ZOO_CFG: &str = "\
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/var/lib/zookeeper/data
dataLogDir=/var/lib/zookeeper/log
clientPort=2181
maxClientCnxns=0
minSessionTimeout=4000
maxSessionTimeout=120000
autopurge.snapRetainCount=10
autopurge.purgeInterval=24
4lw.commands.whitelist=stat, ruok, conf, isro, mntr
admin.enableServer=false
snapCount=200000
preAllocSize=131072
forceSync=yes
globalOutstandingLimit=2000
quorumListenOnAllIPs=true
standaloneEnabled=false
reconfigEnabled=false
skipACL=no
jute.maxbuffer=4194304
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
metricsProvider.httpPort=7000
server.1=zk1.example.com:2888:3888
server.2=zk2.example.com:2888:3888
server.3=zk3.example.com:2888:3888;2181
server.4=10.0.0.4:2888:3888:observer;0.0.0.0:2181
server.5=[2001:db8::5]:2888:3888:participant;[2001:db8::5]:2181
";

    #[test]
    fn typical_ensemble_zoo_cfg() {
        let mut config = parse(ENSEMBLE_ZOO_CFG);
        assert_eq!(config.data_log_dir, PathBuf::from("/var/lib/zookeeper/log"));
        assert_eq!(config.max_client_cnxns, 0);
        assert_eq!(
            (config.min_session_timeout_ms, config.max_session_timeout_ms),
            (4000, 120_000)
        );
        assert_eq!(
            (
                config.autopurge_snap_retain_count,
                config.autopurge_purge_interval_hours
            ),
            (10, 24)
        );
        assert_eq!(
            config.four_letter_words,
            Whitelist::parse("stat,ruok,conf,isro,mntr")
        );
        assert!(config.four_letter_words.allows(FourLetterWord::Srvr));
        assert!(!config.admin_enable_server);
        assert_eq!(
            (config.snap_count, config.pre_alloc_size_kb),
            (200_000, 131_072)
        );
        assert_eq!(config.global_outstanding_limit, 2000);
        assert!(config.quorum_listen_on_all_ips && !config.standalone_enabled && !config.skip_acl);
        // jute.maxbuffer in zoo.cfg does nothing in the reference either.
        assert_eq!(config.jute_max_buffer, 1_048_575);
        assert!(config
            .warnings
            .iter()
            .any(|w| w.contains("jute.maxbuffer") && w.contains("SERVER_JVMFLAGS")));
        assert!(config
            .warnings
            .iter()
            .any(|w| w.contains("ignoring authProvider.1")));
        assert_eq!(
            config.metrics_provider_class.as_deref(),
            Some("org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider")
        );
        assert_eq!(
            config.metrics_provider.get("httpPort").map(String::as_str),
            Some("7000")
        );

        assert_eq!(config.servers.len(), 5);
        assert_eq!(
            config.servers[&1],
            ServerSpec {
                id: 1,
                addresses: vec![PeerAddress {
                    host: "zk1.example.com".to_string(),
                    quorum_port: 2888,
                    election_port: 3888
                }],
                role: LearnerRole::Participant,
                client: None,
            }
        );
        assert_eq!(
            config.servers[&3].client,
            Some(("0.0.0.0".to_string(), 2181))
        );
        assert_eq!(config.servers[&4].role, LearnerRole::Observer);
        assert_eq!(config.servers[&5].addresses[0].host, "2001:db8::5");
        assert_eq!(
            config.servers[&5].client,
            Some(("2001:db8::5".to_string(), 2181))
        );
        assert!(config.is_distributed());

        // myid 4: the observer, whose line gives the client address.
        config.apply_my_id(Some(4)).expect("myid 4 applies");
        assert_eq!(config.peer_type, LearnerRole::Observer);
        assert_eq!(
            (config.client_port, config.client_port_address),
            (2181, None)
        );
        let conf = config.conf_4lw(457, 458);
        let keys: Vec<&str> = conf.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "clientPort",
                "secureClientPort",
                "dataDir",
                "dataDirSize",
                "dataLogDir",
                "dataLogSize",
                "tickTime",
                "maxClientCnxns",
                "minSessionTimeout",
                "maxSessionTimeout",
                "clientPortListenBacklog",
                "serverId",
                "initLimit",
                "syncLimit",
                "electionAlg",
                "electionPort",
                "quorumPort",
                "peerType"
            ]
        );
        let value = |key: &str| conf.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(value("serverId").as_deref(), Some("4"));
        assert_eq!(value("electionPort").as_deref(), Some("3888"));
        assert_eq!(value("peerType").as_deref(), Some("1"));
        assert_eq!(
            value("dataLogDir").as_deref(),
            Some("/var/lib/zookeeper/log")
        );

        let mut missing = parse(ENSEMBLE_ZOO_CFG);
        let error = missing
            .apply_my_id(None)
            .expect_err("distributed needs myid");
        assert!(
            error.to_string().contains("myid file is missing"),
            "{error}"
        );
        let error = missing.apply_my_id(Some(9)).expect_err("unknown id");
        assert_eq!(
            error.to_string(),
            "zoo.cfg: myid 9 is not in the server.N list"
        );
    }

    #[test]
    fn client_address_from_the_server_line_must_agree() {
        let text = "dataDir=/d\ninitLimit=5\nsyncLimit=2\nclientPort=2182\n\
                    server.1=a:1:2;2181\nserver.2=b:1:2\nserver.3=c:1:2\n";
        let mut config = parse(text);
        let error = config.apply_my_id(Some(1)).expect_err("ports differ");
        assert!(
            error
                .to_string()
                .contains("client address for this server (id = 1)"),
            "{error}"
        );

        let text = "dataDir=/d\ninitLimit=5\nsyncLimit=2\n\
                    server.1=a:1:2;127.0.0.1:2181\nserver.2=b:1:2\nserver.3=c:1:2\n";
        let mut config = parse(text);
        assert_eq!(
            config.client_port, 0,
            "no clientPort needed in a quorum config"
        );
        config.apply_my_id(Some(1)).expect("applies");
        assert_eq!(config.client_port, 2181);
        assert_eq!(
            config.client_port_address,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        let mut config = parse(text);
        let error = config
            .apply_my_id(Some(2))
            .expect_err("server 2 has no client port");
        assert_eq!(error.to_string(), "zoo.cfg: clientPort is not set");
    }

    #[test]
    fn single_server_line_runs_standalone() {
        let mut config = parse("dataDir=/d\nclientPort=2181\nserver.1=localhost:2888:3888\n");
        assert!(!config.is_distributed());
        assert!(config
            .warnings
            .iter()
            .any(|w| w.contains("only one server")));
        config.apply_my_id(None).expect("standalone needs no myid");
        let config = parse("dataDir=/d\nclientPort=2181\nstandaloneEnabled=false\ninitLimit=5\nsyncLimit=2\nserver.1=localhost:2888:3888\n");
        assert!(config.is_distributed());
    }

    #[test]
    fn server_line_errors() {
        let base = "dataDir=/d\nclientPort=2181\ninitLimit=5\nsyncLimit=2\nserver.2=b:1:2\nserver.3=c:1:2\n";
        let check = |line: &str, expected: &str| {
            let error = parse_err(&format!("{base}{line}\n"), "");
            assert!(error.contains(expected), "{line}: {error}");
        };
        check(
            "server.1=a:2888",
            "for server.1: expected host:quorumPort:electionPort",
        );
        check(
            "server.1=a:2888:3888:observer:x",
            "expected host:quorumPort",
        );
        check("server.1=a:2888:3888;x:1:2", "expected host:quorumPort");
        check("server.1=a:2888:3888;1;2", "expected host:quorumPort");
        check("server.1=a:x:3888", "expected port numbers");
        check("server.1=a:70000:3888", "expected port numbers");
        check(
            "server.1=a:2888:2888",
            "quorum port and the election port must be different",
        );
        check("server.1=a:2888:3888:leader", "observer or participant");
        check("server.1=a:2888:3888;abc", "expected a client port number");
        check("server.x=a:2888:3888", "non-negative server id");
        check("server.-1=a:2888:3888", "non-negative server id");
        check("server.1=[::1:2888:3888", "expected host:quorumPort");
        check("server.1=[::1]:", "expected host:quorumPort");
        check("server.1=a:1:2|b:3:4", "multiAddress.enabled=true");
        check("group.1=1:2:3", "hierarchical quorums");
        check("server.1=:2888:3888", "expected host:quorumPort");
        let config = parse(&format!(
            "{base}multiAddress.enabled=true\nserver.1=a:1:2|b:3:4:participant\n"
        ));
        assert_eq!(config.servers[&1].addresses.len(), 2);
        let error = parse_err(
            &format!(
                "{base}multiAddress.enabled=true\nserver.1=a:1:2:observer|b:3:4:participant\n"
            ),
            "",
        );
        assert!(error.contains("same role"), "{error}");
        // Trailing empty fields vanish as in Java's split.
        let config = parse(&format!("{base}server.1=a:1:2:;\n"));
        assert_eq!(config.servers[&1].client, None);
    }

    #[test]
    fn quorum_validation() {
        let error = parse_err(
            "dataDir=/d\nclientPort=1\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n",
            "",
        );
        assert_eq!(error, "zoo.cfg: initLimit is not set");
        let error = parse_err(
            "dataDir=/d\nclientPort=1\ninitLimit=1\nserver.1=a:1:2\nserver.2=b:1:2\n",
            "",
        );
        assert_eq!(error, "zoo.cfg: syncLimit is not set");
        let error = parse_err("dataDir=/d\nclientPort=1\nserver.1=a:1:2:observer\n", "");
        assert!(error.contains("observers without participants"), "{error}");
        let error = parse_err(
            "dataDir=/d\nclientPort=1\nserver.1=a:1:2\nserver.2=a:3:4:observer\n",
            "",
        );
        assert!(error.contains("observers without a quorum"), "{error}");
        let config = parse(
            "dataDir=/d\nclientPort=1\ninitLimit=1\nsyncLimit=1\nserver.1=a:1:2\nserver.2=b:1:2\n",
        );
        assert!(config
            .warnings
            .iter()
            .any(|w| w.contains("no server failure will be tolerated")));
        let error = parse_err(
            "dataDir=/d\nclientPort=1\ndynamicConfigFile=/d/zoo.cfg.dynamic\nserver.1=a:1:2\n",
            "",
        );
        assert!(
            error.contains("server.1 must be in the separate dynamic config file"),
            "{error}"
        );
    }

    #[test]
    fn dynamic_config_file() {
        let mut config = parse("dataDir=/d\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile=/d/zoo.cfg.dynamic.100000000\n");
        assert_eq!(
            config.dynamic_config_file,
            Some(PathBuf::from("/d/zoo.cfg.dynamic.100000000"))
        );
        let path = Path::new("zoo.cfg.dynamic");
        config
            .apply_dynamic("server.1=a:2888:3888;2181\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888;2181\nversion=100000000\n", path)
            .expect("dynamic applies");
        assert_eq!(config.servers.len(), 3);
        assert_eq!(config.config_version, Some(0x1_0000_0000));
        config.apply_my_id(Some(2)).expect("myid applies");
        assert_eq!(config.client_port, 2181);
        let error = config
            .apply_dynamic("tickTime=2000\n", path)
            .expect_err("only servers");
        assert_eq!(
            error.to_string(),
            "zoo.cfg.dynamic: unrecognised parameter tickTime in a dynamic config file"
        );
        let error = config
            .apply_dynamic("version=xyz\n", path)
            .expect_err("hex version");
        assert_eq!(
            error.to_string(),
            "zoo.cfg.dynamic: invalid value \"xyz\" for version: expected a hexadecimal version"
        );
    }

    #[test]
    fn invalid_values_name_the_file_key_and_value() {
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=2181\ntickTime=abc\n", ""),
            "zoo.cfg: invalid value \"abc\" for tickTime: expected a positive integer"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=2181\ntickTime=0\n", ""),
            "zoo.cfg: invalid value \"0\" for tickTime: expected a positive integer"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=70000\n", ""),
            "zoo.cfg: invalid value \"70000\" for clientPort: expected a port number (1-65535)"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=-1\n", ""),
            "zoo.cfg: invalid value \"-1\" for clientPort: expected a port number (1-65535)"
        );
        assert_eq!(
            parse_err("clientPort=2181\n", ""),
            "zoo.cfg: dataDir is not set"
        );
        assert_eq!(
            parse_err("dataDir=/d\n", ""),
            "zoo.cfg: clientPort is not set"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPortAddress=127.0.0.1\n", ""),
            "zoo.cfg: clientPortAddress is set but clientPort is not"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n", ""),
            "zoo.cfg: minSessionTimeout (5000 ms) must not be larger than maxSessionTimeout (4000 ms)"
        );
        // The default maximum is 20 ticks: a larger minimum alone is an error too.
        let error = parse_err(
            "dataDir=/d\nclientPort=1\ntickTime=100\nminSessionTimeout=5000\n",
            "",
        );
        assert!(
            error.contains("must not be larger than maxSessionTimeout (2000 ms)"),
            "{error}"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nminSessionTimeout=-2\n", ""),
            "zoo.cfg: invalid value \"-2\" for minSessionTimeout: expected a timeout in milliseconds, or -1 for the default"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nsyncEnabled=yes\n", ""),
            "zoo.cfg: invalid value \"yes\" for syncEnabled: expected true or false"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nelectionAlg=1\n", ""),
            "zoo.cfg: invalid value \"1\" for electionAlg: expected 3 (the only election algorithm)"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\npeerType=leader\n", ""),
            "zoo.cfg: invalid value \"leader\" for peerType: expected observer or participant"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nclientPortAddress=no.such.host.invalid\n", ""),
            "zoo.cfg: invalid value \"no.such.host.invalid\" for clientPortAddress: expected an IP address or a resolvable host name"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nglobalOutstandingLimit=0\n", ""),
            "zoo.cfg: invalid value \"0\" for globalOutstandingLimit: expected a positive integer"
        );
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\ntickTime=99999999999\n", ""),
            "zoo.cfg: invalid value \"99999999999\" for tickTime: expected a positive integer"
        );
        assert_eq!(
            parse_err("dataDir=\nclientPort=1\n", ""),
            "zoo.cfg: invalid value \"\" for dataDir: expected a directory path"
        );
    }

    #[test]
    fn session_timeouts_and_lenient_reference_values() {
        let config = parse(
            "dataDir=/d\nclientPort=1\ntickTime=2000\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n",
        );
        assert_eq!(
            (config.min_session_timeout_ms, config.max_session_timeout_ms),
            (4000, 40000)
        );
        let config = parse("dataDir=/d\nclientPort=1\ntickTime=2147483647\n");
        assert_eq!(
            config.max_session_timeout_ms,
            i32::MAX as u32,
            "defaults saturate at i32::MAX"
        );
        let config = parse("dataDir=/d\nclientPort=1\nmaxClientCnxns=-5\nautopurge.snapRetainCount=1\nautopurge.purgeInterval=-1\nsnapCount=1\n");
        assert_eq!(config.max_client_cnxns, 0);
        assert_eq!(config.autopurge_snap_retain_count, 3);
        assert_eq!(config.autopurge_purge_interval_hours, 0);
        assert_eq!(config.snap_count, 2);
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        let config = parse("dataDir=/d\nclientPort=1\nclientPortAddress=0.0.0.0\n");
        assert_eq!(config.client_port_address, None);
        let config = parse("dataDir=/d\nclientPort=1\nclientPortAddress=::1\n");
        assert_eq!(config.client_port_address, Some("::1".parse().expect("ip")));
        let config = parse("dataDir=/d\nclientPort=1\nclientPortAddress=localhost\n");
        assert!(config.client_port_address.is_some_and(|a| a.is_loopback()));
    }

    #[test]
    fn unknown_keys_are_warned_once_and_ignored() {
        let config = parse(&format!(
            "{MINIMAL}fooBar=1\nfooBar=2\nsecureClientPort=2281\nserverCnxnFactory=x\n"
        ));
        assert_eq!(
            config.warnings,
            [
                "zoo.cfg: ignoring fooBar: not supported by this server",
                "zoo.cfg: ignoring secureClientPort: not supported by this server",
                "zoo.cfg: ignoring serverCnxnFactory: not supported by this server",
            ]
        );
        assert_eq!(
            config.entries.iter().filter(|(k, _)| k == "fooBar").count(),
            1
        );
        assert!(config
            .entries
            .contains(&("fooBar".to_string(), "2".to_string())));
    }

    #[test]
    fn jvm_flags_set_system_properties() {
        let flags = "-Xmx512m -XX:+UseG1GC -Dzookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU= \
                     -Dreadonlymode.enabled=true -Djute.maxbuffer=4194304 -Dzookeeper.extendedTypesEnabled=TRUE \
                     -Dznode.container.checkIntervalMs=1000 -Dznode.container.maxPerMinute=50 \
                     -Dzookeeper.4lw.commands.whitelist=ruok,mntr -Dzookeeper.globalOutstandingLimit=5 \
                     -Dzookeeper.nio.numSelectorThreads=3 -Dzookeeper.forceSync=no -Dzookeeper.skipACL=yes \
                     -Dzookeeper.maxCnxns=100 -Dzookeeper.snapCount=500 -Dzookeeper.admin.serverPort=9090";
        let config = Config::parse(MINIMAL, Path::new("zoo.cfg"), flags).expect("parses");
        assert_eq!(
            config.super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        assert!(config.read_only_mode);
        assert_eq!(config.jute_max_buffer, 4_194_304);
        assert!(config.extended_types_enabled);
        assert_eq!(
            (
                config.container_check_interval_ms,
                config.container_max_per_minute
            ),
            (1000, 50)
        );
        let mut expected = Whitelist::parse("ruok,mntr");
        expected.allow(FourLetterWord::Isro);
        assert_eq!(
            config.four_letter_words, expected,
            "read-only mode adds isro"
        );
        assert_eq!(config.global_outstanding_limit, 5);
        assert_eq!(config.io_threads, 3);
        assert!(!config.force_sync && config.skip_acl);
        assert_eq!(
            (
                config.max_cnxns,
                config.snap_count,
                config.admin_server_port
            ),
            (100, 500, 9090)
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn zoo_cfg_overrides_zookeeper_prefixed_flags() {
        let flags =
            "-Dzookeeper.4lw.commands.whitelist=* -Dzookeeper.snapCount=7 -Dzookeeper.ioThreads=2";
        let text = format!(
            "{MINIMAL}4lw.commands.whitelist=ruok\nioThreads=4\nconnectionOutstandingLimit=50\n"
        );
        let config = Config::parse(&text, Path::new("zoo.cfg"), flags).expect("parses");
        assert_eq!(config.four_letter_words, Whitelist::parse("ruok"));
        assert_eq!(
            config.snap_count, 7,
            "the flag applies where the file is silent"
        );
        assert_eq!(config.io_threads, 4);
        assert_eq!(config.connection_outstanding_limit, 50);
        // ioThreads wins over the reference's selector-thread property.
        let config = Config::parse(
            &format!("{MINIMAL}ioThreads=0\n"),
            Path::new("zoo.cfg"),
            "-Dzookeeper.nio.numSelectorThreads=6",
        )
        .expect("parses");
        assert_eq!(config.io_threads, 0);
    }

    // Review 1.4 / 1.5: the per-request bounds are our keys, read from
    // zoo.cfg or -Dzookeeper.* flags, and reach the engine's limits.
    #[test]
    fn request_bounds_default_parse_and_validate() {
        let config = parse(MINIMAL);
        assert_eq!(
            (config.read_limits(), config.prep_limits()),
            (
                ReadLimits {
                    max_response_bytes: 16 * 1024 * 1024,
                    max_multi_ops: 10_000
                },
                PrepLimits {
                    max_multi_ops: 10_000,
                    max_acl_entries: 1024
                }
            )
        );
        let config = parse(&format!(
            "{MINIMAL}maxResponseBytes=2000000\nmaxMultiOps=50\nmaxAclEntries=8\n"
        ));
        assert_eq!(
            (config.read_limits(), config.prep_limits()),
            (
                ReadLimits {
                    max_response_bytes: 2_000_000,
                    max_multi_ops: 50
                },
                PrepLimits {
                    max_multi_ops: 50,
                    max_acl_entries: 8
                }
            )
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let config = Config::parse(
            MINIMAL,
            Path::new("zoo.cfg"),
            "-Dzookeeper.maxMultiOps=7 -Djute.maxbuffer=33554432",
        )
        .expect("parses");
        assert_eq!(config.max_multi_ops, 7);
        assert_eq!(
            config.max_response_bytes,
            33_554_432 + 88,
            "the default budget follows a raised jute.maxbuffer"
        );
        assert_eq!(
            parse_err(&format!("{MINIMAL}maxResponseBytes=1048662\n"), ""),
            "zoo.cfg: invalid value \"1048662\" for maxResponseBytes: expected a number of \
             bytes of at least jute.maxbuffer + 88 (1048663), so that the largest node can be \
             read back"
        );
        assert_eq!(
            parse(&format!("{MINIMAL}maxResponseBytes=1048663\n")).max_response_bytes,
            1048663
        );
        assert_eq!(
            parse_err(&format!("{MINIMAL}maxMultiOps=0\n"), ""),
            "zoo.cfg: invalid value \"0\" for maxMultiOps: expected a positive number of ops"
        );
        assert_eq!(
            parse_err(MINIMAL, "-Dzookeeper.maxAclEntries=-1"),
            "SERVER_JVMFLAGS/JVMFLAGS: invalid value \"-1\" for -Dzookeeper.maxAclEntries: \
             expected a positive number of entries"
        );
    }

    #[test]
    fn jvm_flag_errors_and_lenient_booleans() {
        let error =
            Config::parse(MINIMAL, Path::new("zoo.cfg"), "-Djute.maxbuffer=abc").expect_err("bad");
        assert_eq!(
            error.to_string(),
            "SERVER_JVMFLAGS/JVMFLAGS: invalid value \"abc\" for -Djute.maxbuffer: expected a positive number of bytes"
        );
        let error = parse_err(
            &format!("{MINIMAL}snapCount=many\n"),
            "-Dzookeeper.snapCount=5",
        );
        assert_eq!(
            error,
            "zoo.cfg: invalid value \"many\" for snapCount: expected a non-negative integer"
        );
        let error = parse_err(
            MINIMAL,
            "-Dzookeeper.DigestAuthenticationProvider.superDigest=nocolon",
        );
        assert!(error.contains("super:<base64 SHA-1 digest>"), "{error}");
        let config = Config::parse(
            MINIMAL,
            Path::new("zoo.cfg"),
            "-Dreadonlymode.enabled=yes -Dzookeeper.forceSync=false",
        )
        .expect("parses");
        assert!(!config.read_only_mode);
        assert!(
            config.force_sync,
            "only \"no\" disables fsync, as in the reference"
        );
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        // Only the exact "true" whitelists isro, though any case enables read-only mode.
        let config = Config::parse(MINIMAL, Path::new("zoo.cfg"), "-Dreadonlymode.enabled=TRUE")
            .expect("parses");
        assert!(config.read_only_mode);
        assert!(!config.four_letter_words.allows(FourLetterWord::Isro));
        // zoo.cfg's extendedTypesEnabled maps to the property.
        let config = parse(&format!("{MINIMAL}extendedTypesEnabled=true\n"));
        assert!(config.extended_types_enabled);
        // The whitelist warns about names it does not know.
        let config = parse(&format!(
            "{MINIMAL}4lw.commands.whitelist=ruok, RUOK, stats\n"
        ));
        assert_eq!(config.warnings, ["zoo.cfg: 4lw.commands.whitelist names unknown commands RUOK, stats; they are ignored"]);
    }

    #[test]
    fn jvm_flags_word_splitting() {
        let flags = parse_jvm_flags(
            " -Da=1  -Db=\"two words\" '-Dc=single quoted' -Dd=\"x\\\"y\" -De=un\\ quoted -Df -D -Dg=\"\" -Dh='a\"b' -Di=\"unterminated",
        );
        assert_eq!(
            flags,
            pairs(&[
                ("a", "1"),
                ("b", "two words"),
                ("c", "single quoted"),
                ("d", "x\"y"),
                ("e", "un quoted"),
                ("f", ""),
                ("g", ""),
                ("h", "a\"b"),
                ("i", "unterminated"),
            ])
        );
        assert_eq!(
            parse_jvm_flags("-Dk=a=b -Dk=c"),
            pairs(&[("k", "a=b"), ("k", "c")])
        );
        assert_eq!(shell_words("a\\"), ["a\\"]);
        // A quoted superDigest (base64 may end in '=') survives intact.
        let config = Config::parse(
            MINIMAL,
            Path::new("zoo.cfg"),
            "-Dzookeeper.DigestAuthenticationProvider.superDigest=\"super:uBk8GjcZ+Ob1nR3VvqS3RLQ5NkI=\"",
        )
        .expect("parses");
        assert_eq!(
            config.super_digest.as_deref(),
            Some("super:uBk8GjcZ+Ob1nR3VvqS3RLQ5NkI=")
        );
        // Later definitions win.
        let config = Config::parse(
            MINIMAL,
            Path::new("zoo.cfg"),
            "-Djute.maxbuffer=10 -Djute.maxbuffer=20",
        )
        .expect("parses");
        assert_eq!(config.jute_max_buffer, 20);
    }

    #[test]
    fn load_reads_the_file_myid_and_the_dynamic_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("myid"), "2\n").expect("myid");
        let dynamic = dir.path().join("zoo.cfg.dynamic");
        std::fs::write(
            &dynamic,
            "server.1=a:1:2;2181\nserver.2=b:1:2;2182\nserver.3=c:1:2;2183\n",
        )
        .expect("dynamic");
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile={}\n",
                data.display(),
                dynamic.display()
            ),
        )
        .expect("cfg");
        let config = Config::load(&cfg).expect("loads");
        assert_eq!(config.my_id, Some(2));
        assert_eq!(config.client_port, 2182);
        assert_eq!(config.source, Some(cfg.clone()));

        std::fs::write(data.join("myid"), "two\n").expect("myid");
        let error = Config::load(&cfg).expect_err("bad myid");
        assert!(
            error
                .to_string()
                .ends_with("invalid value \"two\" for myid: expected a non-negative server id"),
            "{error}"
        );

        let missing = dir.path().join("nope.cfg");
        let error = Config::load(&missing).expect_err("missing file");
        assert!(matches!(error, ConfigError::Io { .. }));
        assert!(error
            .to_string()
            .starts_with(&missing.display().to_string()));

        // ISO-8859-1 bytes (what Java assumes) are read, not rejected.
        std::fs::write(&cfg, b"dataDir=/tmp/caf\xe9\nclientPort=2181\n").expect("latin-1");
        let config = Config::load(&cfg).expect("loads");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/caf\u{e9}"));
        assert_eq!(read_my_id(&dir.path().join("none")).expect("no myid"), None);
    }

    #[test]
    fn java_split_and_host_and_port() {
        assert_eq!(java_split("a:b::", ':'), ["a", "b"]);
        assert_eq!(java_split("", ':'), Vec::<String>::new());
        assert_eq!(
            host_and_port("[::1]:1:2"),
            Some(vec!["::1".to_string(), "1".to_string(), "2".to_string()])
        );
        assert_eq!(host_and_port("[::1]"), Some(vec!["::1".to_string()]));
        assert_eq!(host_and_port("[::1]x"), None);
        assert_eq!(host_and_port("[::1"), None);
    }

    proptest! {
        /// Garbage never panics: any text, any flags.
        #[test]
        fn parse_never_panics(text in any::<String>(), flags in any::<String>()) {
            let _ = Config::parse(&text, Path::new("zoo.cfg"), &flags);
            let _ = parse_properties(&text);
        }

        /// Line-shaped garbage reaches deeper: known keys with random values.
        #[test]
        fn known_keys_with_random_values_never_panic(
            lines in proptest::collection::vec(
                (
                    prop_oneof![
                        Just("tickTime"), Just("clientPort"), Just("dataDir"), Just("server.1"),
                        Just("server.2"), Just("minSessionTimeout"), Just("maxSessionTimeout"),
                        Just("4lw.commands.whitelist"), Just("clientPortAddress"), Just("initLimit"),
                        Just("snapCount"), Just("peerType"), Just("standaloneEnabled"), Just("version"),
                        Just("maxClientCnxns"), Just("dynamicConfigFile"), Just("multiAddress.enabled"),
                    ],
                    "[ -~]{0,40}",
                ),
                0..12,
            ),
            my_id in proptest::option::of(0u64..4),
        ) {
            let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            if let Ok(mut config) = Config::parse(&text, Path::new("zoo.cfg"), "") {
                let _ = config.apply_my_id(my_id);
                let _ = config.conf_4lw(0, 0);
                let _ = config.apply_dynamic(&text, Path::new("dyn"));
            }
        }

        /// Properties round trip: escaped keys and values read back as written.
        #[test]
        fn escaped_properties_round_trip(key in "[a-zA-Z0-9.=: #!\\\\]{1,12}", value in "[ -~]{0,20}") {
            let escape = |text: &str, is_key: bool| -> String {
                let mut out = String::new();
                for (i, c) in text.chars().enumerate() {
                    match c {
                        '\\' | '=' | ':' | '#' | '!' => { out.push('\\'); out.push(c); }
                        ' ' if is_key || i == 0 => { out.push('\\'); out.push(c); }
                        c => out.push(c),
                    }
                }
                out
            };
            let line = format!("{}={}\n", escape(&key, true), escape(&value, false));
            let parsed = parse_properties(&line).expect("escaped text parses");
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(&parsed[0].0, java_trim(&key));
            prop_assert_eq!(&parsed[0].1, java_trim(&value));
        }
    }
}
