//! The zoo.cfg key table: every key's default, and how each zoo.cfg key and
//! Java system property is read into a [`Config`].
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
//! This is not the syntax (properties.rs lexes the file, jvm_flags.rs splits
//! the flags) and not the `server.N` grammar or quorum rules (ensemble.rs:
//! the lines are handed back to the caller). A bad value is a
//! [`ConfigError`] naming the file or flag, the key and the value; keys this
//! server does not implement are warned about once and ignored.

use super::ensemble::{hierarchical_unsupported, parse_hex_version, parse_role, LearnerRole};
use super::error::{ConfigError, Setting};
use super::jvm_flags::{parse_jvm_flags, JVM_FLAGS_ORIGIN};
use super::{Config, SaslConfig, StorageBackend, WalIo};
use engine::prep::{DEFAULT_MAX_ACL_ENTRIES, DEFAULT_MAX_MULTI_OPS};
use engine::read::{DEFAULT_MAX_RESPONSE_BYTES, GET_DATA_OVERHEAD_BYTES};
use net::fourlw::{FourLetterWord, Whitelist};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

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
const DEFAULT_ADMIN_IDLE_TIMEOUT_MS: u32 = 30_000;

/// Every field at the reference's default; `dataDir` empty (it is
/// required) and no client port.
pub(super) fn defaults() -> Config {
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
        secure_client_port: 0,
        secure_client_port_address: None,
        tls: net::tls::TlsOptions::default(),
        max_client_cnxns: DEFAULT_MAX_CLIENT_CNXNS,
        max_cnxns: 0,
        min_session_timeout_ms: 0,
        max_session_timeout_ms: 0,
        global_outstanding_limit: DEFAULT_GLOBAL_OUTSTANDING_LIMIT,
        four_letter_words: Whitelist::reference_default(),
        extended_types_enabled: false,
        jute_max_buffer: DEFAULT_JUTE_MAX_BUFFER,
        super_digest: None,
        sasl: SaslConfig::default(),
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
        linearizable_reads: false,
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
        admin_idle_timeout_ms: DEFAULT_ADMIN_IDLE_TIMEOUT_MS,
        metrics_provider_class: None,
        metrics_provider: BTreeMap::new(),
        source: None,
        entries: Vec::new(),
        warnings: Vec::new(),
    }
}

/// Reads zoo.cfg's `entries` (from the file `origin` names) and the
/// `-Dname=value` words of `jvm_flags` into `config`, then makes the checks
/// the reference makes once every key is read. Returns the `server.N` lines,
/// in file order, for the ensemble model.
pub(super) fn read_keys(
    config: &mut Config,
    origin: &str,
    entries: &[(String, String)],
    jvm_flags: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut builder = Builder {
        origin,
        config,
        properties: BTreeMap::new(),
        warned: BTreeSet::new(),
    };
    for (name, value) in parse_jvm_flags(jvm_flags) {
        builder
            .properties
            .insert(name, (value, PropertySource::JvmFlag));
    }
    let mut seen = FileKeys::default();
    let mut server_lines = Vec::new();
    for (key, value) in entries {
        read_file_key(&mut builder, &mut seen, &mut server_lines, key, value)?;
    }
    read_properties(&mut builder)?;
    finish_file_keys(&mut builder, &seen)?;
    Ok(server_lines)
}

/// The typed readers: a value as the reference parses it, or an error naming
/// it.
impl Setting<'_> {
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
    "zookeeper.admin.idleTimeout",
    "zookeeper.ioThreads",
    "zookeeper.connectionOutstandingLimit",
    "zookeeper.maxResponseBytes",
    "zookeeper.maxMultiOps",
    "zookeeper.maxAclEntries",
    "zookeeper.walIo",
    "zookeeper.storage.backend",
    "zookeeper.readConsistency",
    "zookeeper.sasl.serverconfig",
    "zookeeper.allowSaslFailedClients",
    "zookeeper.sessionRequireClientSASLAuth",
    "zookeeper.enforce.auth.enabled",
    "zookeeper.enforce.auth.schemes",
    "zookeeper.superUser",
    "zookeeper.SASLAuthenticationProvider.superPassword",
    "zookeeper.serverCnxnFactory",
    "zookeeper.ssl.keyStore.location",
    "zookeeper.ssl.keyStore.password",
    "zookeeper.ssl.keyStore.passwordPath",
    "zookeeper.ssl.keyStore.type",
    "zookeeper.ssl.trustStore.location",
    "zookeeper.ssl.trustStore.password",
    "zookeeper.ssl.trustStore.passwordPath",
    "zookeeper.ssl.trustStore.type",
    "zookeeper.ssl.clientAuth",
    "zookeeper.ssl.protocol",
    "zookeeper.ssl.enabledProtocols",
    "zookeeper.ssl.ciphersuites",
    "zookeeper.ssl.hostnameVerification",
    "zookeeper.ssl.authProvider",
    "zookeeper.ssl.handshakeTimeoutMillis",
    "zookeeper.X509AuthenticationProvider.superUser",
    "zookeeper.client.certReload",
];

/// Families of system properties this server reads (`authProvider.1`,
/// `superUser.2`, ...).
const HONOURED_PROPERTY_PREFIXES: &[&str] = &["zookeeper.authProvider.", "zookeeper.superUser."];

/// Properties the reference reads without the `zookeeper.` prefix: only JVM
/// flags can set them, and the same key in zoo.cfg silently does nothing there.
const JVM_ONLY_PROPERTIES: &[&str] = &[
    "jute.maxbuffer",
    "readonlymode.enabled",
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
    "java.security.auth.login.config",
];

/// The configuration being built, with the sources still at hand.
struct Builder<'a> {
    origin: &'a str,
    config: &'a mut Config,
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

/// Which directly-read keys appeared, for the checks after the loop.
#[derive(Default)]
struct FileKeys {
    data_dir: bool,
    data_log_dir: bool,
    client_port_address: Option<String>,
    secure_client_port_address: Option<String>,
    min_session_timeout: Option<u32>,
    max_session_timeout: Option<u32>,
}

/// One zoo.cfg key: the keys the reference reads by name here, anything
/// else in [`read_other_key`].
fn read_file_key(
    builder: &mut Builder<'_>,
    seen: &mut FileKeys,
    server_lines: &mut Vec<(String, String)>,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let setting = builder.file_setting(key, value);
    let config = &mut *builder.config;
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
        "secureClientPort" => {
            let port = setting.int(0, 65535, "a port number (1-65535)")?;
            config.secure_client_port =
                u16::try_from(port).map_err(|_| setting.invalid("a port number"))?;
        }
        "secureClientPortAddress" => seen.secure_client_port_address = Some(value.to_string()),
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
        // Other keys are read by family or as system properties.
        _ => return read_other_key(builder, server_lines, key, value),
    }
    Ok(())
}

/// A zoo.cfg key the reference does not read by name: a family
/// (`metricsProvider.*`, `server.N`, `group.N` / `weight.N`), a reference
/// key this server does not implement, or anything else as the system
/// property `zookeeper.<key>`.
fn read_other_key(
    builder: &mut Builder<'_>,
    server_lines: &mut Vec<(String, String)>,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    if key.starts_with("metricsProvider.") {
        let name = key.trim_start_matches("metricsProvider.");
        builder
            .config
            .metrics_provider
            .insert(name.to_string(), value.to_string());
    } else if key.starts_with("server.") {
        server_lines.push((key.to_string(), value.to_string()));
    } else if key.starts_with("group") || key.starts_with("weight") {
        return Err(hierarchical_unsupported(builder.origin, key));
    } else if UNSUPPORTED_REFERENCE_KEYS.contains(&key) {
        let message = format!(
            "{}: ignoring {key}: not supported by this server",
            builder.origin
        );
        builder.warn(key, message);
    } else {
        let name = format!("zookeeper.{key}");
        if JVM_ONLY_PROPERTIES.contains(&key) {
            let message = format!(
                "{}: ignoring {key}: as in Apache ZooKeeper it has no effect in zoo.cfg; \
                 set -D{key}={value} in SERVER_JVMFLAGS instead",
                builder.origin
            );
            builder.warn(key, message);
        } else if !HONOURED_PROPERTIES.contains(&name.as_str())
            && !HONOURED_PROPERTY_PREFIXES
                .iter()
                .any(|p| name.starts_with(p))
        {
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
    if let Some(address) = &seen.secure_client_port_address {
        if config.secure_client_port == 0 {
            return Err(ConfigError::Invalid {
                origin: origin.to_string(),
                message: "secureClientPortAddress is set but secureClientPort is not".to_string(),
            });
        }
        let setting = Setting {
            origin,
            key: "secureClientPortAddress".to_string(),
            value: address,
        };
        config.secure_client_port_address = resolve_client_host(address)
            .ok_or_else(|| setting.invalid("an IP address or a resolvable host name"))?;
    }
    if config.secure_client_port != 0 && config.tls.key_store.is_none() {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            message: "secureClientPort is set but ssl.keyStore.location is not: \
                      the TLS port needs the server's key and certificate"
                .to_string(),
        });
    }
    if config.secure_client_port != 0 && config.secure_client_port == config.client_port {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            message: format!(
                "clientPort and secureClientPort are both {}; port unification is not supported",
                config.client_port
            ),
        });
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
    if let Some(setting) = builder.property("zookeeper.readConsistency") {
        builder.config.linearizable_reads = match setting.value {
            "sequential" => false,
            "linearizable" => true,
            _ => return Err(setting.invalid("sequential or linearizable")),
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
    if let Some(setting) = builder.property("zookeeper.admin.idleTimeout") {
        builder.config.admin_idle_timeout_ms =
            setting.u32(1, "a positive number of milliseconds")?;
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
    read_sasl_properties(builder)?;
    read_tls_properties(builder)?;
    read_max_response_bytes(builder)
}

/// The connection factory classes the reference ships. Netty is the one
/// that serves `secureClientPort` there; here one reactor serves both.
const CNXN_FACTORY_CLASSES: &[&str] = &[
    "org.apache.zookeeper.server.NettyServerCnxnFactory",
    "org.apache.zookeeper.server.NIOServerCnxnFactory",
];

/// A store's `.location`, `.password` (or `.passwordPath`, which wins, as
/// in the reference) and `.type`; `None` without a location.
fn read_store(
    builder: &Builder<'_>,
    key: &'static str,
) -> Result<Option<net::tls::StoreSpec>, ConfigError> {
    let location = builder
        .property(&format!("zookeeper.{key}.location"))
        .map(|s| s.value.to_string())
        .unwrap_or_default();
    if location.is_empty() {
        return Ok(None);
    }
    let mut password = builder
        .property(&format!("zookeeper.{key}.password"))
        .map(|s| s.value.to_string())
        .unwrap_or_default();
    if let Some(setting) = builder.property(&format!("zookeeper.{key}.passwordPath")) {
        if !setting.value.is_empty() {
            let text = std::fs::read_to_string(setting.value).map_err(|error| {
                setting.invalid(&format!("a readable file holding the password ({error})"))
            })?;
            // The reference drops one trailing line separator.
            password = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_string();
        }
    }
    let mut store_type = None;
    if let Some(setting) = builder.property(&format!("zookeeper.{key}.type")) {
        if !setting.value.is_empty() {
            if net::tls::StoreType::from_name(setting.value).is_none() {
                return Err(setting.invalid("PEM, PKCS12 or JKS (BCFKS is Java-only)"));
            }
            store_type = Some(setting.value.to_string());
        }
    }
    Ok(Some(net::tls::StoreSpec {
        key,
        location: PathBuf::from(location),
        password,
        store_type,
    }))
}

/// The secure client port's `ssl.*` keys, `serverCnxnFactory`, and the x509
/// provider (`authProvider.N` naming X509AuthenticationProvider, the scheme
/// `ssl.authProvider` selects, its `superUser`).
fn read_tls_properties(builder: &mut Builder<'_>) -> Result<(), ConfigError> {
    if let Some(setting) = builder.property("zookeeper.serverCnxnFactory") {
        if !CNXN_FACTORY_CLASSES.contains(&setting.value.trim()) {
            let message = format!(
                "{}: ignoring {}={}: not a connection factory Apache ZooKeeper ships; \
                 this server's reactor serves clientPort and secureClientPort",
                setting.origin, setting.key, setting.value
            );
            builder.warn("serverCnxnFactory", message);
        }
    }
    let mut tls = net::tls::TlsOptions {
        key_store: read_store(builder, "ssl.keyStore")?,
        trust_store: read_store(builder, "ssl.trustStore")?,
        ..net::tls::TlsOptions::default()
    };
    if let Some(setting) = builder.property("zookeeper.ssl.clientAuth") {
        tls.client_auth = net::tls::ClientAuth::from_name(setting.value)
            .ok_or_else(|| setting.invalid("none, want or need"))?;
    }
    if let Some(setting) = builder.property("zookeeper.ssl.protocol") {
        tls.protocol = setting.value.trim().to_string();
    }
    let list = |value: &str| -> Vec<String> {
        value
            .split(',')
            .map(|part| part.trim().to_string())
            .filter(|part| !part.is_empty())
            .collect()
    };
    if let Some(setting) = builder.property("zookeeper.ssl.enabledProtocols") {
        tls.enabled_protocols = Some(list(setting.value));
    }
    if let Some(setting) = builder.property("zookeeper.ssl.ciphersuites") {
        tls.cipher_suites = Some(list(setting.value));
    }
    if let Some(setting) = builder.property("zookeeper.ssl.handshakeTimeoutMillis") {
        tls.handshake_timeout_ms = u64::from(setting.u32(1, "a positive number of milliseconds")?);
    }
    // Read as the reference reads it; on the server's side it only checks
    // the hostnames of quorum peers, never of clients.
    let _ = lenient_bool(builder, "zookeeper.ssl.hostnameVerification");
    if let Some(setting) = builder.property("zookeeper.ssl.authProvider") {
        if setting.value.trim() != "x509" {
            return Err(setting.invalid(
                "x509: the scheme of X509AuthenticationProvider, the only x509 provider here",
            ));
        }
    }
    tls.x509_super_user = builder
        .property("zookeeper.X509AuthenticationProvider.superUser")
        .map(|s| s.value.to_string());
    tls.reload_on_change = lenient_bool(builder, "zookeeper.client.certReload").unwrap_or(false);
    if builder.config.secure_client_port == 0 && tls.key_store.is_some() {
        let message = format!(
            "{}: ssl.keyStore.location is set but secureClientPort is not: no TLS client port is opened",
            builder.origin
        );
        builder.warn("ssl.keyStore.location", message);
    }
    if builder.config.secure_client_port != 0 {
        let crypto = net::tls::crypto(&tls).map_err(|error| ConfigError::Invalid {
            origin: builder.origin.to_string(),
            message: error.to_string(),
        })?;
        for warning in crypto.warnings {
            let message = format!("{}: {warning}", builder.origin);
            builder.warn(&warning, message);
        }
    }
    builder.config.tls = tls;
    Ok(())
}

/// Provider classes the reference ships, by the ACL scheme each serves.
const AUTH_PROVIDER_CLASSES: &[(&str, &str)] = &[
    (
        "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
        "sasl",
    ),
    (
        "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
        "x509",
    ),
    (
        "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
        "digest",
    ),
    (
        "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
        "ip",
    ),
];

/// SASL and `enforce.auth.*`, with the reference's start-up checks:
/// enforcement needs schemes, and each must have a provider (`ip` and
/// `digest` always, others through `authProvider.N`).
fn read_sasl_properties(builder: &mut Builder<'_>) -> Result<(), ConfigError> {
    if let Some(setting) = builder.property("java.security.auth.login.config") {
        builder.config.sasl.jaas_file = Some(PathBuf::from(setting.value));
    }
    if let Some(setting) = builder.property("zookeeper.sasl.serverconfig") {
        builder.config.sasl.login_context = Some(setting.value.to_string());
    }
    let mut schemes: BTreeSet<String> = ["ip", "digest"].iter().map(|s| s.to_string()).collect();
    let providers: Vec<(String, String)> = builder
        .properties
        .iter()
        .filter_map(|(name, (value, _))| {
            let key = name.strip_prefix("zookeeper.authProvider.")?;
            Some((key.to_string(), value.trim().to_string()))
        })
        .collect();
    for (key, class) in providers {
        match AUTH_PROVIDER_CLASSES.iter().find(|(c, _)| *c == class) {
            Some((_, scheme)) => {
                schemes.insert(scheme.to_string());
            }
            None => {
                // The reference logs the failed class load and goes on.
                let message = format!(
                    "{}: authProvider.{key}={class}: unknown authentication provider class; ignored",
                    builder.origin
                );
                builder.warn(&format!("authProvider.{key}"), message);
            }
        }
        builder.config.sasl.auth_providers.insert(key, class);
    }
    let allow_failed_clients =
        lenient_bool(builder, "zookeeper.allowSaslFailedClients").unwrap_or(false);
    let require_sasl =
        lenient_bool(builder, "zookeeper.sessionRequireClientSASLAuth").unwrap_or(false);
    let enforce = lenient_bool(builder, "zookeeper.enforce.auth.enabled").unwrap_or(false);
    let enforced: Vec<String> = if require_sasl {
        vec!["sasl".to_string()]
    } else if enforce {
        let listed = builder.property("zookeeper.enforce.auth.schemes");
        let origin = listed
            .as_ref()
            .map_or(builder.origin, |s| s.origin)
            .to_string();
        let listed: Vec<String> = listed
            .map(|s| s.value.split(',').map(|x| x.trim().to_string()).collect())
            .unwrap_or_default();
        if listed.is_empty() {
            return Err(ConfigError::Invalid {
                origin,
                message: "enforce.auth.enabled is true, so enforce.auth.schemes must be set"
                    .to_string(),
            });
        }
        listed
    } else {
        Vec::new()
    };
    if let Some(missing) = enforced.iter().find(|s| !schemes.contains(*s)) {
        return Err(ConfigError::Invalid {
            origin: builder.origin.to_string(),
            message: format!(
                "authentication scheme {missing} is enforced but not available (known: {}); add authProvider.N for it",
                schemes.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let super_users: Vec<String> = builder
        .properties
        .iter()
        .filter(|(name, _)| {
            name.as_str() == "zookeeper.superUser" || name.starts_with("zookeeper.superUser.")
        })
        .map(|(_, (value, _))| value.clone())
        .collect();
    let super_password = builder
        .property("zookeeper.SASLAuthenticationProvider.superPassword")
        .map(|s| s.value.to_string());
    let settings = &mut builder.config.sasl.settings;
    settings.allow_failed_clients = allow_failed_clients;
    settings.enforce_auth_schemes = enforced;
    settings.super_users = super_users;
    settings.super_password = super_password;
    Ok(())
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

/// A client host from zoo.cfg: an IP literal, or a name resolved as the
/// reference's `InetAddress.getByName` would. `0.0.0.0` (and `::`) mean every
/// interface, `None`. The outer `None` means unresolvable.
pub(super) fn resolve_client_host(host: &str) -> Option<Option<IpAddr>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{pairs, parse, parse_err, MINIMAL};
    use engine::prep::PrepLimits;
    use engine::read::ReadLimits;
    use std::path::Path;

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
    fn read_consistency_defaults_to_sequential() {
        assert!(!parse(MINIMAL).linearizable_reads);
        assert!(parse(&format!("{MINIMAL}readConsistency=linearizable\n")).linearizable_reads);
        assert!(!parse(&format!("{MINIMAL}readConsistency=sequential\n")).linearizable_reads);
        assert_eq!(
            parse_err(&format!("{MINIMAL}readConsistency=strong\n"), ""),
            "zoo.cfg: invalid value \"strong\" for readConsistency: expected sequential or linearizable"
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

    /// The secure port's keys, from zoo.cfg and from -D flags, as the
    /// reference reads them; stores are only named here (read at start).
    #[test]
    fn tls_keys_as_the_reference_reads_them() {
        let config = parse(&format!(
            "{MINIMAL}secureClientPort=2281\nsecureClientPortAddress=127.0.0.1\n\
             ssl.keyStore.location=/k/server.p12\nssl.keyStore.password=pw\n\
             ssl.trustStore.location=/k/ca.pem\nssl.clientAuth=WANT\n\
             ssl.enabledProtocols=TLSv1.3, TLSv1.2\n\
             ssl.ciphersuites=TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA\n\
             ssl.hostnameVerification=false\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n"
        ));
        assert_eq!(config.secure_client_port, 2281);
        assert_eq!(
            config.secure_client_port_address,
            Some("127.0.0.1".parse().expect("ip"))
        );
        let tls = &config.tls;
        let key_store = tls.key_store.as_ref().expect("key store");
        assert_eq!(
            (key_store.location.as_path(), key_store.password.as_str()),
            (Path::new("/k/server.p12"), "pw")
        );
        assert_eq!(
            tls.trust_store.as_ref().map(|t| t.location.clone()),
            Some(PathBuf::from("/k/ca.pem"))
        );
        assert_eq!(tls.client_auth, net::tls::ClientAuth::Want);
        assert_eq!(
            tls.enabled_protocols,
            Some(vec!["TLSv1.3".to_string(), "TLSv1.2".to_string()])
        );
        assert_eq!(
            config.warnings,
            ["zoo.cfg: ssl.ciphersuites: TLS_RSA_WITH_AES_128_CBC_SHA is not available here; skipped"]
        );
        assert_eq!(
            config.conf_4lw(0, 0)[..2],
            [
                ("clientPort".to_string(), "2181".to_string()),
                ("secureClientPort".to_string(), "2281".to_string())
            ]
        );

        // Only the secure port, its keys as -D flags, a password file.
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("pw");
        std::fs::write(&password, "from-file\n").expect("write");
        let config = Config::parse(
            "dataDir=/d\nsecureClientPort=2281\nssl.clientAuth=none\n",
            Path::new("zoo.cfg"),
            &format!(
                "-Dzookeeper.ssl.keyStore.location=/k/s.pem -Dzookeeper.ssl.keyStore.passwordPath={}",
                password.display()
            ),
        )
        .expect("parses");
        assert_eq!(config.client_port, 0);
        assert_eq!(
            config.tls.key_store.as_ref().map(|k| k.password.as_str()),
            Some("from-file")
        );
        let unused = parse(&format!("{MINIMAL}ssl.keyStore.location=/k.p12\n"));
        assert_eq!(
            unused.warnings,
            ["zoo.cfg: ssl.keyStore.location is set but secureClientPort is not: no TLS client port is opened"]
        );

        for (text, error) in [
            (
                "secureClientPort=2281\n",
                "zoo.cfg: secureClientPort is set but ssl.keyStore.location is not: \
                 the TLS port needs the server's key and certificate",
            ),
            (
                "secureClientPortAddress=127.0.0.1\n",
                "zoo.cfg: secureClientPortAddress is set but secureClientPort is not",
            ),
            (
                "ssl.clientAuth=maybe\n",
                "zoo.cfg: invalid value \"maybe\" for ssl.clientAuth: expected none, want or need",
            ),
            (
                "ssl.keyStore.location=/k\nssl.keyStore.type=P12\n",
                "zoo.cfg: invalid value \"P12\" for ssl.keyStore.type: expected PEM, PKCS12 or JKS (BCFKS is Java-only)",
            ),
            (
                "ssl.authProvider=custom\n",
                "zoo.cfg: invalid value \"custom\" for ssl.authProvider: expected x509: the scheme of X509AuthenticationProvider, the only x509 provider here",
            ),
            (
                "secureClientPort=2281\nssl.keyStore.location=/k.pem\nssl.enabledProtocols=TLSv1.1\n",
                "zoo.cfg: ssl.enabledProtocols: none of TLSv1.1 is supported: enable TLSv1.2 or TLSv1.3",
            ),
            (
                "secureClientPort=2181\nssl.keyStore.location=/k.pem\n",
                "zoo.cfg: clientPort and secureClientPort are both 2181; port unification is not supported",
            ),
        ] {
            assert_eq!(parse_err(&format!("{MINIMAL}{text}"), ""), error, "{text}");
        }
    }

    #[test]
    fn unknown_keys_are_warned_once_and_ignored() {
        let config = parse(&format!(
            "{MINIMAL}fooBar=1\nfooBar=2\nsslQuorum=true\nserverCnxnFactory=x\n"
        ));
        assert_eq!(
            config.warnings,
            [
                "zoo.cfg: ignoring fooBar: not supported by this server",
                "zoo.cfg: ignoring sslQuorum: not supported by this server",
                "zoo.cfg: ignoring serverCnxnFactory=x: not a connection factory Apache ZooKeeper ships; \
                 this server's reactor serves clientPort and secureClientPort",
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

    /// The AdminServer and Prometheus keys as the reference reads them:
    /// `admin.*` as system properties (zoo.cfg or flags), the provider's
    /// `httpHost`/`httpPort` with its defaults; a bad port is an error.
    #[test]
    fn admin_server_and_prometheus_keys() {
        let config = Config::parse(MINIMAL, Path::new("zoo.cfg"), "").expect("parses");
        assert_eq!(
            (
                config.admin_enable_server,
                config.admin_server_port,
                config.admin_idle_timeout_ms
            ),
            (true, 8080, 30_000)
        );
        assert_eq!(config.prometheus_endpoint().expect("valid"), None);
        let text = format!(
            "{MINIMAL}admin.idleTimeout=1500\nadmin.commandURL=/cmds\n\
             metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
             metricsProvider.httpPort=7001\nmetricsProvider.exportJvmInfo=false\n"
        );
        let config = Config::parse(
            &text,
            Path::new("zoo.cfg"),
            "-Dzookeeper.admin.enableServer=false",
        )
        .expect("parses");
        assert!(!config.admin_enable_server);
        assert_eq!(
            (
                config.admin_idle_timeout_ms,
                config.admin_command_url.as_str()
            ),
            (1500, "/cmds")
        );
        assert_eq!(
            config.prometheus_endpoint().expect("valid"),
            Some(super::super::PrometheusEndpoint {
                host: "0.0.0.0".to_string(),
                port: 7001
            })
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let bad = Config::parse(
            &format!("{MINIMAL}admin.idleTimeout=0\n"),
            Path::new("zoo.cfg"),
            "",
        );
        assert!(bad.is_err());
        let bad_port = Config::parse(
            &format!(
                "{MINIMAL}metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
                 metricsProvider.httpPort=70000\n"
            ),
            Path::new("zoo.cfg"),
            "",
        )
        .expect("parses");
        assert!(bad_port.prometheus_endpoint().is_err());
        let embedded = Config::embedded("").expect("parses");
        assert_eq!(
            embedded.prometheus_endpoint().expect("valid"),
            Some(super::super::PrometheusEndpoint {
                host: "0.0.0.0".to_string(),
                port: 7000
            })
        );
        assert!(embedded.admin_enable_server);
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

    /// SASL keys as the reference reads them: zoo.cfg `authProvider.N`,
    /// `allowSaslFailedClients`, `enforce.auth.*` become `zookeeper.*`
    /// properties; the JAAS file is a JVM flag.
    #[test]
    fn sasl_keys_from_zoo_cfg_and_flags() {
        let text = format!(
            "{MINIMAL}authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             allowSaslFailedClients=true\nenforce.auth.enabled=true\nenforce.auth.schemes=sasl, digest\n\
             superUser=admin\n"
        );
        let flags =
            "-Djava.security.auth.login.config=/etc/zk/jaas.conf -Dzookeeper.superUser.2=root \
                     -Dzookeeper.SASLAuthenticationProvider.superPassword=pw";
        let config = Config::parse(&text, Path::new("zoo.cfg"), flags).expect("parses");
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let sasl = &config.sasl;
        assert_eq!(sasl.jaas_file, Some(PathBuf::from("/etc/zk/jaas.conf")));
        assert_eq!(sasl.auth_providers.len(), 1);
        assert!(sasl.settings.allow_failed_clients);
        assert_eq!(sasl.settings.enforce_auth_schemes, ["sasl", "digest"]);
        assert!(sasl.settings.sasl_required());
        assert_eq!(sasl.settings.super_users, ["admin", "root"]);
        assert_eq!(sasl.settings.super_password.as_deref(), Some("pw"));

        let required = Config::parse(MINIMAL, Path::new("zoo.cfg"),
            "-Dzookeeper.sessionRequireClientSASLAuth=true -Dzookeeper.authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider")
            .expect("parses");
        assert_eq!(required.sasl.settings.enforce_auth_schemes, ["sasl"]);
        assert_eq!(
            Config::parse(MINIMAL, Path::new("zoo.cfg"), "")
                .unwrap()
                .sasl,
            SaslConfig::default()
        );
    }

    #[test]
    fn enforce_auth_needs_available_schemes() {
        assert_eq!(
            parse_err(&format!("{MINIMAL}enforce.auth.enabled=true\n"), ""),
            "zoo.cfg: enforce.auth.enabled is true, so enforce.auth.schemes must be set"
        );
        assert_eq!(
            parse_err(&format!("{MINIMAL}enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n"), ""),
            "zoo.cfg: authentication scheme sasl is enforced but not available (known: digest, ip); add authProvider.N for it"
        );
        assert!(
            parse_err(MINIMAL, "-Dzookeeper.sessionRequireClientSASLAuth=true")
                .contains("scheme sasl")
        );
        let config = parse(&format!("{MINIMAL}enforce.auth.enabled=true\nenforce.auth.schemes=digest\nauthProvider.9=com.example.Custom\n"));
        assert_eq!(config.sasl.settings.enforce_auth_schemes, ["digest"]);
        assert_eq!(config.warnings, ["zoo.cfg: authProvider.9=com.example.Custom: unknown authentication provider class; ignored"]);
    }
}
