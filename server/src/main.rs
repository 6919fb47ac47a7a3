//! `zk-server [zoo.cfg]`: a ZooKeeper-compatible coordination server.
//!
//! With no argument it runs standalone on an embedded default configuration
//! (client port 2181, data in `./data`). With a path it reads Apache
//! ZooKeeper's zoo.cfg format. This file only wires the parts together:
//! config, storage recovery, the commit pipeline thread, the I/O threads and
//! signal handling.

mod admin;
mod config;
mod dynamic_config;
mod ensemble;
mod http;
mod jaas;
mod pipeline;
mod secret;

use anyhow::Context;
use config::Config;
use engine::native::{NativeConfig, NativeStorage};
use engine::prep::{Prep, PrepConfig};
use engine::session::SessionTracker;
use engine::storage::Storage;
use net::clock::{Clock, SystemClock};
use net::reactor::{FourLetterWords, Polls, Reactor};
use net::shared::{Settings, Shared};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

const USAGE: &str = "usage: zk-server [zoo.cfg]\n\n\
Runs a ZooKeeper-compatible server. Without an argument it serves standalone on\n\
port 2181 with data in ./data. Java system properties given as -Dname=value in\n\
SERVER_JVMFLAGS or JVMFLAGS are honoured as Apache ZooKeeper honours them.";

fn main() {
    init_logging();
    stop_on_any_panic();
    net::failpoint::init();
    if let Err(error) = run() {
        tracing::error!("{error:#}");
        eprintln!("zk-server: {error:#}");
        std::process::exit(1);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A closed stderr (a log pipe whose reader died) must not stop the
        // server: by default a failed log write is reported with
        // `eprintln!`, which panics the logging thread on that same stderr.
        .log_internal_errors(false)
        .init();
}

/// The failure policy of every server thread: a panic anywhere (an I/O
/// thread, the sequencer, the applier, the log writer, a snapshot) aborts the
/// process. A server with one thread dead is worse than a stopped one: it
/// would answer `ruok` and serve stale reads while writes hang, its
/// outstanding counts would never drain, and an apply that did not match the
/// tree means this replica has diverged. Supervisors restart a stopped server;
/// recovery replays the log, so nothing acknowledged is lost.
fn stop_on_any_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        tracing::error!(thread, "{info}; the server stops");
        report(info);
        std::process::abort();
    }));
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let config = match (args.next(), args.next()) {
        (None, _) => {
            tracing::info!("no config file given; using the embedded standalone default");
            Config::embedded(&config::jvm_flags_from_env())?
        }
        (Some(arg), None) if arg == "-h" || arg == "--help" => {
            println!("{USAGE}");
            return Ok(());
        }
        (Some(path), None) => Config::load(&PathBuf::from(path))?,
        (Some(_), Some(_)) => anyhow::bail!("{USAGE}"),
    };
    serve(config)
}

/// The file a native store writes first, before any log or snapshot.
const NATIVE_DATABASE_ID: &str = "database_id";

/// Where the RocksDB backend keeps its database, under dataDir.
const ROCKSDB_SUBDIR: &str = "rocksdb";

/// Stops start-up when the data directory holds the other backend's data:
/// the chosen backend would start from an empty tree and the data would
/// look lost. Nothing migrates between backends; the operator either sets
/// `storage.backend` back or moves the old data away.
fn refuse_other_backends_data(config: &Config) -> anyhow::Result<()> {
    let rocks_dir = config.data_dir.join(ROCKSDB_SUBDIR);
    match config.storage_backend {
        config::StorageBackend::Native => {
            if rocks_dir.join("CURRENT").is_file() {
                anyhow::bail!(
                    "{} holds RocksDB-backend data but storage.backend=native: set storage.backend=rocksdb \
                     to use it, or move {} away to start an empty native store (backends do not migrate)",
                    config.data_dir.display(),
                    rocks_dir.display()
                );
            }
        }
        config::StorageBackend::RocksDb => {
            for dir in [&config.data_dir, &config.data_log_dir] {
                let native = std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .find(|name| {
                        name.starts_with("log.")
                            || name.starts_with("snapshot.")
                            || name == NATIVE_DATABASE_ID
                    });
                if let Some(name) = native {
                    anyhow::bail!(
                        "{} holds native-backend data ({name}) but storage.backend=rocksdb: set \
                         storage.backend=native to use it, or move the log.*, snapshot.* and database_id files away \
                         to start an empty RocksDB store (backends do not migrate)",
                        dir.display()
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(feature = "rocksdb")]
fn open_rocksdb(config: &Config) -> anyhow::Result<Box<dyn Storage>> {
    let rocks = engine::rocks::RocksStorage::open(engine::rocks::RocksConfig {
        dir: config.data_dir.join(ROCKSDB_SUBDIR),
        force_sync: config.force_sync,
    })
    .context("recovery failed")?;
    Ok(Box::new(rocks))
}

/// A binary built without the backend says how to get one, in one line.
#[cfg(not(feature = "rocksdb"))]
fn open_rocksdb(_config: &Config) -> anyhow::Result<Box<dyn Storage>> {
    anyhow::bail!("{ROCKSDB_NOT_BUILT}")
}

#[cfg(not(feature = "rocksdb"))]
const ROCKSDB_NOT_BUILT: &str = "storage.backend=rocksdb: this zk-server was built without the RocksDB backend; \
rebuild with `cargo build --release -p server --features rocksdb` (needs Debian's librocksdb-dev and libclang-dev)";

fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create dataDir {}", config.data_dir.display()))?;

    refuse_other_backends_data(&config)?;
    // The AdminServer and /metrics ports, bound now so a port in use stops
    // start-up before recovery.
    let endpoints = http::bind(&config)?;
    if !config.force_sync {
        tracing::warn!("forceSync=no: acknowledged writes can be lost on power failure");
    }
    let mut storage: Box<dyn Storage> = match config.storage_backend {
        config::StorageBackend::Native => {
            let native = NativeStorage::open(NativeConfig {
                snapshot_dir: config.data_dir.clone(),
                log_dir: config.data_log_dir.clone(),
                pre_alloc_bytes: config.pre_alloc_size_kb.saturating_mul(1024),
                force_sync: config.force_sync,
                io: match config.wal_io {
                    config::WalIo::Pwrite => wal::IoMode::Pwrite,
                    config::WalIo::IoUring => wal::IoMode::Auto,
                },
                segment_max_bytes: engine::native::DEFAULT_SEGMENT_MAX_BYTES,
            })
            .context("recovery failed")?;
            Box::new(native)
        }
        config::StorageBackend::RocksDb => open_rocksdb(&config)?,
    };
    let snapshots = pipeline::SnapshotPolicy {
        snapshotter: storage.checkpointer(),
        snap_count: config.snap_count.max(2),
        retain_count: config.autopurge_snap_retain_count as usize,
        purge_every: (config.autopurge_purge_interval_hours > 0).then(|| {
            std::time::Duration::from_secs(u64::from(config.autopurge_purge_interval_hours) * 3600)
        }),
    };
    let (mut tree, last_zxid) = storage.recover().context("recovery failed")?;
    let sync_stats = storage.sync_stats();
    tracing::info!(storage = storage.name(), %last_zxid, nodes = tree.node_count(), "state recovered");

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if config.is_distributed() {
        tree.set_static_config(&ensemble::static_config_data(&config), clock.wall_ms());
    }
    let replica = if config.is_distributed() {
        let mut setup = ensemble::setup(&config)?;
        setup.quorum.pending = ensemble::recovered_pending(&config, &tree);
        Some(setup)
    } else {
        None
    };
    // An ensemble's members must agree on session passwords, so that a
    // session moves between them: theirs derive from the ensemble.
    let session_secret = match &replica {
        Some(setup) => ensemble::session_secret(setup),
        None => secret::load_or_create(&config.data_dir)?,
    };
    // Session ids carry the server id in their top byte, so two servers of an
    // ensemble never hand out the same id.
    let server_id = match config.my_id {
        None => 0,
        Some(id) => u8::try_from(id).map_err(|_| {
            anyhow::anyhow!(
                "{}: myid {id} is out of range: session ids carry the server id in one byte (1..=255)",
                config.data_dir.join("myid").display()
            )
        })?,
    };
    let mut sessions = SessionTracker::new(config.tick_time_ms, server_id, clock.wall_ms());
    // Recovered sessions get a whole timeout from now to reconnect.
    for (session, timeout_ms) in tree.sessions() {
        sessions.add(session, timeout_ms, clock.monotonic_ms());
    }

    let listener = if config.client_port == 0 {
        None
    } else {
        let address = SocketAddr::new(
            config
                .client_port_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            config.client_port,
        );
        let listener = std::net::TcpListener::bind(address)
            .with_context(|| format!("cannot bind the client port {address}"))?;
        tracing::info!(%address, "binding to the client port");
        Some(listener)
    };
    let secure = secure_port(&config)?;

    let io_threads = match config.io_threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
    .clamp(1, 64);
    let (polls, mailboxes) = Polls::new(io_threads).context("cannot create event loops")?;
    let (submit, submissions) = crossbeam_channel::unbounded();
    let settings = Settings {
        max_frame_bytes: config.jute_max_buffer,
        connection_outstanding_limit: config.connection_outstanding_limit,
        global_outstanding_limit: config.global_outstanding_limit as usize,
        // Room for the largest reply a read may build, and then some.
        max_outbound_bytes: (64 * 1024 * 1024)
            .max(config.max_response_bytes.saturating_add(2 * 1024 * 1024)),
        max_client_cnxns: config.max_client_cnxns,
        min_session_timeout_ms: config.min_session_timeout_ms as i32,
        max_session_timeout_ms: config.max_session_timeout_ms as i32,
        super_digest: config.super_digest.clone(),
        read_limits: config.read_limits(),
        sasl: config.sasl.settings.clone(),
        // Standalone, reads are linearizable already: one server applies
        // every write before answering it.
        linearizable_reads: config.linearizable_reads && replica.is_some(),
    };
    let shared = Arc::new(Shared::new(
        tree,
        sessions,
        mailboxes,
        submit,
        settings,
        clock,
        session_secret,
    ));
    if let Some(setup) = &replica {
        // Not serving until the quorum driver has a leader and is synced.
        shared.replica.set(net::shared::ReplicaView {
            mode: net::shared::Mode::Looking,
            voters: setup.quorum.voters.len(),
            ..Default::default()
        });
    }
    // Recovered sessions that zk-migrate brought over from Apache ZooKeeper:
    // their clients still hold Apache's passwords.
    shared.migrated_sessions.lock().extend(
        secret::migrated_sessions(&config.data_dir)?
            .into_iter()
            .filter(|session| shared.sessions.lock().get(*session).is_some()),
    );

    let pipeline = pipeline::Pipeline {
        shared: Arc::clone(&shared),
        storage,
        prep: Prep::new(
            last_zxid,
            PrepConfig {
                extended_types_enabled: config.extended_types_enabled,
            },
        )
        .with_limits(config.prep_limits()),
        submissions,
        tick_ms: u64::from(config.tick_time_ms),
        container_check_interval_ms: config.container_check_interval_ms,
        snapshots: Some(snapshots),
        replica,
        reconfig: pipeline::reconfig::Rules {
            enabled: config.reconfig_enabled,
            skip_acl: config.skip_acl,
            standalone_enabled: config.standalone_enabled,
            multi_address: config.multi_address_enabled,
        },
    };
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || pipeline.run())
        .context("cannot start the pipeline thread")?;

    let admin = Arc::new(
        admin::Admin::new(Arc::clone(&shared), config.clone()).with_sync_stats(sync_stats),
    );
    let words = FourLetterWords {
        whitelist: config.four_letter_words.clone(),
        source: admin.clone(),
    };
    let endpoints = endpoints.start(admin)?;
    let reactor = Reactor::start_ports(Arc::clone(&shared), polls, listener, secure, words)
        .context("cannot start the I/O threads")?;
    if config.client_port != 0 {
        *shared.client_addr.lock() = Some(reactor.local_addr);
    }
    match reactor.secure_addr {
        Some(secure) => {
            tracing::info!(io_threads, address = %reactor.local_addr, %secure, "serving")
        }
        None => tracing::info!(io_threads, address = %reactor.local_addr, "serving"),
    }

    let shutdown = Arc::clone(&shared);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("cannot install signal handlers")?;
    let signal_thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                shutdown.begin_shutdown();
                tracing::info!(signal, "shutting down");
            }
        })?;

    reactor.join();
    shared.begin_shutdown();
    endpoints.stop();
    let result = pipeline.join();
    drop(signal_thread);
    match result {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Err(error)) => Err(error).context("the commit pipeline failed"),
        Err(_) => anyhow::bail!("the commit pipeline panicked"),
    }
}

/// The TLS client port (`secureClientPort`): its stores read, its rustls
/// configuration built and its socket bound, or `None` when it is not set.
fn secure_port(config: &Config) -> anyhow::Result<Option<net::tls::SecurePort>> {
    if config.secure_client_port == 0 {
        return Ok(None);
    }
    let (server, warnings) = match net::tls::TlsServer::new(&config.tls) {
        Ok(ready) => ready,
        // With a plain client port configured too, the server still serves
        // it (nothing less safe than configured: the secure port is simply
        // absent) and says loudly why the secure one is not there. Alone,
        // a secure port that cannot be set up stops start-up.
        Err(error) if config.client_port != 0 => {
            tracing::error!(
                error = %format!("{error:#}"),
                "cannot set up the secure client port; serving the plain client port only"
            );
            return Ok(None);
        }
        Err(error) => return Err(error).context("cannot set up the secure client port"),
    };
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let address = SocketAddr::new(
        config
            .secure_client_port_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        config.secure_client_port,
    );
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot bind the secure client port {address}"))?;
    tracing::info!(%address, client_auth = ?config.tls.client_auth, "binding to the secure client port (TLS)");
    let server = Arc::new(server);
    if config.tls.reload_on_change {
        net::tls::TlsServer::reload_on_change(
            &server,
            config.tls.clone(),
            std::time::Duration::from_secs(1),
        )
        .context("cannot start the TLS store watcher")?;
    }
    Ok(Some(net::tls::SecurePort { listener, server }))
}
