//! X.509 version 1 end-entity certificates, which Java's TLS stack (and so
//! Apache ZooKeeper) accepts and rustls' certificate checks (webpki) refuse
//! as `UnsupportedCertVersion`. kazoo's test harness, for one, signs its
//! server and client certificates as version 1.
//!
//! Two places meet such a certificate: the server's own chain, which rustls
//! parses only to check that the key matches it ([`certified_key`] does
//! that check itself, for any version), and a client's certificate, which
//! [`ClientVerifier`] accepts when it is version 1 and signed directly by a
//! trusted certificate; every other certificate goes through webpki as
//! before. A version 1 certificate has no extensions, so nothing in it can
//! say it is a CA: one may only be a leaf, issued by a trust anchor, never
//! an intermediate. The checks made here are the ones webpki makes of a
//! leaf that has no extensions: validity at the handshake's time, an issuer
//! among the trust anchors by exact name, and the issuer's signature over
//! the to-be-signed bytes by an algorithm the crypto provider verifies.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, SignatureVerificationAlgorithm, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

/// The server's chain and key, checked to belong together by comparing the
/// key's public half with the leaf's SubjectPublicKeyInfo.
pub(super) fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let leaf = certs.first().ok_or("the key store holds no certificate")?;
    let (_, parsed) = X509Certificate::from_der(leaf)
        .map_err(|error| format!("the certificate is unreadable: {error}"))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| format!("the private key is not usable: {error}"))?;
    match signing.public_key() {
        Some(spki) if spki.as_ref() != parsed.tbs_certificate.subject_pki.raw => {
            return Err("the private key does not match the certificate".to_string());
        }
        // A key whose public half the provider cannot give (none of ring's)
        // is used as it is: the first handshake will fail if it is wrong.
        _ => {}
    }
    Ok(CertifiedKey::new(certs, signing))
}

/// The one chain the server offers, whatever the client hello says.
#[derive(Debug)]
pub(super) struct SingleCert(pub(super) Arc<CertifiedKey>);

impl ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A trusted certificate, as a version 1 leaf's issuer is looked up.
#[derive(Debug)]
struct Anchor {
    /// The DER `Name` of its subject.
    subject: Vec<u8>,
    spki: SubjectPublicKeyInfoDer<'static>,
}

/// webpki's client verifier, with version 1 leaves issued by a trust anchor
/// accepted beside it.
#[derive(Debug)]
pub(super) struct ClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    anchors: Vec<Anchor>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    /// `trusted`: the trust store's certificates, already accepted by
    /// `webpki` as its roots.
    pub(super) fn new(
        webpki: Arc<dyn ClientCertVerifier>,
        trusted: &[CertificateDer<'_>],
        provider: &CryptoProvider,
    ) -> Result<ClientVerifier, String> {
        let mut anchors = Vec::with_capacity(trusted.len());
        for cert in trusted {
            let (_, parsed) = X509Certificate::from_der(cert)
                .map_err(|error| format!("a trusted certificate is unreadable: {error}"))?;
            anchors.push(Anchor {
                subject: parsed.subject().as_raw().to_vec(),
                spki: SubjectPublicKeyInfoDer::from(
                    parsed.tbs_certificate.subject_pki.raw.to_vec(),
                ),
            });
        }
        Ok(ClientVerifier {
            webpki,
            anchors,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    fn verify_v1(&self, leaf: &X509Certificate<'_>, now: UnixTime) -> Result<(), Error> {
        let at = x509_parser::time::ASN1Time::from_timestamp(now.as_secs() as i64)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let validity = leaf.validity();
        if at < validity.not_before {
            return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
        }
        if at > validity.not_after {
            return Err(Error::InvalidCertificate(CertificateError::Expired));
        }
        let oid = leaf.signature_algorithm.algorithm.as_bytes();
        let issuer = leaf.issuer().as_raw();
        let tbs = leaf.tbs_certificate.as_ref();
        let signature = leaf.signature_value.data.as_ref();
        let mut issuer_known = false;
        for anchor in self
            .anchors
            .iter()
            .filter(|anchor| anchor.subject == issuer)
        {
            issuer_known = true;
            let Ok(key) = webpki::RawPublicKeyEntity::try_from(&anchor.spki) else {
                continue;
            };
            let signed = self
                .algorithms
                .all
                .iter()
                .filter(|algorithm| names_oid(algorithm.signature_alg_id().as_ref(), oid))
                .any(|algorithm| key.verify_signature(*algorithm, tbs, signature).is_ok());
            if signed {
                return Ok(());
            }
        }
        Err(Error::InvalidCertificate(if issuer_known {
            CertificateError::BadSignature
        } else {
            CertificateError::UnknownIssuer
        }))
    }

    /// A handshake signature by a version 1 leaf's key: TLS 1.2 tries every
    /// algorithm the scheme maps to, TLS 1.3 the first, as rustls does.
    fn verify_with_key(
        &self,
        message: &[u8],
        spki: &[u8],
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, Error> {
        if tls13 && !tls13_scheme(dss.scheme) {
            return Err(Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        let algorithms: &[&dyn SignatureVerificationAlgorithm] = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .ok_or(Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        let algorithms = if tls13 {
            &algorithms[..algorithms.len().min(1)]
        } else {
            algorithms
        };
        let spki = SubjectPublicKeyInfoDer::from(spki);
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if algorithms.iter().any(|algorithm| {
            key.verify_signature(*algorithm, message, dss.signature())
                .is_ok()
        }) {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        }
    }

    fn handshake_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, Error> {
        match version_1(cert)? {
            Some(leaf) => {
                self.verify_with_key(message, leaf.tbs_certificate.subject_pki.raw, dss, tls13)
            }
            None if tls13 => self.webpki.verify_tls13_signature(message, cert, dss),
            None => self.webpki.verify_tls12_signature(message, cert, dss),
        }
    }
}

/// The certificate parsed, if it is version 1; `None` for any other
/// version, which webpki judges.
fn version_1<'a>(cert: &'a CertificateDer<'_>) -> Result<Option<X509Certificate<'a>>, Error> {
    match X509Certificate::from_der(cert) {
        Ok((rest, parsed)) if rest.is_empty() && parsed.version() == X509Version::V1 => {
            Ok(Some(parsed))
        }
        Ok(_) => Ok(None),
        Err(_) => Err(Error::InvalidCertificate(CertificateError::BadEncoding)),
    }
}

/// The schemes TLS 1.3 allows for a handshake signature (RFC 8446 4.2.3:
/// no PKCS#1 v1.5, no SHA-1).
fn tls13_scheme(scheme: SignatureScheme) -> bool {
    matches!(
        scheme,
        SignatureScheme::ECDSA_NISTP256_SHA256
            | SignatureScheme::ECDSA_NISTP384_SHA384
            | SignatureScheme::ECDSA_NISTP521_SHA512
            | SignatureScheme::RSA_PSS_SHA256
            | SignatureScheme::RSA_PSS_SHA384
            | SignatureScheme::RSA_PSS_SHA512
            | SignatureScheme::ED25519
            | SignatureScheme::ED448
    )
}

/// Whether a DER AlgorithmIdentifier's contents begin with this OID.
fn names_oid(algorithm_id: &[u8], oid: &[u8]) -> bool {
    algorithm_id.len() >= 2 + oid.len()
        && algorithm_id[0] == 0x06
        && usize::from(algorithm_id[1]) == oid.len()
        && &algorithm_id[2..2 + oid.len()] == oid
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match version_1(end_entity)? {
            Some(leaf) => self
                .verify_v1(&leaf, now)
                .map(|()| ClientCertVerified::assertion()),
            None => self
                .webpki
                .verify_client_cert(end_entity, intermediates, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.handshake_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.handshake_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
