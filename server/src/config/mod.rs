//! zoo.cfg: Apache ZooKeeper's configuration file (Java properties syntax),
//! plus the Java system properties (`-Dname=value` words in `SERVER_JVMFLAGS`
//! and `JVMFLAGS`) that zkServer.sh users and container images set, read
//! into one [`Config`].
//!
//! This module is the composition: [`Config`] itself, loading (zoo.cfg, the
//! dynamic config file, `myid`) and the checks that span the parts. Each
//! part depends only on parts listed before it (the last two also on
//! [`Config`]):
//! - `error`: [`ConfigError`], shared by all;
//! - [`ensemble`]: the `server.N` list, peer types, ports and `myid`, for
//!   the quorum wiring;
//! - `properties`: the Java `.properties` lexer;
//! - `jvm_flags`: the `-D` words of the JVM command line;
//! - `keys`: the zoo.cfg key table, every key's default and precedence;
//! - `conf`: rendering for the `conf` four-letter word.
//!
//! This is not the server: it only reads text into a [`Config`]. The file
//! and flags are untrusted input; parsing never panics, and a bad value is a
//! [`ConfigError`] naming the file, the key and the value. Keys this server
//! does not implement are warned about once and ignored, so existing configs
//! load.

mod conf;
pub mod ensemble;
mod error;
mod jvm_flags;
mod keys;
mod properties;
pub mod reconfig;

pub use ensemble::{read_my_id, LearnerRole, ServerSpec};
pub use error::ConfigError;
pub use jvm_flags::{jvm_flags_from_env, parse_jvm_flags};
pub use properties::parse_properties;

use engine::prep::PrepLimits;
use engine::read::ReadLimits;
use error::{read_text, Setting};
use net::fourlw::Whitelist;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// How the write-ahead log writes and syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalIo {
    Pwrite,
    IoUring,
}

/// SASL and authentication enforcement, as the reference reads them from
/// system properties (zoo.cfg keys become `zookeeper.<key>`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SaslConfig {
    /// `-Djava.security.auth.login.config`: the JAAS file, read by
    /// [`Config::load`] into `settings.login`.
    pub jaas_file: Option<PathBuf>,
    /// `zookeeper.sasl.serverconfig`: the JAAS section (default `Server`).
    pub login_context: Option<String>,
    /// `zookeeper.authProvider.<key>` (`authProvider.<key>` in zoo.cfg): the
    /// provider classes by key.
    pub auth_providers: BTreeMap<String, String>,
    /// What the reactor enforces: `zookeeper.allowSaslFailedClients`,
    /// `zookeeper.enforce.auth.enabled` + `.schemes` (or
    /// `zookeeper.sessionRequireClientSASLAuth`), `zookeeper.superUser*`,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`.
    pub settings: net::sasl::SaslSettings,
}

/// Which storage backend keeps the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageBackend {
    /// The write-ahead log plus snapshot files.
    Native,
    /// A RocksDB database in `<dataDir>/rocksdb`.
    RocksDb,
}

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
    /// `secureClientPort`: the TLS client port, beside or instead of
    /// `clientPort`; 0 = none.
    pub secure_client_port: u16,
    /// `secureClientPortAddress`; `None` binds every interface.
    pub secure_client_port_address: Option<IpAddr>,
    /// The secure port's `ssl.*` keys, the x509 provider and its super user.
    pub tls: net::tls::TlsOptions,
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
    /// SASL (DIGEST-MD5 from a JAAS file) and `enforce.auth.*`.
    pub sasl: SaslConfig,
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
    /// `readConsistency` (ours): `sequential` (default, ZooKeeper's reads)
    /// or `linearizable` (true here): in an ensemble every read reflects
    /// every write committed before it arrived.
    pub linearizable_reads: bool,
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
    /// `zookeeper.admin.idleTimeout` (ms, default 30000): how long an
    /// AdminServer connection may stay silent.
    pub admin_idle_timeout_ms: u32,
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

/// The configuration of the no-argument server: the reference's sample
/// zoo.cfg values, with the Prometheus endpoint on (the reference's sample
/// has it commented out) so that `curl localhost:7000/metrics` answers.
pub const EMBEDDED_ZOO_CFG: &str =
    "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=./data\nclientPort=2181\n\
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
metricsProvider.httpPort=7000\n";

/// Where the Prometheus endpoint listens (`metricsProvider.httpHost`,
/// `metricsProvider.httpPort`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusEndpoint {
    pub host: String,
    pub port: u16,
}

impl Config {
    /// The Prometheus endpoint, when `metricsProvider.className` names the
    /// reference's Prometheus provider. The reference's other providers
    /// (the default, the null one) export nothing over HTTP: `None`.
    pub fn prometheus_endpoint(&self) -> Result<Option<PrometheusEndpoint>, ConfigError> {
        if self.metrics_provider_class.as_deref().map(str::trim)
            != Some("org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider")
        {
            return Ok(None);
        }
        let origin = self.source.as_ref().map_or_else(
            || "<embedded default>".to_string(),
            |p| p.display().to_string(),
        );
        let host = self
            .metrics_provider
            .get("httpHost")
            .map_or("0.0.0.0", |host| host.trim())
            .to_string();
        let port = match self.metrics_provider.get("httpPort") {
            None => 7000,
            Some(text) => text
                .trim()
                .parse::<u16>()
                .map_err(|_| ConfigError::Invalid {
                    origin,
                    message: format!("metricsProvider.httpPort: {text:?} is not a port number"),
                })?,
        };
        Ok(Some(PrometheusEndpoint { host, port }))
    }

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

    /// The no-argument server (`embedded_default`) with JVM flags applied (pass
    /// [`jvm_flags_from_env`] so that `-D` settings work without a zoo.cfg).
    pub fn embedded(jvm_flags: &str) -> Result<Config, ConfigError> {
        let mut config =
            Config::parse(EMBEDDED_ZOO_CFG, Path::new("<embedded default>"), jvm_flags)?;
        config.source = None;
        config.entries.clear();
        config.load_jaas()?;
        Ok(config)
    }

    /// Reads `path`, the dynamic config file it names (if any) and
    /// `dataDir/myid`, with JVM flags from `SERVER_JVMFLAGS` and `JVMFLAGS`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path)?;
        let mut config = Config::parse(&text, path, &jvm_flags_from_env())?;
        config.load_jaas()?;
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
        let entries = read_entries(text, &origin)?;
        let mut config = keys::defaults();
        config.source = Some(source.to_path_buf());
        config.entries = entries.clone();
        let server_lines = keys::read_keys(&mut config, &origin, &entries, jvm_flags)?;

        if config.dynamic_config_file.is_some() && !server_lines.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.clone(),
                message: format!(
                    "{} must be in the separate dynamic config file named by dynamicConfigFile",
                    server_lines[0].0
                ),
            });
        }
        let multi = config.multi_address_enabled;
        config.servers = ensemble::parse_servers(&origin, &server_lines, multi)?;
        config.validate_quorum(&origin)?;
        // A quorum member may take its client port from its server.N line
        // (here or in the dynamic file), known only once myid is read.
        if config.servers.is_empty()
            && config.dynamic_config_file.is_none()
            && config.client_port == 0
            && config.secure_client_port == 0
        {
            return Err(ConfigError::Missing {
                origin,
                key: "clientPort".to_string(),
            });
        }
        Ok(config)
    }

    /// Reads the JAAS file `-Djava.security.auth.login.config` names, if
    /// any, and takes the login from its `zookeeper.sasl.serverconfig`
    /// section (default `Server`). As in the reference, a file without
    /// that section leaves SASL off; a file that cannot be read or parsed
    /// stops start-up, naming the file and line.
    pub fn load_jaas(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.sasl.jaas_file.clone() else {
            return Ok(());
        };
        let section_name = self.sasl.login_context.as_deref().unwrap_or("Server");
        let origin = path.display().to_string();
        let text = read_text(&path)?;
        let sections = crate::jaas::parse(&text, &origin)?;
        let Some(section) = sections.iter().find(|s| s.name == section_name) else {
            tracing::info!(file = %origin, section = section_name,
                "the JAAS file has no such section; SASL authentication is off");
            return Ok(());
        };
        let login = crate::jaas::server_login(section, &origin);
        for warning in login.warnings {
            tracing::warn!("{warning}");
            self.warnings.push(warning);
        }
        if let net::sasl::Login::Digest(users) = &login.login {
            tracing::info!(file = %origin, section = section_name, users = users.len(),
                "SASL DIGEST-MD5 logins from the JAAS file");
        }
        self.sasl.settings.login = login.login;
        Ok(())
    }

    /// Merges a dynamic config file (`server.N` lines and `version` only).
    pub fn apply_dynamic(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let origin = path.display().to_string();
        let mut server_lines = Vec::new();
        for (key, value) in read_entries(text, &origin)? {
            if key.starts_with("server.") {
                server_lines.push((key, value));
            } else if key == "version" {
                let setting = Setting {
                    origin: &origin,
                    key: key.clone(),
                    value: &value,
                };
                self.config_version = Some(ensemble::parse_hex_version(&setting)?);
            } else if key.starts_with("group") || key.starts_with("weight") {
                return Err(ensemble::hierarchical_unsupported(&origin, &key));
            } else {
                return Err(ConfigError::Invalid {
                    origin,
                    message: format!("unrecognised parameter {key} in a dynamic config file"),
                });
            }
        }
        self.servers = ensemble::parse_servers(&origin, &server_lines, self.multi_address_enabled)?;
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
                    keys::resolve_client_host(host).ok_or_else(|| ConfigError::InvalidValue {
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
        if self.client_port == 0 && self.secure_client_port == 0 {
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
        ensemble::is_distributed(&self.servers, self.standalone_enabled)
    }

    pub(crate) fn origin(&self) -> String {
        self.source.as_ref().map_or_else(
            || "<embedded default>".to_string(),
            |p| p.display().to_string(),
        )
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

    /// The reference's quorum checks on the `server.N` list, then the
    /// limits a replicated ensemble needs.
    fn validate_quorum(&mut self, origin: &str) -> Result<(), ConfigError> {
        let warning = ensemble::check_quorum(origin, &self.servers, self.standalone_enabled)?;
        if let Some(message) = warning {
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

/// zoo.cfg-syntax text as (key, value) entries, as Java's `Properties` keeps
/// them; a syntax error names `origin` and the line.
fn read_entries(text: &str, origin: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let properties = parse_properties(text).map_err(|error| ConfigError::Syntax {
        origin: origin.to_string(),
        line: error.line,
        message: error.message,
    })?;
    Ok(properties::last_value_wins(properties))
}

/// Helpers the submodules' tests share.
#[cfg(test)]
mod testing {
    use super::Config;
    use std::path::Path;

    pub(super) const MINIMAL: &str = "dataDir=/var/lib/zk\nclientPort=2181\n";

    #[track_caller]
    pub(super) fn parse(text: &str) -> Config {
        match Config::parse(text, Path::new("zoo.cfg"), "") {
            Ok(config) => config,
            Err(error) => panic!("parse failed: {error}"),
        }
    }

    #[track_caller]
    pub(super) fn parse_err(text: &str, jvm_flags: &str) -> String {
        match Config::parse(text, Path::new("zoo.cfg"), jvm_flags) {
            Ok(_) => panic!("expected an error for {text:?} / {jvm_flags:?}"),
            Err(error) => error.to_string(),
        }
    }

    pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::ensemble::PeerAddress;
    use super::testing::{parse, parse_err};
    use super::*;
    use net::fourlw::FourLetterWord;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// The JAAS file named by -Djava.security.auth.login.config gives the
    /// DIGEST-MD5 users; no Server section leaves SASL off; a malformed
    /// file stops start-up naming file and line.
    #[test]
    fn jaas_file_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let jaas = dir.path().join("jaas.conf");
        let flags = format!("-Djava.security.auth.login.config={}", jaas.display());
        let load = |text: &str| {
            std::fs::write(&jaas, text).unwrap();
            let mut config = Config::parse(testing::MINIMAL, Path::new("zoo.cfg"), &flags).unwrap();
            config.load_jaas().map(|()| config.sasl.settings.login)
        };
        let login = load("Server {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n user_bob=\"pw\";\n};\n").unwrap();
        assert!(
            matches!(login, net::sasl::Login::Digest(ref users) if users.password("bob") == Some("pw"))
        );
        assert_eq!(load("").unwrap(), net::sasl::Login::None);
        assert_eq!(
            load("Client { m required; };").unwrap(),
            net::sasl::Login::None
        );
        let error = load("Server {\n m required user_bob=\"pw\"\n}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "{}:3: expected an option key or ';', found '}}'",
                jaas.display()
            )
        );
        std::fs::remove_file(&jaas).unwrap();
        let mut config = Config::parse(testing::MINIMAL, Path::new("zoo.cfg"), &flags).unwrap();
        assert!(config
            .load_jaas()
            .unwrap_err()
            .to_string()
            .starts_with(&jaas.display().to_string()));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        assert_eq!(
            parse_err("dataDir=/d\nclientPort=1\nx=\\u00\n", ""),
            "zoo.cfg:3: malformed \\uxxxx escape"
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
        assert!(!config.warnings.iter().any(|w| w.contains("authProvider.1")));
        assert_eq!(config.sasl.auth_providers.len(), 1);
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
                "peerType",
                "membership:",
                "server.1",
                "server.2",
                "server.3",
                "server.4",
                "server.5",
                "version"
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
    }
}
