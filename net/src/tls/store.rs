//! Key and trust stores as Apache ZooKeeper's `ssl.keyStore.*` and
//! `ssl.trustStore.*` name them: PEM files, PKCS#12 archives and Java
//! KeyStores (JKS, read by [`super::jks`]), read into rustls' certificate
//! and key types. The type comes from `.type` or, as in the reference, from
//! the file's extension (`.pem`, `.p12`, `.jks`, `.bcfks`); as Java does, a
//! JKS type also reads a PKCS#12 file and a PKCS12 type a JKS file. BCFKS
//! (BouncyCastle's FIPS format) is refused with the `keytool` command that
//! converts it.
//!
//! Store files are operator input, read once at start-up: each is bounded in
//! size before it is read, and every malformed byte is an error naming the
//! file, never a panic.

use super::{jks, StoreSpec, TlsError};
use base64::Engine;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use std::io::Read;

/// No store is anywhere near this; a larger file is not a store.
const MAX_STORE_BYTES: u64 = 16 * 1024 * 1024;

/// A store's format, as `ssl.*.type` names it (any case) or its extension
/// implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreType {
    Pem,
    Pkcs12,
    Jks,
    Bcfks,
}

impl StoreType {
    /// The reference's `KeyStoreFileType.fromPropertyValue`: the enum name
    /// in any case.
    pub fn from_name(name: &str) -> Option<StoreType> {
        match name.to_ascii_uppercase().as_str() {
            "PEM" => Some(StoreType::Pem),
            "PKCS12" => Some(StoreType::Pkcs12),
            "JKS" => Some(StoreType::Jks),
            "BCFKS" => Some(StoreType::Bcfks),
            _ => None,
        }
    }

    /// The reference's `KeyStoreFileType.fromFilename`: the extension after
    /// the last dot, exactly (`.p12`, not `.pfx`).
    fn from_file_name(path: &str) -> Option<StoreType> {
        let extension = &path[path.rfind('.')?..];
        match extension {
            ".pem" => Some(StoreType::Pem),
            ".p12" => Some(StoreType::Pkcs12),
            ".jks" => Some(StoreType::Jks),
            ".bcfks" => Some(StoreType::Bcfks),
            _ => None,
        }
    }

    /// The type `spec` names, or the one its file name implies.
    pub fn of(spec: &StoreSpec) -> Result<StoreType, TlsError> {
        match &spec.store_type {
            Some(name) if !name.is_empty() => {
                StoreType::from_name(name).ok_or_else(|| TlsError::Store {
                    key: spec.key.to_string(),
                    path: spec.location.clone(),
                    message: format!("unknown store type {name:?}: expected PEM, PKCS12 or JKS"),
                })
            }
            _ => StoreType::from_file_name(&spec.location.to_string_lossy()).ok_or_else(|| {
                TlsError::Store {
                    key: spec.key.to_string(),
                    path: spec.location.clone(),
                    message: format!(
                        "cannot tell the store type from the file name; set {}.type to PEM, PKCS12 or JKS",
                        spec.key
                    ),
                }
            }),
        }
    }
}

fn store_error(spec: &StoreSpec, message: impl Into<String>) -> TlsError {
    TlsError::Store {
        key: spec.key.to_string(),
        path: spec.location.clone(),
        message: message.into(),
    }
}

/// The file's bytes, refusing anything larger than a store can be.
fn read_bounded(spec: &StoreSpec) -> Result<Vec<u8>, TlsError> {
    let file = std::fs::File::open(&spec.location)
        .map_err(|error| store_error(spec, format!("cannot open: {error}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_STORE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| store_error(spec, format!("cannot read: {error}")))?;
    if bytes.len() as u64 > MAX_STORE_BYTES {
        return Err(store_error(
            spec,
            format!("larger than {MAX_STORE_BYTES} bytes; not a key store"),
        ));
    }
    Ok(bytes)
}

/// BCFKS needs BouncyCastle's FIPS provider; nothing here reads it.
fn unsupported_bcfks(spec: &StoreSpec) -> TlsError {
    store_error(
        spec,
        format!(
            "BCFKS stores are Java-only and not supported here; convert it to PKCS12 with \
             `keytool -importkeystore -srckeystore {} -srcstoretype BCFKS -destkeystore store.p12 \
             -deststoretype PKCS12` (with BouncyCastle's provider) and set {}.type=PKCS12 \
             (or use PEM or JKS)",
            spec.location.display(),
            spec.key
        ),
    )
}

/// The format the bytes are in. As Java's keystore compatibility mode does
/// (the default since Java 9), a JKS type reads a PKCS#12 file and a PKCS12
/// type a JKS file: the JKS magic decides.
fn content_type(kind: StoreType, bytes: &[u8]) -> StoreType {
    match kind {
        StoreType::Jks | StoreType::Pkcs12 if jks::is_jks(bytes) => StoreType::Jks,
        StoreType::Jks if bytes.first() == Some(&0x30) => StoreType::Pkcs12,
        other => other,
    }
}

/// The server's certificate chain (leaf first) and private key.
pub fn load_key_store(
    spec: &StoreSpec,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let kind = StoreType::of(spec)?;
    if kind == StoreType::Bcfks {
        return Err(unsupported_bcfks(spec));
    }
    let bytes = read_bounded(spec)?;
    match content_type(kind, &bytes) {
        StoreType::Bcfks => Err(unsupported_bcfks(spec)),
        StoreType::Pem => {
            let blocks = pem_blocks(&bytes).map_err(|message| store_error(spec, message))?;
            let mut certs = Vec::new();
            let mut key = None;
            for (label, der) in blocks {
                match label.as_str() {
                    "CERTIFICATE" => certs.push(CertificateDer::from(der)),
                    "PRIVATE KEY" => key = key.or(Some(PrivateKeyDer::Pkcs8(der.into()))),
                    "RSA PRIVATE KEY" => {
                        key = key.or(Some(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))))
                    }
                    "EC PRIVATE KEY" => {
                        key = key.or(Some(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))))
                    }
                    "ENCRYPTED PRIVATE KEY" if key.is_none() => {
                        key = Some(decrypt_pkcs8(spec, &der)?);
                    }
                    _ => {}
                }
            }
            let key = key.ok_or_else(|| store_error(spec, "no private key in the PEM file"))?;
            if certs.is_empty() {
                return Err(store_error(spec, "no certificate in the PEM file"));
            }
            Ok((certs, key))
        }
        StoreType::Pkcs12 => {
            let store = p12_keystore::KeyStore::from_pkcs12(&bytes, &spec.password)
                .map_err(|error| store_error(spec, format!("cannot read PKCS12: {error}")))?;
            let (_, chain) = store
                .private_key_chain()
                .ok_or_else(|| store_error(spec, "no private key entry in the PKCS12 store"))?;
            let certs: Vec<CertificateDer<'static>> = chain
                .chain()
                .iter()
                .map(|cert| CertificateDer::from(cert.as_der().to_vec()))
                .collect();
            if certs.is_empty() {
                return Err(store_error(spec, "the key entry has no certificate"));
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().to_vec()));
            Ok((certs, key))
        }
        StoreType::Jks => {
            let entries = jks::parse(&bytes, &spec.password)
                .map_err(|message| store_error(spec, format!("cannot read JKS: {message}")))?;
            // The first key entry in the file, as Java's key manager serves
            // a store holding one.
            let (alias, protected_key, chain) = entries
                .into_iter()
                .find_map(|entry| match entry {
                    jks::Entry::PrivateKey {
                        alias,
                        protected_key,
                        chain,
                    } => Some((alias, protected_key, chain)),
                    jks::Entry::TrustedCert { .. } => None,
                })
                .ok_or_else(|| store_error(spec, "no private key entry in the JKS store"))?;
            if spec.password.is_empty() {
                return Err(store_error(
                    spec,
                    format!(
                        "the key entry {alias:?} is protected but {}.password is not set",
                        spec.key
                    ),
                ));
            }
            if chain.is_empty() {
                return Err(store_error(
                    spec,
                    format!("the key entry {alias:?} has no certificate"),
                ));
            }
            let key = jks::recover_key(protected_key, &spec.password).map_err(|message| {
                store_error(spec, format!("the key entry {alias:?}: {message}"))
            })?;
            let certs = chain
                .into_iter()
                .map(|cert| CertificateDer::from(cert.to_vec()))
                .collect();
            Ok((certs, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key))))
        }
    }
}

/// The certificates a trust store holds. PKCS#12 trust entries are the
/// certificates Java marks trusted (what `keytool -importcert` writes);
/// certificates without that mark are ignored there too. A JKS store's are,
/// as Java's trust manager takes them, its trusted certificate entries and
/// the leaf certificate of each key entry.
pub fn load_trust_store(spec: &StoreSpec) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let kind = StoreType::of(spec)?;
    if kind == StoreType::Bcfks {
        return Err(unsupported_bcfks(spec));
    }
    let bytes = read_bounded(spec)?;
    let kind = content_type(kind, &bytes);
    let certs: Vec<CertificateDer<'static>> = match kind {
        StoreType::Bcfks => return Err(unsupported_bcfks(spec)),
        StoreType::Pem => pem_blocks(&bytes)
            .map_err(|message| store_error(spec, message))?
            .into_iter()
            .filter(|(label, _)| label == "CERTIFICATE")
            .map(|(_, der)| CertificateDer::from(der))
            .collect(),
        StoreType::Pkcs12 => {
            let store = p12_keystore::KeyStore::from_pkcs12(&bytes, &spec.password)
                .map_err(|error| store_error(spec, format!("cannot read PKCS12: {error}")))?;
            store
                .entries()
                .filter_map(|(_, entry)| match entry {
                    p12_keystore::KeyStoreEntry::Certificate(cert) => {
                        Some(CertificateDer::from(cert.as_der().to_vec()))
                    }
                    _ => None,
                })
                .collect()
        }
        StoreType::Jks => jks::parse(&bytes, &spec.password)
            .map_err(|message| store_error(spec, format!("cannot read JKS: {message}")))?
            .into_iter()
            .filter_map(|entry| match entry {
                jks::Entry::TrustedCert { cert, .. } => Some(cert),
                jks::Entry::PrivateKey { chain, .. } => chain.first().copied(),
            })
            .map(|cert| CertificateDer::from(cert.to_vec()))
            .collect(),
    };
    if certs.is_empty() {
        let hint = if kind == StoreType::Pkcs12 {
            " (PKCS12 trust entries need Java's trusted-certificate mark: create the store with \
             `keytool -importcert -storetype PKCS12`, or use a PEM file)"
        } else {
            ""
        };
        return Err(store_error(spec, format!("no trusted certificate{hint}")));
    }
    Ok(certs)
}

/// An `ENCRYPTED PRIVATE KEY` block (PKCS#8 with PBES2), as the
/// reference's PEM reader decrypts it with the store's password.
fn decrypt_pkcs8(spec: &StoreSpec, der: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    if spec.password.is_empty() {
        return Err(store_error(
            spec,
            format!(
                "the private key is encrypted but {}.password is not set",
                spec.key
            ),
        ));
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|error| store_error(spec, format!("malformed encrypted private key: {error}")))?;
    let document = info.decrypt(spec.password.as_bytes()).map_err(|error| {
        store_error(
            spec,
            format!("cannot decrypt the private key (wrong password?): {error}"),
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        document.as_bytes().to_vec(),
    )))
}

/// The `-----BEGIN <label>-----` blocks of a PEM file, decoded, in order.
/// Text outside blocks (comments, `Bag Attributes` from OpenSSL) is skipped.
fn pem_blocks(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not a PEM text file".to_string())?;
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let line = line.trim();
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for (_, line) in lines.by_ref() {
            let line = line.trim();
            if line == end {
                closed = true;
                break;
            }
            // Legacy encryption headers (Proc-Type, DEK-Info) hold a colon.
            if line.contains(':') {
                return Err(format!(
                    "the {label} block uses legacy PEM encryption headers; \
                     convert the key to PKCS#8 (`openssl pkcs8 -topk8`)"
                ));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(format!("the {label} block has no END line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|error| format!("the {label} block is not valid base64: {error}"))?;
        blocks.push((label.to_string(), der));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_type_from_name_or_extension() {
        let spec = |location: &str, store_type: Option<&str>| StoreSpec {
            key: "ssl.keyStore",
            location: location.into(),
            password: String::new(),
            store_type: store_type.map(str::to_string),
        };
        assert_eq!(
            StoreType::of(&spec("/k/a.pem", None)).ok(),
            Some(StoreType::Pem)
        );
        assert_eq!(
            StoreType::of(&spec("/k/a.p12", None)).ok(),
            Some(StoreType::Pkcs12)
        );
        assert_eq!(
            StoreType::of(&spec("/k/a.jks", None)).ok(),
            Some(StoreType::Jks)
        );
        assert_eq!(
            StoreType::of(&spec("/k/a.bin", Some("pkcs12"))).ok(),
            Some(StoreType::Pkcs12)
        );
        assert_eq!(
            StoreType::of(&spec("/k/a.bin", None))
                .map_err(|e| e.to_string())
                .err()
                .as_deref(),
            Some(
                "ssl.keyStore /k/a.bin: cannot tell the store type from the file name; \
                 set ssl.keyStore.type to PEM, PKCS12 or JKS"
            )
        );
        let bcfks = load_key_store(&spec("/k/a.bcfks", None)).map_err(|e| e.to_string());
        assert!(
            bcfks
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("BCFKS stores are Java-only")),
            "{bcfks:?}"
        );
        let unknown = StoreType::of(&spec("/k/a.jks", Some("JCEKS"))).map_err(|e| e.to_string());
        assert_eq!(
            unknown.err().as_deref(),
            Some(
                "ssl.keyStore /k/a.jks: unknown store type \"JCEKS\": expected PEM, PKCS12 or JKS"
            )
        );
    }

    /// A file under the temporary directory, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> TempFile {
            let path =
                std::env::temp_dir().join(format!("net-store-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).expect("write the store");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn jks_spec(
        key: &'static str,
        file: &TempFile,
        password: &str,
        kind: Option<&str>,
    ) -> StoreSpec {
        StoreSpec {
            key,
            location: file.0.clone(),
            password: password.to_string(),
            store_type: kind.map(str::to_string),
        }
    }

    #[test]
    fn jks_key_and_trust_stores_serve_tls() {
        use super::jks::testing::{write, TestEntry};
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let server_key = rcgen::KeyPair::generate().expect("key");
        let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .signed_by(&server_key, &issuer)
            .expect("server");
        let pkcs8 = server_key.serialize_der();
        let password = "changeit";
        let key_store = write(
            2,
            &[TestEntry::PrivateKey {
                alias: "server",
                pkcs8: &pkcs8,
                chain: vec![server.der(), ca.der()],
            }],
            password,
        );
        let trust_store = write(
            2,
            &[TestEntry::TrustedCert {
                alias: "ca",
                cert: ca.der(),
            }],
            password,
        );
        let key_file = TempFile::new("server.jks", &key_store);
        let trust_file = TempFile::new("trust.jks", &trust_store);

        let (certs, key) =
            load_key_store(&jks_spec("ssl.keyStore", &key_file, password, None)).expect("key");
        assert_eq!(certs, vec![server.der().clone(), ca.der().clone()]);
        assert_eq!(key.secret_der(), &pkcs8[..]);
        // The leaf of a key entry is a trust anchor too, as in Java.
        assert_eq!(
            load_trust_store(&jks_spec("ssl.trustStore", &key_file, password, None))
                .expect("trust"),
            vec![server.der().clone()]
        );
        // A JKS file under the PKCS12 type reads, as Java's compatibility
        // mode reads it; a trust store needs no password.
        assert_eq!(
            load_trust_store(&jks_spec("ssl.trustStore", &trust_file, "", Some("PKCS12")))
                .expect("trust"),
            vec![ca.der().clone()]
        );

        // rustls takes the pair and the anchors: the key matches its leaf.
        let options = super::super::TlsOptions {
            key_store: Some(jks_spec("ssl.keyStore", &key_file, password, Some("jks"))),
            trust_store: Some(jks_spec("ssl.trustStore", &trust_file, password, None)),
            ..super::super::TlsOptions::default()
        };
        super::super::TlsServer::new(&options).expect("a TLS server from JKS stores");

        // Errors name the file and what is wrong.
        let wrong = load_key_store(&jks_spec("ssl.keyStore", &key_file, "wrong", None))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            wrong,
            Err(format!(
                "ssl.keyStore {}: cannot read JKS: the integrity check failed: \
                 the password is wrong, or the store is corrupted",
                key_file.0.display()
            ))
        );
        let no_password = load_key_store(&jks_spec("ssl.keyStore", &key_file, "", None))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            no_password.as_ref().is_err_and(|e| e.ends_with(
                "the key entry \"server\" is protected but ssl.keyStore.password is not set"
            )),
            "{no_password:?}"
        );
        let no_key = load_key_store(&jks_spec("ssl.keyStore", &trust_file, password, None))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            no_key
                .as_ref()
                .is_err_and(|e| e.ends_with("no private key entry in the JKS store")),
            "{no_key:?}"
        );
        let cut = TempFile::new("cut.jks", &key_store[..key_store.len() / 2]);
        let cut = load_key_store(&jks_spec("ssl.keyStore", &cut, password, None))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            cut.as_ref()
                .is_err_and(|e| e.contains("cannot read JKS: cut short")),
            "{cut:?}"
        );
    }

    #[test]
    fn pem_blocks_are_bounded_and_checked() {
        let text = b"junk\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert_eq!(
            pem_blocks(text),
            Ok(vec![("CERTIFICATE".to_string(), vec![0, 1, 2])])
        );
        assert!(pem_blocks(b"-----BEGIN CERTIFICATE-----\nAAEC\n").is_err());
        assert!(
            pem_blocks(b"-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----").is_err()
        );
        assert!(pem_blocks(&[0xff, 0xfe]).is_err());
        assert_eq!(pem_blocks(b""), Ok(vec![]));
    }
}
