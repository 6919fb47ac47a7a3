//! Key and trust stores as Apache ZooKeeper's `ssl.keyStore.*` and
//! `ssl.trustStore.*` name them: PEM files and PKCS#12 archives, read into
//! rustls' certificate and key types. The type comes from `.type` or, as in
//! the reference, from the file's extension (`.pem`, `.p12`, `.jks`,
//! `.bcfks`). JKS and BCFKS are Java-only formats no maintained crate reads:
//! they are refused with the `keytool` command that converts them.
//!
//! Store files are operator input, read once at start-up: each is bounded in
//! size before it is read, and every malformed byte is an error naming the
//! file, never a panic.

use super::{StoreSpec, TlsError};
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
                    message: format!("unknown store type {name:?}: expected PEM or PKCS12"),
                })
            }
            _ => StoreType::from_file_name(&spec.location.to_string_lossy()).ok_or_else(|| {
                TlsError::Store {
                    key: spec.key.to_string(),
                    path: spec.location.clone(),
                    message: format!(
                        "cannot tell the store type from the file name; set {}.type to PEM or PKCS12",
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

fn unsupported_java_store(spec: &StoreSpec, kind: StoreType) -> TlsError {
    let name = if kind == StoreType::Jks {
        "JKS"
    } else {
        "BCFKS"
    };
    store_error(
        spec,
        format!(
            "{name} stores are Java-only and not supported here; convert it to PKCS12 with \
             `keytool -importkeystore -srckeystore {} -destkeystore store.p12 -deststoretype PKCS12` \
             and set {}.type=PKCS12 (or use PEM)",
            spec.location.display(),
            spec.key
        ),
    )
}

/// The server's certificate chain (leaf first) and private key.
pub fn load_key_store(
    spec: &StoreSpec,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let kind = StoreType::of(spec)?;
    match kind {
        StoreType::Jks | StoreType::Bcfks => Err(unsupported_java_store(spec, kind)),
        StoreType::Pem => {
            let bytes = read_bounded(spec)?;
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
                    "ENCRYPTED PRIVATE KEY" => {
                        if key.is_none() {
                            key = Some(decrypt_pkcs8(spec, &der)?);
                        }
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
            let bytes = read_bounded(spec)?;
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
    }
}

/// The certificates a trust store holds. PKCS#12 trust entries are the
/// certificates Java marks trusted (what `keytool -importcert` writes);
/// certificates without that mark are ignored there too.
pub fn load_trust_store(spec: &StoreSpec) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let kind = StoreType::of(spec)?;
    let certs: Vec<CertificateDer<'static>> = match kind {
        StoreType::Jks | StoreType::Bcfks => return Err(unsupported_java_store(spec, kind)),
        StoreType::Pem => {
            let bytes = read_bounded(spec)?;
            pem_blocks(&bytes)
                .map_err(|message| store_error(spec, message))?
                .into_iter()
                .filter(|(label, _)| label == "CERTIFICATE")
                .map(|(_, der)| CertificateDer::from(der))
                .collect()
        }
        StoreType::Pkcs12 => {
            let bytes = read_bounded(spec)?;
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
                 set ssl.keyStore.type to PEM or PKCS12"
            )
        );
        let jks = load_key_store(&spec("/k/a.jks", None)).map_err(|e| e.to_string());
        assert!(
            jks.as_ref()
                .err()
                .is_some_and(|e| e.contains("JKS stores are Java-only")),
            "{jks:?}"
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
