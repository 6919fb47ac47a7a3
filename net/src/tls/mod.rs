//! TLS on the secure client port (`secureClientPort`), with the x509
//! identity of a client certificate, as Apache ZooKeeper's Netty server
//! offers them.
//!
//! [`TlsServer`] is what start-up builds once from [`TlsOptions`] (the
//! reference's `ssl.*` keys): the rustls server configuration (key store,
//! trust store, `ssl.clientAuth`, protocols, cipher suites) and the x509
//! policy. [`Stream`] is the reactor's socket: `Plain` is the TCP stream as
//! it was, so the plain port's path is one enum match away from the socket;
//! `Tls` wraps the same non-blocking socket in a rustls `ServerConnection`
//! driven by the reactor's readiness events, one state machine per
//! connection and no thread of its own. A handshake is bounded: the reactor
//! closes a connection still handshaking at [`Stream::handshake_deadline`],
//! and a failed one is closed at once.
//!
//! Invariants: reading returns decrypted bytes already held before it reads
//! the socket again, and returns `WouldBlock` only when the socket did, so
//! edge-triggered readiness loses nothing; rustls' buffers are bounded (a
//! write it cannot take is `WouldBlock`), and bytes it still holds are
//! pushed out by `flush`, which the reactor calls until it succeeds before
//! a connection counts as drained.
//!
//! Not here: which requests a connection may make (the reactor and ACLs do
//! that with the identities [`Stream::take_established`] hands over), and
//! reading `zoo.cfg` (the server's config module fills [`TlsOptions`]).

mod dn;
mod jks;
mod store;
mod v1;

pub use dn::{render_name, subject_dn};
pub use store::StoreType;

use engine::types::Id;
use mio::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection, SupportedCipherSuite, SupportedProtocolVersion};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `ssl.protocol`'s default in Apache ZooKeeper 3.8; with no
/// `ssl.enabledProtocols` it is also the one protocol enabled.
pub const DEFAULT_PROTOCOL: &str = "TLSv1.2";
/// How long a TLS handshake may take before its connection is closed
/// (`ssl.handshakeTimeoutMillis`, ours; Netty's default handshake timeout).
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Apache ZooKeeper's default cipher suites that rustls has (its CBC suites
/// it has not). TLS 1.3 suites are added when TLS 1.3 is enabled.
const DEFAULT_TLS12_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
];

/// A key or trust store: `<key>.location`, `.password`, `.type`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSpec {
    /// `ssl.keyStore` or `ssl.trustStore`, for messages.
    pub key: &'static str,
    pub location: PathBuf,
    pub password: String,
    /// `.type` as given (`PEM`, `PKCS12`, any case); `None` infers it
    /// from the file's extension.
    pub store_type: Option<String>,
}

impl std::fmt::Debug for StoreSpec {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSpec")
            .field("key", &self.key)
            .field("location", &self.location)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("store_type", &self.store_type)
            .finish()
    }
}

/// `ssl.clientAuth`: whether a client certificate is asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; a client without one is served, with no x509 identity.
    Want,
    /// Required: a client without one fails the handshake. The reference's
    /// default.
    #[default]
    Need,
}

impl ClientAuth {
    /// The reference's `ClientAuth.fromPropertyValue`: any case; empty is
    /// `need`.
    pub fn from_name(name: &str) -> Option<ClientAuth> {
        match name.to_ascii_lowercase().as_str() {
            "" | "need" => Some(ClientAuth::Need),
            "want" => Some(ClientAuth::Want),
            "none" => Some(ClientAuth::None),
            _ => None,
        }
    }
}

/// The `ssl.*` settings of the secure client port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    pub key_store: Option<StoreSpec>,
    pub trust_store: Option<StoreSpec>,
    pub client_auth: ClientAuth,
    /// `ssl.protocol`.
    pub protocol: String,
    /// `ssl.enabledProtocols`; `None` enables `protocol` alone.
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.ciphersuites` (Java's names, which are IANA's); `None` is the
    /// reference's default list.
    pub cipher_suites: Option<Vec<String>>,
    pub handshake_timeout_ms: u64,
    /// `zookeeper.X509AuthenticationProvider.superUser`: the subject whose
    /// connections are also `super`.
    pub x509_super_user: Option<String>,
    /// `zookeeper.client.certReload` (Apache 3.9): read the stores again
    /// when their files change.
    pub reload_on_change: bool,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::Need,
            protocol: DEFAULT_PROTOCOL.to_string(),
            enabled_protocols: None,
            cipher_suites: None,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            x509_super_user: None,
            reload_on_change: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {}: {message}", path.display())]
    Store {
        key: String,
        path: PathBuf,
        message: String,
    },
    #[error("{key}: {message}")]
    Setting { key: &'static str, message: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

/// The protocol versions and cipher suites the options select, with a
/// warning for each name that is valid in Java but not available here.
pub struct Crypto {
    versions: Vec<&'static SupportedProtocolVersion>,
    suites: Vec<SupportedCipherSuite>,
    pub warnings: Vec<String>,
}

/// The Java name of a rustls suite: IANA's, which rustls spells `TLS13_`
/// for the TLS 1.3 ones.
fn java_name(suite: &SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    }
}

/// Resolves `ssl.protocol`, `ssl.enabledProtocols` and `ssl.ciphersuites`.
pub fn crypto(options: &TlsOptions) -> Result<Crypto, TlsError> {
    let mut warnings = Vec::new();
    let known = |name: &str| -> Option<Vec<&'static SupportedProtocolVersion>> {
        match name {
            "TLSv1.3" => Some(vec![&rustls::version::TLS13]),
            "TLSv1.2" => Some(vec![&rustls::version::TLS12]),
            "TLS" => Some(vec![&rustls::version::TLS13, &rustls::version::TLS12]),
            "TLSv1" | "TLSv1.1" | "SSLv3" | "SSL" | "SSLv2Hello" => Some(vec![]),
            _ => None,
        }
    };
    if known(options.protocol.trim()).is_none() {
        return Err(TlsError::Setting {
            key: "ssl.protocol",
            message: format!(
                "unknown protocol {:?}: expected TLSv1.2, TLSv1.3 or TLS",
                options.protocol
            ),
        });
    }
    let names: Vec<String> = match &options.enabled_protocols {
        Some(list) => list.clone(),
        None => vec![options.protocol.clone()],
    };
    let key = if options.enabled_protocols.is_some() {
        "ssl.enabledProtocols"
    } else {
        "ssl.protocol"
    };
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for name in &names {
        let name = name.trim();
        match known(name) {
            None => {
                return Err(TlsError::Setting {
                    key,
                    message: format!("unknown protocol {name:?}: expected TLSv1.2 or TLSv1.3"),
                })
            }
            Some(found) if found.is_empty() => warnings.push(format!(
                "{key}: {name} is obsolete and not offered (only TLSv1.2 and TLSv1.3 are)"
            )),
            Some(found) => {
                for version in found {
                    if !versions.contains(&version) {
                        versions.push(version);
                    }
                }
            }
        }
    }
    if versions.is_empty() {
        return Err(TlsError::Setting {
            key,
            message: format!(
                "none of {} is supported: enable TLSv1.2 or TLSv1.3",
                names.join(",")
            ),
        });
    }
    let available = rustls::crypto::ring::ALL_CIPHER_SUITES;
    let by_name = |name: &str| available.iter().find(|s| java_name(s) == name).copied();
    let suites: Vec<SupportedCipherSuite> = match &options.cipher_suites {
        None => {
            let mut suites: Vec<SupportedCipherSuite> = available
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            suites.extend(DEFAULT_TLS12_SUITES.iter().filter_map(|name| by_name(name)));
            suites
        }
        Some(list) => {
            let mut suites = Vec::new();
            for name in list.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                match by_name(name) {
                    Some(suite) => suites.push(suite),
                    None if name.starts_with("TLS_") || name.starts_with("SSL_") => warnings.push(
                        format!("ssl.ciphersuites: {name} is not available here; skipped"),
                    ),
                    None => {
                        return Err(TlsError::Setting {
                            key: "ssl.ciphersuites",
                            message: format!("unknown cipher suite {name:?}"),
                        })
                    }
                }
            }
            suites
        }
    };
    let usable: Vec<SupportedCipherSuite> = suites
        .into_iter()
        .filter(|s| versions.contains(&s.version()))
        .collect();
    if usable.is_empty() {
        let offered: Vec<String> = available
            .iter()
            .filter(|s| versions.contains(&s.version()))
            .map(java_name)
            .collect();
        return Err(TlsError::Setting {
            key: "ssl.ciphersuites",
            message: format!(
                "no cipher suite left for the enabled protocols; available: {}",
                offered.join(",")
            ),
        });
    }
    Ok(Crypto {
        versions,
        suites: usable,
        warnings,
    })
}

/// What every TLS connection of the secure port shares.
pub struct TlsServer {
    /// Swapped by `reload_on_change`; each connection keeps the one it
    /// started with.
    config: parking_lot::RwLock<Arc<ServerConfig>>,
    client_auth: ClientAuth,
    x509_super_user: Option<String>,
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

impl TlsServer {
    /// Reads the stores and builds the rustls configuration. Returns the
    /// warnings to log (names skipped, settings without effect).
    pub fn new(options: &TlsOptions) -> Result<(TlsServer, Vec<String>), TlsError> {
        let (config, warnings) = build_config(options)?;
        let server = TlsServer {
            config: parking_lot::RwLock::new(Arc::new(config)),
            client_auth: options.client_auth,
            x509_super_user: options.x509_super_user.clone(),
            handshake_timeout: Duration::from_millis(options.handshake_timeout_ms.max(1)),
        };
        Ok((server, warnings))
    }

    /// `client.certReload`: a `tls-reload` thread that checks the stores'
    /// files every `interval` and, when one changed, reads them again for
    /// the connections that come after. A store that does not load is
    /// logged and the old configuration kept. The thread ends once the
    /// server is dropped.
    pub fn reload_on_change(
        server: &Arc<TlsServer>,
        options: TlsOptions,
        interval: Duration,
    ) -> io::Result<()> {
        let weak = Arc::downgrade(server);
        let files: Vec<PathBuf> = [&options.key_store, &options.trust_store]
            .into_iter()
            .flatten()
            .map(|spec| spec.location.clone())
            .collect();
        let stamp = move || -> Vec<Option<std::time::SystemTime>> {
            files
                .iter()
                .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
                .collect()
        };
        let mut seen = stamp();
        std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(server) = weak.upgrade() else {
                    return;
                };
                let now = stamp();
                if now == seen {
                    continue;
                }
                seen = now;
                match build_config(&options) {
                    Ok((config, _)) => {
                        *server.config.write() = Arc::new(config);
                        tracing::info!("TLS key and trust stores reloaded");
                    }
                    Err(error) => {
                        tracing::error!(%error, "TLS stores changed but do not load; keeping the old ones");
                    }
                }
            })?;
        Ok(())
    }

    /// The x509 identities a finished handshake gives, or why the
    /// connection must close.
    fn identities(&self, session: &ServerConnection) -> Result<Vec<Id>, String> {
        if self.client_auth == ClientAuth::None {
            return Ok(Vec::new());
        }
        let Some(leaf) = session.peer_certificates().and_then(|chain| chain.first()) else {
            // `want` and no certificate: served, with no x509 identity.
            return Ok(Vec::new());
        };
        // As in Apache ZooKeeper 3.8, a verified certificate is an x509
        // identity whether or not an authProvider.N line names
        // X509AuthenticationProvider: its Netty server always has one.
        let subject = subject_dn(leaf)?;
        let mut ids = Vec::with_capacity(2);
        if self.x509_super_user.as_deref() == Some(subject.as_str()) {
            ids.push(Id::new("super", &subject));
        }
        ids.push(Id::new("x509", &subject));
        Ok(ids)
    }
}

/// The rustls configuration the options describe: stores read, versions,
/// suites and the client verifier set; with the warnings to log.
fn build_config(options: &TlsOptions) -> Result<(ServerConfig, Vec<String>), TlsError> {
    let Crypto {
        versions,
        suites,
        mut warnings,
    } = crypto(options)?;
    let key_store = options.key_store.as_ref().ok_or(TlsError::Setting {
        key: "ssl.keyStore.location",
        message: "secureClientPort is set, so the server needs a key store".to_string(),
    })?;
    let (certs, key) = store::load_key_store(key_store)?;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites;
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|error| TlsError::Rustls(error.to_string()))?;
    let builder = match options.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Want | ClientAuth::Need => {
            let trust = options.trust_store.as_ref().ok_or(TlsError::Setting {
                key: "ssl.trustStore.location",
                message: "ssl.clientAuth is want or need (need is the default), so client \
                              certificates need a trust store; set it, or ssl.clientAuth=none"
                    .to_string(),
            })?;
            let verifier = client_verifier(trust, &provider, options.client_auth)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certified = v1::certified_key(certs, key, &provider).map_err(|error| TlsError::Store {
        key: key_store.key.to_string(),
        path: key_store.location.clone(),
        message: format!("the key and certificate are not usable: {error}"),
    })?;
    let config = builder.with_cert_resolver(Arc::new(v1::SingleCert(Arc::new(certified))));
    if options.client_auth == ClientAuth::None && options.trust_store.is_some() {
        warnings.push(
            "ssl.clientAuth=none: the trust store is not used on the client port".to_string(),
        );
    }
    Ok((config, warnings))
}

fn client_verifier(
    trust: &StoreSpec,
    provider: &Arc<CryptoProvider>,
    client_auth: ClientAuth,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let store_error = |message: String| TlsError::Store {
        key: trust.key.to_string(),
        path: trust.location.clone(),
        message,
    };
    let trusted = store::load_trust_store(trust)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in &trusted {
        roots.add(cert.clone()).map_err(|error| {
            store_error(format!("a trusted certificate is not usable: {error}"))
        })?;
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    let builder = if client_auth == ClientAuth::Want {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let webpki = builder
        .build()
        .map_err(|error| TlsError::Rustls(format!("client certificate verifier: {error}")))?;
    Ok(Arc::new(
        v1::ClientVerifier::new(webpki, &trusted, provider).map_err(store_error)?,
    ))
}

/// A client connection's socket.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

pub struct TlsStream {
    socket: TcpStream,
    session: ServerConnection,
    server: Arc<TlsServer>,
    peer: SocketAddr,
    deadline: Instant,
    /// `take_established` has handed over the handshake's outcome.
    established: bool,
}

impl Stream {
    /// A connection accepted on the secure port.
    pub fn tls(socket: TcpStream, peer: SocketAddr, server: &Arc<TlsServer>) -> io::Result<Stream> {
        let session =
            ServerConnection::new(Arc::clone(&server.config.read())).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(TlsStream {
            socket,
            session,
            server: Arc::clone(server),
            peer,
            deadline: Instant::now() + server.handshake_timeout,
            established: false,
        })))
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.set_nodelay(nodelay),
            Stream::Tls(tls) => tls.socket.set_nodelay(nodelay),
        }
    }

    /// When a TLS connection still handshaking must be closed.
    pub fn handshake_deadline(&self) -> Option<Instant> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => Some(tls.deadline),
        }
    }

    pub fn is_handshaking(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(tls) => tls.session.is_handshaking(),
        }
    }

    /// Tells a TLS peer the connection is ending (close_notify), as far as
    /// the socket takes it without blocking. A no-op for plain sockets.
    pub fn close_notify(&mut self) {
        if let Stream::Tls(tls) = self {
            if !tls.session.is_handshaking() {
                tls.session.send_close_notify();
                let _ = tls.flush_tls();
            }
        }
    }

    /// Once, when a TLS handshake has finished: the identities the client
    /// certificate gives (none without one), or why the connection must be
    /// closed. `None` before that, after it, and for plain connections.
    pub fn take_established(&mut self) -> Option<Result<Vec<Id>, String>> {
        let Stream::Tls(tls) = self else {
            return None;
        };
        if tls.established || tls.session.is_handshaking() {
            return None;
        }
        tls.established = true;
        let outcome = tls.server.identities(&tls.session);
        match &outcome {
            Ok(ids) => {
                let version = tls.session.protocol_version().and_then(|v| v.as_str());
                let suite = tls.session.negotiated_cipher_suite().map(|s| java_name(&s));
                if let Some(id) = ids.iter().find(|id| id.scheme == "x509") {
                    tracing::info!(peer = %tls.peer, ?version, ?suite, id = %id.id,
                        "TLS handshake done; authenticated for scheme x509");
                } else {
                    tracing::debug!(peer = %tls.peer, ?version, ?suite, "TLS handshake done");
                }
            }
            Err(reason) => {
                tracing::error!(peer = %tls.peer, %reason, "closing a TLS connection after its handshake");
            }
        }
        Some(outcome)
    }
}

impl TlsStream {
    /// Pushes out what rustls holds; `WouldBlock` while some remains.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.session.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            // Nothing decrypted is waiting: read the socket.
            if self.session.read_tls(&mut self.socket)? == 0 {
                if self.session.is_handshaking() {
                    tracing::debug!(peer = %self.peer, "client closed during the TLS handshake");
                }
                return Ok(0);
            }
            if let Err(error) = self.session.process_new_packets() {
                if self.session.is_handshaking() {
                    tracing::info!(peer = %self.peer, %error, "TLS handshake failed");
                } else {
                    tracing::info!(peer = %self.peer, %error, "TLS error; closing the connection");
                }
                // The alert rustls queued, if the socket takes it.
                let _ = self.flush_tls();
                return Err(io::Error::new(io::ErrorKind::InvalidData, error));
            }
            // Handshake messages to answer, or a reply to a key update.
            match self.flush_tls() {
                Err(error) if error.kind() != io::ErrorKind::WouldBlock => return Err(error),
                _ => {}
            }
        }
    }

    fn write_plain(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Take no more while the socket has not taken what rustls holds:
        // that keeps rustls' buffer small and the backpressure in the
        // reactor's outbuf, where its limits are.
        self.flush_tls()?;
        let n = self.session.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.flush_tls() {
            Err(error) if error.kind() != io::ErrorKind::WouldBlock => Err(error),
            _ => Ok(n),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            Stream::Tls(tls) => tls.read_plain(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            Stream::Tls(tls) => tls.write_plain(buf),
        }
    }

    /// For TLS, what rustls still holds goes to the socket: `WouldBlock`
    /// while some remains. A no-op for plain sockets.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => tls.flush_tls(),
        }
    }
}

impl mio::event::Source for Stream {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.register(registry, token, interests),
            Stream::Tls(tls) => tls.socket.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.reregister(registry, token, interests),
            Stream::Tls(tls) => tls.socket.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.deregister(registry),
            Stream::Tls(tls) => tls.socket.deregister(registry),
        }
    }
}

/// The secure port as main hands it to the reactor.
pub struct SecurePort {
    pub listener: std::net::TcpListener,
    pub server: Arc<TlsServer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(protocols: Option<&str>, suites: Option<&str>) -> TlsOptions {
        let split = |s: &str| s.split(',').map(str::to_string).collect();
        TlsOptions {
            enabled_protocols: protocols.map(split),
            cipher_suites: suites.map(split),
            ..TlsOptions::default()
        }
    }

    #[track_caller]
    fn check(protocols: Option<&str>, suites: Option<&str>, expected: &str) {
        let got = match crypto(&options(protocols, suites)) {
            Ok(c) => {
                let versions: Vec<&str> = c
                    .versions
                    .iter()
                    .filter_map(|v| v.version.as_str())
                    .collect();
                let suites: Vec<String> = c.suites.iter().map(java_name).collect();
                let mut out = format!("{} | {}", versions.join(","), suites.join(","));
                for warning in c.warnings {
                    out.push_str(&format!(" | warn: {warning}"));
                }
                out
            }
            Err(error) => format!("error: {error}"),
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn protocols_and_suites_map_java_names() {
        // The reference's 3.8 default: TLSv1.2 alone, its GCM suites.
        check(None, None, "TLSv1_2 | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
        check(
            Some("TLSv1.3, TLSv1.2"),
            Some("TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "TLSv1_3,TLSv1_2 | TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        );
        check(
            Some("TLSv1.1,TLSv1.3"),
            Some("TLS_RSA_WITH_AES_128_CBC_SHA,TLS_AES_256_GCM_SHA384"),
            "TLSv1_3 | TLS_AES_256_GCM_SHA384 | warn: ssl.enabledProtocols: TLSv1.1 is obsolete and not offered (only TLSv1.2 and TLSv1.3 are) | warn: ssl.ciphersuites: TLS_RSA_WITH_AES_128_CBC_SHA is not available here; skipped",
        );
        check(Some("TLSv1.4"), None, "error: ssl.enabledProtocols: unknown protocol \"TLSv1.4\": expected TLSv1.2 or TLSv1.3");
        check(
            Some("TLSv1"),
            None,
            "error: ssl.enabledProtocols: none of TLSv1 is supported: enable TLSv1.2 or TLSv1.3",
        );
        check(
            None,
            Some("fast"),
            "error: ssl.ciphersuites: unknown cipher suite \"fast\"",
        );
        check(
            None,
            Some("TLS_AES_128_GCM_SHA256"),
            "error: ssl.ciphersuites: no cipher suite left for the enabled protocols; available: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        );
        let bad_protocol = TlsOptions {
            protocol: "DTLS".to_string(),
            ..TlsOptions::default()
        };
        assert!(crypto(&bad_protocol).is_err());
        assert_eq!(ClientAuth::from_name("WANT"), Some(ClientAuth::Want));
        assert_eq!(ClientAuth::from_name(""), Some(ClientAuth::Need));
        assert_eq!(ClientAuth::from_name("maybe"), None);
    }

    #[test]
    fn a_key_store_is_required_and_passwords_never_print() {
        let error = TlsServer::new(&TlsOptions::default())
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err(
                "ssl.keyStore.location: secureClientPort is set, so the server needs a key store"
                    .to_string()
            )
        );
        let spec = StoreSpec {
            key: "ssl.keyStore",
            location: "/k.p12".into(),
            password: "hunter2".to_string(),
            store_type: None,
        };
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
