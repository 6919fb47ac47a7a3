//! Server-side SASL for the `sasl` request (opcode 102), as Apache ZooKeeper
//! 3.8 serves it with a JAAS `Server` section of `DigestLoginModule` users:
//! the DIGEST-MD5 mechanism of RFC 2831 with the `auth` QOP only, and the
//! per-connection policy around it (what a failure answers, whether the
//! connection stays, what a request the server cannot serve gets).
//!
//! What it is not: the socket side (the reactor sends the reply and closes
//! the connection when told to) nor the ACL side (`engine::acl` matches the
//! `sasl:<name>` identities this hands out). GSSAPI/Kerberos is not served.
//!
//! Invariants: every client token is untrusted input: it is bounded
//! (`MAX_RESPONSE_BYTES`), parsed without panics, and any malformed,
//! duplicated or missing directive is a [`SaslError`], never a retry. An
//! [`Exchange`] reaches a final state within two requests, and a request in a
//! final state gets an error answer, so no client can loop against us for
//! ever, whatever it sends. Passwords never reach a log line or `Debug`.

use engine::types::{ErrorCode, Id, SessionId};
use md5::{Digest, Md5};
use rand::RngCore;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// The realm and server name Apache ZooKeeper's DIGEST-MD5 server uses,
/// whatever the host is called; clients (kazoo, the Java client) use the
/// same fixed name in their `digest-uri`.
pub const DEFAULT_REALM: &str = "zk-sasl-md5";
/// The SASL service (protocol) name of the `digest-uri`.
pub const SERVICE: &str = "zookeeper";
/// The longest DIGEST-MD5 response accepted, as the JDK's DIGEST-MD5 server
/// bounds it; RFC 2831 caps the response at 4096 bytes as well.
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// More directives than this is not a real client.
const MAX_DIRECTIVES: usize = 32;
/// Random bytes in a nonce (hex-encoded on the wire).
const NONCE_BYTES: usize = 24;

/// Why a SASL exchange failed. Each ends the exchange: the connection's
/// policy (`zookeeper.allowSaslFailedClients`) says what the client gets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the client sent an initial response ({0} bytes): it does not speak DIGEST-MD5, the only mechanism served (GSSAPI/Kerberos is not supported)")]
    InitialResponse(usize),
    #[error(
        "response of {0} bytes is longer than the {MAX_RESPONSE_BYTES} bytes DIGEST-MD5 allows"
    )]
    TooLong(usize),
    #[error("malformed DIGEST-MD5 response: {0}")]
    Malformed(String),
    #[error("directive {0} appears more than once")]
    Duplicate(String),
    #[error("directive {0} is missing")]
    Missing(&'static str),
    #[error("directive {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("user {0:?} is not among the JAAS Server section's DigestLoginModule users")]
    UnknownUser(String),
    #[error("wrong password for user {0:?}")]
    WrongPassword(String),
    #[error("the SASL exchange is already {0}; no further token is expected")]
    Finished(&'static str),
    #[error("the JAAS Server section uses {0}: GSSAPI/Kerberos is not supported, only DigestLoginModule (DIGEST-MD5)")]
    UnsupportedLogin(String),
}

/// `user_<name>="<password>"` options of the JAAS `Server` section. `Debug`
/// shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DigestUsers(BTreeMap<String, String>);

impl DigestUsers {
    pub fn new(users: BTreeMap<String, String>) -> DigestUsers {
        DigestUsers(users)
    }

    pub fn password(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for DigestUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What the JAAS `Server` section (`zookeeper.sasl.serverconfig`, default
/// `Server`) makes the server able to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Login {
    /// No JAAS file, or no `Server` section in it: SASL requests get the
    /// reference's answer without a login, a null token.
    #[default]
    None,
    /// DIGEST-MD5 against these users.
    Digest(DigestUsers),
    /// A section we cannot serve (a Kerberos login module): every SASL
    /// request is refused at once, naming the module.
    Unsupported { module: String },
}

/// The SASL settings the reactor enforces (`net::shared::Settings::sasl`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaslSettings {
    pub login: Login,
    /// `zookeeper.allowSaslFailedClients`: a failed exchange keeps the
    /// connection (unless SASL is required).
    pub allow_failed_clients: bool,
    /// `zookeeper.enforce.auth.schemes` when `zookeeper.enforce.auth.enabled`
    /// (or `sasl` alone with `zookeeper.sessionRequireClientSASLAuth`); empty
    /// means no enforcement. A connection holding none of these schemes has
    /// every request but auth and sasl refused with
    /// SessionClosedRequireSaslAuth, and is closed.
    pub enforce_auth_schemes: Vec<String>,
    /// `zookeeper.superUser` and `zookeeper.superUser.*`: SASL names that
    /// also get the `super` identity.
    pub super_users: Vec<String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of
    /// the user `super` (who must still be listed in the JAAS section).
    pub super_password: Option<String>,
}

impl SaslSettings {
    /// SASL is among the enforced schemes: a failed exchange always closes.
    pub fn sasl_required(&self) -> bool {
        self.enforce_auth_schemes.iter().any(|s| s == "sasl")
    }

    /// Whether a connection with these identities may send requests other
    /// than auth and sasl.
    pub fn admits(&self, auth: &[Id]) -> bool {
        self.enforce_auth_schemes.is_empty()
            || auth
                .iter()
                .any(|id| self.enforce_auth_schemes.contains(&id.scheme))
    }

    fn password_of(&self, users: &DigestUsers, name: &str) -> Option<String> {
        let listed = users.password(name)?;
        // As the reference: `super`'s password may come from a property,
        // but only for a listed user.
        match (name, &self.super_password) {
            ("super", Some(password)) => Some(password.clone()),
            _ => Some(listed.to_string()),
        }
    }
}

/// What the reactor sends for one `sasl` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An OK reply with this token (`None`: a null token).
    Token(Option<Vec<u8>>),
    /// An OK reply with the final token; the connection gains these
    /// identities.
    Authenticated { token: Vec<u8>, identities: Vec<Id> },
    /// An error reply (header with `code`, then a null token), then the
    /// connection is closed if `close`.
    Refuse { code: ErrorCode, close: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExchangeState {
    Fresh,
    /// A DIGEST-MD5 challenge was sent.
    Challenged,
    Authenticated,
    /// Failed (the connection closes, or is kept with
    /// `allowSaslFailedClients`).
    Failed,
    /// Answered without a login (null token).
    NoLogin,
}

/// One connection's SASL state.
pub struct Exchange {
    state: ExchangeState,
    digest: Option<DigestMd5Server>,
}

impl Default for Exchange {
    fn default() -> Exchange {
        Exchange::new()
    }
}

impl Exchange {
    pub fn new() -> Exchange {
        Exchange {
            state: ExchangeState::Fresh,
            digest: None,
        }
    }

    /// Answers one `sasl` request carrying `token`.
    pub fn answer(
        &mut self,
        settings: &SaslSettings,
        token: Option<&[u8]>,
        peer: SocketAddr,
        session: SessionId,
    ) -> Answer {
        let token = token.unwrap_or(&[]);
        let outcome = match (&settings.login, self.state) {
            (_, ExchangeState::Authenticated) => Err(SaslError::Finished("complete")),
            (_, ExchangeState::Failed) => Err(SaslError::Finished("failed")),
            (Login::None, ExchangeState::NoLogin) => {
                // The reference would send another null token, and a client
                // that insists (kazoo) would loop for ever.
                tracing::warn!(%peer, %session,
                    "SASL request again on a server without a JAAS Server section; refusing");
                return self.refuse_repeat(settings);
            }
            (Login::None, _) => {
                tracing::info!(%peer, %session,
                    "SASL request but no JAAS Server section is configured: answering a null token");
                self.state = ExchangeState::NoLogin;
                return Answer::Token(None);
            }
            (Login::Unsupported { module }, _) => Err(SaslError::UnsupportedLogin(module.clone())),
            (Login::Digest(users), _) => {
                let digest = self.digest.get_or_insert_with(DigestMd5Server::new);
                digest.evaluate(token, &|name| settings.password_of(users, name))
            }
        };
        match outcome {
            Ok(Step::Challenge(challenge)) => {
                self.state = ExchangeState::Challenged;
                Answer::Token(Some(challenge))
            }
            Ok(Step::Complete { token, name }) => {
                self.state = ExchangeState::Authenticated;
                self.digest = None;
                tracing::info!(%peer, %session, user = %name, "SASL DIGEST-MD5 authentication succeeded");
                let mut identities = vec![Id::new("sasl", &name)];
                if settings.super_users.contains(&name) {
                    tracing::info!(%peer, %session, user = %name, "SASL user is a super user");
                    identities.push(Id::new("super", ""));
                }
                Answer::Authenticated { token, identities }
            }
            Err(error) => self.fail(settings, error, peer, session),
        }
    }

    /// A failed exchange: the reference's policy. With
    /// `allowSaslFailedClients` (and SASL not required) the client gets an
    /// OK with a null token and keeps its connection; otherwise an error
    /// (SessionClosedRequireSaslAuth when SASL is required, else
    /// AuthFailed) and the connection is closed.
    fn fail(
        &mut self,
        settings: &SaslSettings,
        error: SaslError,
        peer: SocketAddr,
        session: SessionId,
    ) -> Answer {
        self.digest = None;
        // Final whatever the policy: a closing connection may still have
        // requests queued behind this one.
        self.state = ExchangeState::Failed;
        let repeat = matches!(error, SaslError::Finished(_));
        tracing::warn!(%peer, %session, %error, "SASL authentication failed");
        if repeat {
            return self.refuse_repeat(settings);
        }
        if settings.allow_failed_clients && !settings.sasl_required() {
            tracing::warn!(%peer, %session, "keeping the connection despite the SASL failure (allowSaslFailedClients)");
            self.state = ExchangeState::Failed;
            return Answer::Token(None);
        }
        Answer::Refuse {
            code: failure_code(settings),
            close: true,
        }
    }

    /// A request after the exchange ended. Ours (the reference answers a
    /// null token or fails again, which a client like kazoo retries for
    /// ever): an error at once, keeping the connection only where the
    /// policy keeps failed clients.
    fn refuse_repeat(&mut self, settings: &SaslSettings) -> Answer {
        let keep = settings.allow_failed_clients && !settings.sasl_required();
        Answer::Refuse {
            code: failure_code(settings),
            close: !keep,
        }
    }
}

fn failure_code(settings: &SaslSettings) -> ErrorCode {
    if settings.sasl_required() {
        ErrorCode::SessionClosedRequireSaslAuth
    } else {
        ErrorCode::AuthFailed
    }
}

/// One step of the DIGEST-MD5 server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge and wait for the response.
    Challenge(Vec<u8>),
    /// Authenticated as `name`; send `token` (`rspauth=...`).
    Complete { token: Vec<u8>, name: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DigestState {
    Start,
    Challenged { nonce: String },
    Done,
}

/// The DIGEST-MD5 server of RFC 2831, `auth` QOP only: a challenge, one
/// response checked against the user's password, `rspauth`, done.
/// Subsequent authentication (nc > 1) is not offered.
pub struct DigestMd5Server {
    state: DigestState,
    realm: String,
    service: String,
    server_name: String,
    /// A fixed nonce for test vectors; `None` draws one from the OS.
    nonce: Option<String>,
}

impl Default for DigestMd5Server {
    fn default() -> DigestMd5Server {
        DigestMd5Server::new()
    }
}

impl DigestMd5Server {
    /// ZooKeeper's server: realm and server name `zk-sasl-md5`, service
    /// `zookeeper`.
    pub fn new() -> DigestMd5Server {
        DigestMd5Server::with_names(DEFAULT_REALM, SERVICE, DEFAULT_REALM, None)
    }

    /// A server for other names (and a fixed nonce), for test vectors.
    pub fn with_names(
        realm: &str,
        service: &str,
        server_name: &str,
        nonce: Option<&str>,
    ) -> DigestMd5Server {
        DigestMd5Server {
            state: DigestState::Start,
            realm: realm.to_string(),
            service: service.to_string(),
            server_name: server_name.to_string(),
            nonce: nonce.map(str::to_string),
        }
    }

    /// Takes the client's next token. `password` looks a user's password
    /// up. An error ends the exchange.
    pub fn evaluate(
        &mut self,
        token: &[u8],
        password: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Step, SaslError> {
        let state = std::mem::replace(&mut self.state, DigestState::Done);
        match state {
            DigestState::Start => {
                if !token.is_empty() {
                    return Err(SaslError::InitialResponse(token.len()));
                }
                let nonce = self.nonce.clone().unwrap_or_else(fresh_nonce);
                // No qop directive: `auth` is its default (RFC 2831
                // 2.1.1), and the reference's challenge leaves it out too.
                let challenge = format!(
                    "realm=\"{}\",nonce=\"{nonce}\",charset=utf-8,algorithm=md5-sess",
                    quote(&self.realm)
                );
                self.state = DigestState::Challenged { nonce };
                Ok(Step::Challenge(challenge.into_bytes()))
            }
            DigestState::Challenged { nonce } => self.verify(token, &nonce, password),
            DigestState::Done => Err(SaslError::Finished("complete")),
        }
    }

    fn verify(
        &self,
        token: &[u8],
        nonce: &str,
        password: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Step, SaslError> {
        if token.len() > MAX_RESPONSE_BYTES {
            return Err(SaslError::TooLong(token.len()));
        }
        let directives = parse_directives(token)?;
        let get = |name: &str| directives.get(name).map(Vec::as_slice);
        let required = |name: &'static str| get(name).ok_or(SaslError::Missing(name));

        let utf8 = match get("charset") {
            None => false,
            Some(value) if value.eq_ignore_ascii_case(b"utf-8") => true,
            Some(value) => return Err(invalid("charset", "only utf-8 is offered", value)),
        };
        let text = |name: &'static str, value: &[u8]| -> Result<String, SaslError> {
            if utf8 {
                String::from_utf8(value.to_vec())
                    .map_err(|_| invalid(name, "not UTF-8 though charset=utf-8", value))
            } else {
                // Without charset=utf-8, RFC 2831 says ISO 8859-1.
                Ok(value.iter().map(|b| char::from(*b)).collect())
            }
        };
        let username = text("username", required("username")?)?;
        let realm = match get("realm") {
            Some(value) => {
                let realm = text("realm", value)?;
                if realm != self.realm {
                    return Err(invalid("realm", "not the realm offered", value));
                }
                realm
            }
            // RFC 2831: a missing realm is the empty string in A1.
            None => String::new(),
        };
        let client_nonce = required("nonce")?;
        if client_nonce != nonce.as_bytes() {
            return Err(invalid("nonce", "not the nonce sent", client_nonce));
        }
        let cnonce = required("cnonce")?;
        if cnonce.is_empty() {
            return Err(invalid("cnonce", "empty", cnonce));
        }
        let nc = required("nc")?;
        if nc.len() != 8 || !nc.iter().all(u8::is_ascii_hexdigit) {
            return Err(invalid("nc", "not 8 hex digits", nc));
        }
        if nc != b"00000001" {
            return Err(invalid(
                "nc",
                "subsequent authentication is not offered",
                nc,
            ));
        }
        let qop = get("qop").unwrap_or(b"auth");
        if qop != b"auth" {
            return Err(invalid("qop", "only auth is offered", qop));
        }
        let digest_uri = required("digest-uri")?;
        self.check_digest_uri(digest_uri)?;
        let response = required("response")?;
        if response.len() != 32 || !response.iter().all(u8::is_ascii_hexdigit) {
            return Err(invalid("response", "not 32 hex digits", response));
        }
        if let Some(maxbuf) = get("maxbuf") {
            let ok = std::str::from_utf8(maxbuf)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .is_some();
            if !ok {
                return Err(invalid("maxbuf", "not a number", maxbuf));
            }
        }
        let authzid = get("authzid");

        let Some(password) = password(&username) else {
            return Err(SaslError::UnknownUser(username));
        };
        let secret = if utf8 {
            password.into_bytes()
        } else {
            latin1_or_utf8(&password)
        };
        let user_bytes = if utf8 {
            username.as_bytes().to_vec()
        } else {
            latin1_or_utf8(&username)
        };
        let realm_bytes = if utf8 {
            realm.as_bytes().to_vec()
        } else {
            latin1_or_utf8(&realm)
        };
        let ha1 = ha1(
            &user_bytes,
            &realm_bytes,
            &secret,
            nonce.as_bytes(),
            cnonce,
            authzid,
        );
        let expected = kd_response(
            &ha1,
            nonce.as_bytes(),
            nc,
            cnonce,
            b"AUTHENTICATE:",
            digest_uri,
        );
        let given = response.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), &given) {
            return Err(SaslError::WrongPassword(username));
        }
        let rspauth = kd_response(&ha1, nonce.as_bytes(), nc, cnonce, b":", digest_uri);
        Ok(Step::Complete {
            token: format!("rspauth={rspauth}").into_bytes(),
            name: username,
        })
    }

    /// `digest-uri` must name our service and server: `zookeeper/zk-sasl-md5`
    /// (host case-insensitive; an optional `/serv-name` must match too).
    fn check_digest_uri(&self, uri: &[u8]) -> Result<(), SaslError> {
        let text = std::str::from_utf8(uri).map_err(|_| invalid("digest-uri", "not text", uri))?;
        let mut parts = text.split('/');
        let service = parts.next().unwrap_or("");
        let host = parts.next().unwrap_or("");
        let name = parts.next();
        let ok = service.eq_ignore_ascii_case(&self.service)
            && host.eq_ignore_ascii_case(&self.server_name)
            && (name.is_none() || name.is_some_and(|n| n.eq_ignore_ascii_case(&self.server_name)))
            && parts.next().is_none();
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "digest-uri",
                &format!("expected {}/{}", self.service, self.server_name),
                uri,
            ))
        }
    }
}

fn invalid(name: &'static str, reason: &str, value: &[u8]) -> SaslError {
    SaslError::Invalid {
        name,
        reason: format!("{reason} (got {:?})", printable(value)),
    }
}

/// A bounded, printable rendering of client bytes for error messages.
fn printable(value: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(&value[..value.len().min(64)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.len() > 64 {
        format!("{shown}...")
    } else {
        shown
    }
}

fn fresh_nonce() -> String {
    let mut bytes = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A string as ISO 8859-1 bytes when every char fits, else UTF-8 (as the
/// JDK's DIGEST-MD5 does for text outside Latin-1).
fn latin1_or_utf8(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

/// Escapes `"` and `\` for a quoted-string.
fn quote(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// HEX(H(A1)) for `md5-sess`: A1 = H(user:realm:password) ":" nonce ":"
/// cnonce [":" authzid].
fn ha1(
    user: &[u8],
    realm: &[u8],
    password: &[u8],
    nonce: &[u8],
    cnonce: &[u8],
    authzid: Option<&[u8]>,
) -> String {
    let mut inner = Md5::new();
    inner.update(user);
    inner.update(b":");
    inner.update(realm);
    inner.update(b":");
    inner.update(password);
    let mut a1 = Md5::new();
    a1.update(inner.finalize());
    a1.update(b":");
    a1.update(nonce);
    a1.update(b":");
    a1.update(cnonce);
    if let Some(authzid) = authzid {
        a1.update(b":");
        a1.update(authzid);
    }
    hex::encode(a1.finalize())
}

/// HEX(KD(HEX(H(A1)), nonce:nc:cnonce:auth:HEX(H(A2)))) with A2 =
/// `a2_prefix` + digest-uri (`AUTHENTICATE:` for the response, `:` for
/// rspauth).
fn kd_response(
    ha1: &str,
    nonce: &[u8],
    nc: &[u8],
    cnonce: &[u8],
    a2_prefix: &[u8],
    digest_uri: &[u8],
) -> String {
    let mut a2 = Md5::new();
    a2.update(a2_prefix);
    a2.update(digest_uri);
    let ha2 = hex::encode(a2.finalize());
    let mut kd = Md5::new();
    for (i, part) in [ha1.as_bytes(), nonce, nc, cnonce, b"auth", ha2.as_bytes()]
        .iter()
        .enumerate()
    {
        if i > 0 {
            kd.update(b":");
        }
        kd.update(part);
    }
    hex::encode(kd.finalize())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 2831's `#rule` list of `name=value` directives, the value a token or
/// a quoted-string with `\` escapes. Names are case-insensitive (returned
/// lower-case); empty list elements are allowed; a repeated name is an
/// error; unknown names are kept (and ignored by the caller).
pub fn parse_directives(input: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, SaslError> {
    let mut out = BTreeMap::new();
    let mut pos = 0;
    let skip_lws = |pos: &mut usize| {
        while input
            .get(*pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            *pos += 1;
        }
    };
    loop {
        // Empty elements and separators.
        while input
            .get(pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b','))
        {
            pos += 1;
        }
        if pos >= input.len() {
            break;
        }
        let start = pos;
        while input.get(pos).is_some_and(|b| is_token_byte(*b)) {
            pos += 1;
        }
        if pos == start {
            return Err(SaslError::Malformed(format!(
                "expected a directive name at byte {pos}"
            )));
        }
        let name = String::from_utf8_lossy(&input[start..pos]).to_ascii_lowercase();
        skip_lws(&mut pos);
        if input.get(pos) != Some(&b'=') {
            return Err(SaslError::Malformed(format!(
                "expected '=' after {name:?} at byte {pos}"
            )));
        }
        pos += 1;
        skip_lws(&mut pos);
        let mut value = Vec::new();
        if input.get(pos) == Some(&b'"') {
            pos += 1;
            loop {
                match input.get(pos) {
                    None => {
                        return Err(SaslError::Malformed(format!(
                            "unterminated quoted value of {name:?}"
                        )))
                    }
                    Some(b'"') => {
                        pos += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(escaped) = input.get(pos + 1) else {
                            return Err(SaslError::Malformed(format!(
                                "unterminated quoted value of {name:?}"
                            )));
                        };
                        value.push(*escaped);
                        pos += 2;
                    }
                    Some(byte) => {
                        value.push(*byte);
                        pos += 1;
                    }
                }
            }
        } else {
            let start = pos;
            while input.get(pos).is_some_and(|b| is_token_byte(*b)) {
                pos += 1;
            }
            value.extend_from_slice(&input[start..pos]);
        }
        skip_lws(&mut pos);
        match input.get(pos) {
            None | Some(b',') => {}
            Some(_) => {
                return Err(SaslError::Malformed(format!(
                    "unexpected byte after the value of {name:?} at byte {pos}"
                )))
            }
        }
        if out.len() == MAX_DIRECTIVES {
            return Err(SaslError::Malformed(format!(
                "more than {MAX_DIRECTIVES} directives"
            )));
        }
        if out.contains_key(&name) {
            return Err(SaslError::Duplicate(name));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// RFC 2616 `token` characters: CHAR except CTLs and separators.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_graphic()
        && !matches!(
            byte,
            b'(' | b')'
                | b'<'
                | b'>'
                | b'@'
                | b','
                | b';'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'='
                | b'{'
                | b'}'
        )
}

/// The reply to a `sasl` request the server refuses: the reply header with
/// `code` and zxid 0, then `SetSASLResponse` with a null token, as the
/// reference sends it.
pub fn encode_refusal(xid: i32, code: ErrorCode, out: &mut Vec<u8>) {
    let start = crate::jute::begin_frame(out, 20);
    crate::jute::put_int(out, xid);
    crate::jute::put_long(out, 0);
    crate::jute::put_int(out, code.code());
    crate::jute::put_buffer(out, None);
    crate::jute::end_frame(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "127.0.0.1:5000";

    fn users(list: &[(&str, &str)]) -> DigestUsers {
        DigestUsers::new(
            list.iter()
                .map(|(n, p)| (n.to_string(), p.to_string()))
                .collect(),
        )
    }

    fn digest_settings() -> SaslSettings {
        SaslSettings {
            login: Login::Digest(users(&[("bob", "secret"), ("super", "listed")])),
            ..SaslSettings::default()
        }
    }

    /// What a client computes: the response for `password` to `challenge`.
    fn client_response(challenge: &[u8], user: &str, password: &str, cnonce: &str) -> Vec<u8> {
        let directives = parse_directives(challenge).unwrap();
        let nonce = String::from_utf8(directives["nonce"].clone()).unwrap();
        let realm = String::from_utf8(directives["realm"].clone()).unwrap();
        let uri = "zookeeper/zk-sasl-md5";
        let ha1 = ha1(
            user.as_bytes(),
            realm.as_bytes(),
            password.as_bytes(),
            nonce.as_bytes(),
            cnonce.as_bytes(),
            None,
        );
        let response = kd_response(
            &ha1,
            nonce.as_bytes(),
            b"00000001",
            cnonce.as_bytes(),
            b"AUTHENTICATE:",
            uri.as_bytes(),
        );
        format!(
            "charset=utf-8,username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",nc=00000001,\
             cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,response={response},qop=auth"
        )
        .into_bytes()
    }

    fn run(settings: &SaslSettings, exchange: &mut Exchange, token: &[u8]) -> Answer {
        exchange.answer(settings, Some(token), PEER.parse().unwrap(), SessionId(1))
    }

    fn challenge_of(answer: Answer) -> Vec<u8> {
        match answer {
            Answer::Token(Some(challenge)) => challenge,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    /// RFC 2831 section 4's example (IMAP, user chris, password secret):
    /// the response and rspauth the RFC prints.
    #[test]
    fn rfc2831_example_vector() {
        let mut server = DigestMd5Server::with_names(
            "elwood.innosoft.com",
            "imap",
            "elwood.innosoft.com",
            Some("OA6MG9tEQGm2hh"),
        );
        let challenge = server.evaluate(b"", &|_| None).unwrap();
        assert_eq!(
            challenge,
            Step::Challenge(
                b"realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",charset=utf-8,algorithm=md5-sess"
                    .to_vec()
            )
        );
        let response = b"charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
            nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",\
            digest-uri=\"imap/elwood.innosoft.com\",\
            response=d388dad90d4bbd760a152321f2143af7,qop=auth";
        let lookup = |name: &str| (name == "chris").then(|| "secret".to_string());
        assert_eq!(
            server.evaluate(response, &lookup).unwrap(),
            Step::Complete {
                token: b"rspauth=ea40f60335c427b5527b84dbabcdfffd".to_vec(),
                name: "chris".to_string(),
            }
        );
        assert_eq!(
            server.evaluate(b"", &lookup),
            Err(SaslError::Finished("complete"))
        );
    }

    #[test]
    fn challenge_has_zookeeper_realm_and_a_fresh_nonce() {
        let settings = digest_settings();
        let first = challenge_of(run(&settings, &mut Exchange::new(), b""));
        let second = challenge_of(run(&settings, &mut Exchange::new(), b""));
        let parsed = parse_directives(&first).unwrap();
        assert_eq!(parsed["realm"], b"zk-sasl-md5");
        assert!(!parsed.contains_key("qop"), "auth is the default");
        assert_eq!(parsed["charset"], b"utf-8");
        assert_eq!(parsed["algorithm"], b"md5-sess");
        assert_eq!(parsed["nonce"].len(), 2 * NONCE_BYTES);
        assert_ne!(parsed["nonce"], parse_directives(&second).unwrap()["nonce"]);
    }

    #[test]
    fn login_gives_sasl_identity_then_refuses_more() {
        let mut settings = digest_settings();
        settings.super_users = vec!["bob".to_string()];
        let mut exchange = Exchange::new();
        let challenge = challenge_of(run(&settings, &mut exchange, b""));
        let response = client_response(&challenge, "bob", "secret", "c1");
        match run(&settings, &mut exchange, &response) {
            Answer::Authenticated { token, identities } => {
                assert!(token.starts_with(b"rspauth="));
                assert_eq!(
                    identities,
                    vec![Id::new("sasl", "bob"), Id::new("super", "")]
                );
            }
            other => panic!("expected success, got {other:?}"),
        }
        assert_eq!(
            run(&settings, &mut exchange, b""),
            Answer::Refuse {
                code: ErrorCode::AuthFailed,
                close: true
            }
        );
    }

    #[test]
    fn super_password_property_replaces_the_listed_one() {
        let mut settings = digest_settings();
        settings.super_password = Some("from-property".to_string());
        let mut exchange = Exchange::new();
        let challenge = challenge_of(run(&settings, &mut exchange, b""));
        let response = client_response(&challenge, "super", "from-property", "c");
        assert!(matches!(
            run(&settings, &mut exchange, &response),
            Answer::Authenticated { .. }
        ));
    }

    #[track_caller]
    fn check_failure(
        settings: &SaslSettings,
        response: &dyn Fn(&[u8]) -> Vec<u8>,
        expected: Answer,
    ) {
        let mut exchange = Exchange::new();
        let challenge = challenge_of(run(settings, &mut exchange, b""));
        assert_eq!(
            run(settings, &mut exchange, &response(&challenge)),
            expected
        );
    }

    const AUTH_FAILED_CLOSE: Answer = Answer::Refuse {
        code: ErrorCode::AuthFailed,
        close: true,
    };

    #[test]
    fn wrong_password_and_unknown_user_fail_and_close() {
        let settings = digest_settings();
        check_failure(
            &settings,
            &|c| client_response(c, "bob", "wrong", "x"),
            AUTH_FAILED_CLOSE,
        );
        check_failure(
            &settings,
            &|c| client_response(c, "eve", "secret", "x"),
            AUTH_FAILED_CLOSE,
        );
    }

    #[test]
    fn failure_policy_follows_allow_failed_and_required() {
        let mut settings = digest_settings();
        settings.allow_failed_clients = true;
        let mut exchange = Exchange::new();
        let challenge = challenge_of(run(&settings, &mut exchange, b""));
        let wrong = client_response(&challenge, "bob", "wrong", "x");
        // Kept, with the reference's null token...
        assert_eq!(run(&settings, &mut exchange, &wrong), Answer::Token(None));
        // ...and a client that tries again is refused at once, still kept.
        assert_eq!(
            run(&settings, &mut exchange, &wrong),
            Answer::Refuse {
                code: ErrorCode::AuthFailed,
                close: false
            }
        );
        settings.enforce_auth_schemes = vec!["sasl".to_string()];
        check_failure(
            &settings,
            &|c| client_response(c, "bob", "wrong", "x"),
            Answer::Refuse {
                code: ErrorCode::SessionClosedRequireSaslAuth,
                close: true,
            },
        );
    }

    /// A GSSAPI client starts with a Kerberos token: refused at once.
    #[test]
    fn initial_response_is_refused() {
        let settings = digest_settings();
        let mut exchange = Exchange::new();
        assert_eq!(
            run(&settings, &mut exchange, b"\x60\x82\x02\x00kerberos"),
            AUTH_FAILED_CLOSE
        );
        let kerberos = SaslSettings {
            login: Login::Unsupported {
                module: "com.sun.security.auth.module.Krb5LoginModule".to_string(),
            },
            ..SaslSettings::default()
        };
        assert_eq!(run(&kerberos, &mut Exchange::new(), b""), AUTH_FAILED_CLOSE);
    }

    #[test]
    fn without_login_a_null_token_once_then_refusal() {
        let settings = SaslSettings::default();
        let mut exchange = Exchange::new();
        assert_eq!(run(&settings, &mut exchange, b""), Answer::Token(None));
        assert_eq!(run(&settings, &mut exchange, b""), AUTH_FAILED_CLOSE);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let mut server = DigestMd5Server::new();
        let challenge = match server.evaluate(b"", &|_| None).unwrap() {
            Step::Challenge(c) => c,
            other => panic!("{other:?}"),
        };
        let good = String::from_utf8(client_response(&challenge, "bob", "secret", "abc")).unwrap();
        let lookup = |name: &str| (name == "bob").then(|| "secret".to_string());
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "directive username is missing"),
            (
                good.replace("username=\"bob\",", ""),
                "directive username is missing",
            ),
            (
                format!("{good},username=\"bob\""),
                "directive username appears more than once",
            ),
            (
                format!("{good},NONCE=\"x\""),
                "directive nonce appears more than once",
            ),
            (
                good.replace("nc=00000001", "nc=00000002"),
                "subsequent authentication",
            ),
            (good.replace("nc=00000001", "nc=zz"), "not 8 hex digits"),
            (
                good.replace("qop=auth", "qop=auth-conf"),
                "only auth is offered",
            ),
            (
                good.replace("zookeeper/zk-sasl-md5", "imap/zk-sasl-md5"),
                "expected zookeeper/zk-sasl-md5",
            ),
            (
                good.replace("realm=\"zk-sasl-md5\"", "realm=\"other\""),
                "not the realm offered",
            ),
            (
                good.replacen("nonce=\"", "nonce=\"x", 1),
                "not the nonce sent",
            ),
            (
                good.replace("charset=utf-8", "charset=latin1"),
                "only utf-8",
            ),
            (
                format!("{good},x=\"unterminated"),
                "unterminated quoted value",
            ),
            (
                format!("{good},x=\"ends in backslash\\"),
                "unterminated quoted value",
            ),
            (format!("{good},=novalue"), "expected a directive name"),
            (format!("{good},name"), "expected '='"),
            (format!("{good},a=b c"), "unexpected byte"),
            (good.replace("maxbuf=65536", "maxbuf=lots"), "not a number"),
            ("\u{0}\u{1}garbage".to_string(), "expected a directive name"),
            (
                (0..40)
                    .map(|i| format!("d{i}=1"))
                    .collect::<Vec<_>>()
                    .join(","),
                "more than 32",
            ),
        ];
        for (response, expected) in cases {
            let mut server = DigestMd5Server::new();
            let _ = server.evaluate(b"", &|_| None);
            // Re-aim the case at this server's nonce.
            let nonce_now = match &server.state {
                DigestState::Challenged { nonce } => nonce.clone(),
                other => panic!("{other:?}"),
            };
            let old_nonce =
                String::from_utf8(parse_directives(&challenge).unwrap()["nonce"].clone()).unwrap();
            let response = response.replace(&old_nonce, &nonce_now);
            let error = server
                .evaluate(response.as_bytes(), &lookup)
                .expect_err(&response)
                .to_string();
            assert!(error.contains(expected), "{response:?}: {error}");
        }
        let mut server = DigestMd5Server::new();
        let _ = server.evaluate(b"", &|_| None);
        assert_eq!(
            server.evaluate(&vec![b'a'; MAX_RESPONSE_BYTES + 1], &lookup),
            Err(SaslError::TooLong(MAX_RESPONSE_BYTES + 1))
        );
    }

    #[test]
    fn directives_allow_lws_empty_elements_and_escapes() {
        let parsed = parse_directives(b" ,a = \"x\\\"y\" ,, B=tok ,\r\n c=\"\"").unwrap();
        assert_eq!(parsed["a"], b"x\"y");
        assert_eq!(parsed["b"], b"tok");
        assert_eq!(parsed["c"], b"");
    }

    #[test]
    fn uppercase_response_hex_is_accepted() {
        let settings = digest_settings();
        let mut exchange = Exchange::new();
        let challenge = challenge_of(run(&settings, &mut exchange, b""));
        let response =
            String::from_utf8(client_response(&challenge, "bob", "secret", "q")).unwrap();
        let (head, hash) = response.split_once("response=").unwrap();
        let (hash, tail) = hash.split_once(',').unwrap();
        let upper = format!("{head}response={},{tail}", hash.to_ascii_uppercase());
        assert!(matches!(
            run(&settings, &mut exchange, upper.as_bytes()),
            Answer::Authenticated { .. }
        ));
    }

    #[test]
    fn passwords_stay_out_of_debug() {
        let text = format!("{:?}", digest_settings());
        assert!(text.contains("bob") && !text.contains("secret"), "{text}");
    }

    #[test]
    fn refusal_wire_shape() {
        let mut out = Vec::new();
        encode_refusal(7, ErrorCode::AuthFailed, &mut out);
        let mut expected = vec![0, 0, 0, 20, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&(-115i32).to_be_bytes());
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(out, expected);
    }

    proptest::proptest! {
        /// Any bytes, at any step, are an answer: never a panic, and at
        /// most two requests before the exchange is over.
        #[test]
        fn any_tokens_end_the_exchange(
            tokens in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 1..5)
        ) {
            let settings = digest_settings();
            let mut exchange = Exchange::new();
            for (i, token) in tokens.iter().enumerate() {
                let answer = run(&settings, &mut exchange, token);
                if i >= 2 {
                    proptest::prop_assert!(matches!(answer, Answer::Refuse { .. }), "{answer:?}");
                }
            }
        }
    }

    #[test]
    fn enforcement_admits_listed_schemes() {
        let mut settings = SaslSettings::default();
        let ip = [Id::new("ip", "127.0.0.1")];
        assert!(settings.admits(&ip));
        settings.enforce_auth_schemes = vec!["sasl".to_string()];
        assert!(!settings.admits(&ip));
        assert!(settings.admits(&[Id::new("ip", "1"), Id::new("sasl", "bob")]));
    }
}
