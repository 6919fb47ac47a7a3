//! Java KeyStore (JKS) files, the format `keytool -storetype JKS` writes and
//! Apache ZooKeeper reads for `ssl.keyStore.type=JKS` (or a `.jks` file).
//!
//! The layout, all big-endian: the magic `0xFEEDFEED`, a version (1 or 2)
//! and an entry count, each a u32; then the entries; then a 20-byte SHA-1
//! integrity digest. An entry is a u32 tag (1: private key, 2: trusted
//! certificate), an alias (Java's `writeUTF`: a u16 length and modified
//! UTF-8) and a creation time (i64 milliseconds). A key entry holds a u32
//! length and that many bytes of an `EncryptedPrivateKeyInfo` (Sun's
//! KeyProtector), then a u32 count of certificates; a trusted entry holds one
//! certificate. A certificate is, in version 2 only, its type as a `writeUTF`
//! string (`X.509`), then a u32 length and its DER bytes.
//!
//! The digest is SHA-1 over the password (each UTF-16 unit big-endian), the
//! ASCII bytes `Mighty Aphrodite` and every byte before the digest. The
//! KeyProtector's data is a 20-byte salt, the ciphertext and a 20-byte check:
//! the key stream is SHA-1(password ‖ salt), then SHA-1(password ‖ previous
//! block) for each next block; the plaintext (a PKCS#8 `PrivateKeyInfo`) is
//! the ciphertext XOR that stream, and the check is SHA-1(password ‖
//! plaintext).
//!
//! A store is operator input: every length is checked against the bytes
//! left before anything is sliced, counts are bounded by what the bytes left
//! could hold, and nothing is allocated from a length the file claims.
//! Entries borrow from the file's bytes.

use sha1::{Digest, Sha1};

const MAGIC: u32 = 0xFEED_FEED;
/// `keytool -storetype JCEKS`: the same layout with other key protection.
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
const DIGEST_LEN: usize = 20;
/// Mixed into the integrity digest after the password, as Java does.
const WHITENER: &[u8] = b"Mighty Aphrodite";
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
/// 1.3.6.1.4.1.42.2.17.1.1, Sun's KeyProtector, as DER content octets.
const KEY_PROTECTOR_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];
const SALT_LEN: usize = 20;
const CHECK_LEN: usize = 20;
/// The smallest entry: tag, an empty alias, the date, then a version 1
/// trusted certificate's length (a key entry or a version 2 certificate is
/// larger).
const MIN_ENTRY_LEN: usize = 4 + 2 + 8 + 4;

/// Whether `bytes` begin as a JKS store does.
pub fn is_jks(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC.to_be_bytes())
}

/// One entry, borrowing from the store's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    PrivateKey {
        alias: String,
        /// The `EncryptedPrivateKeyInfo`; [`recover_key`] decrypts it.
        protected_key: &'a [u8],
        /// DER certificates, leaf first.
        chain: Vec<&'a [u8]>,
    },
    TrustedCert {
        alias: String,
        cert: &'a [u8],
    },
}

/// The entries of a JKS store, in file order. With a non-empty `password`
/// the integrity digest is checked; with an empty one it is not (as Java
/// loads a store given no password), so only certificates are usable.
pub fn parse<'a>(bytes: &'a [u8], password: &str) -> Result<Vec<Entry<'a>>, String> {
    let mut reader = Reader { bytes, pos: 0 };
    let magic = reader.u32("the magic number")?;
    if magic == JCEKS_MAGIC {
        return Err(
            "this is a JCEKS store, which is not read here; convert it with \
                    `keytool -importkeystore -srcstoretype JCEKS -deststoretype PKCS12`"
                .to_string(),
        );
    }
    if magic != MAGIC {
        return Err(format!(
            "not a JKS store: it starts with {magic:#010x}, not 0xfeedfeed"
        ));
    }
    let version = reader.u32("the version")?;
    if version != 1 && version != 2 {
        return Err(format!("JKS version {version} is unknown (1 and 2 are)"));
    }
    let count = reader.u32("the entry count")?;
    let room = reader.remaining().saturating_sub(DIGEST_LEN) / MIN_ENTRY_LEN;
    if count as usize > room {
        return Err(format!(
            "the store claims {count} entries but its {} bytes hold at most {room}",
            bytes.len()
        ));
    }
    let mut entries = Vec::new();
    for index in 0..count {
        let what = |field: &str| format!("entry {index}'s {field}");
        let tag = reader.u32(&what("tag"))?;
        let alias = reader.utf(&what("alias"))?;
        reader.take(8, &what("creation date"))?;
        match tag {
            TAG_PRIVATE_KEY => {
                let length = reader.u32(&what("key length"))?;
                let protected_key = reader.take(length as usize, &what("protected key"))?;
                let chain_length = reader.u32(&what("chain length"))?;
                let per_cert = if version == 2 { 2 + 4 } else { 4 };
                let room = reader.remaining().saturating_sub(DIGEST_LEN) / per_cert;
                if chain_length as usize > room {
                    return Err(format!(
                        "entry {index} ({alias:?}) claims {chain_length} certificates but \
                         the bytes left hold at most {room}"
                    ));
                }
                let mut chain = Vec::new();
                for position in 0..chain_length {
                    chain.push(
                        reader.cert(version, &format!("entry {index}'s certificate {position}"))?,
                    );
                }
                entries.push(Entry::PrivateKey {
                    alias,
                    protected_key,
                    chain,
                });
            }
            TAG_TRUSTED_CERT => {
                let cert = reader.cert(version, &what("certificate"))?;
                entries.push(Entry::TrustedCert { alias, cert });
            }
            _ => {
                return Err(format!(
                    "entry {index} ({alias:?}) has the unknown tag {tag} \
                     (1 is a private key, 2 a trusted certificate)"
                ));
            }
        }
    }
    let signed = reader.pos;
    let digest = reader.take(DIGEST_LEN, "the integrity digest")?;
    if reader.remaining() != 0 {
        return Err(format!(
            "{} bytes follow the integrity digest",
            reader.remaining()
        ));
    }
    if !password.is_empty() {
        let mut hash = Sha1::new();
        hash.update(utf16_be(password));
        hash.update(WHITENER);
        hash.update(&bytes[..signed]);
        if hash.finalize().as_slice() != digest {
            return Err(
                "the integrity check failed: the password is wrong, or the store is corrupted"
                    .to_string(),
            );
        }
    }
    Ok(entries)
}

/// The PKCS#8 `PrivateKeyInfo` a key entry protects, decrypted with
/// `password` (ZooKeeper's key password is the store's).
pub fn recover_key(protected_key: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let data = protected_data(protected_key)?;
    if data.len() < SALT_LEN + CHECK_LEN {
        return Err(format!(
            "the protected key holds {} bytes, fewer than its salt and check",
            data.len()
        ));
    }
    let (salt, rest) = data.split_at(SALT_LEN);
    let (ciphertext, check) = rest.split_at(rest.len() - CHECK_LEN);
    let password = utf16_be(password);
    let mut plaintext = Vec::with_capacity(ciphertext.len());
    let mut block: [u8; 20] = salt.try_into().expect("the salt is 20 bytes");
    for chunk in ciphertext.chunks(block.len()) {
        let mut hash = Sha1::new();
        hash.update(&password);
        hash.update(block);
        block = hash.finalize().into();
        plaintext.extend(chunk.iter().zip(block).map(|(byte, key)| byte ^ key));
    }
    let mut hash = Sha1::new();
    hash.update(&password);
    hash.update(&plaintext);
    if hash.finalize().as_slice() != check {
        return Err("cannot recover the private key: the password is wrong \
                    (the key's password must be the store's), or the key is corrupted"
            .to_string());
    }
    Ok(plaintext)
}

/// The encrypted data of an `EncryptedPrivateKeyInfo` whose algorithm is
/// Sun's KeyProtector: SEQUENCE { SEQUENCE { OID, [NULL] }, OCTET STRING }.
fn protected_data(der: &[u8]) -> Result<&[u8], String> {
    let malformed = |message: String| format!("malformed protected key: {message}");
    let (info, rest) = der_expect(der, 0x30, "EncryptedPrivateKeyInfo").map_err(malformed)?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} bytes after it", rest.len())));
    }
    let (algorithm, rest) = der_expect(info, 0x30, "its algorithm").map_err(malformed)?;
    let (oid, parameters) = der_expect(algorithm, 0x06, "the algorithm OID").map_err(malformed)?;
    if oid != KEY_PROTECTOR_OID {
        return Err(format!(
            "the private key is protected with {}, not Sun's KeyProtector \
             (1.3.6.1.4.1.42.2.17.1.1) that JKS stores use",
            oid_text(oid)
        ));
    }
    if !parameters.is_empty() && parameters != [0x05, 0x00] {
        return Err(malformed(
            "the algorithm has parameters; KeyProtector takes none".to_string(),
        ));
    }
    let (data, rest) = der_expect(rest, 0x04, "the encrypted data").map_err(malformed)?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} bytes after the encrypted data",
            rest.len()
        )));
    }
    Ok(data)
}

/// One DER element with tag `tag`: its contents and the bytes after it.
/// Only definite lengths of at most four length bytes, as DER has.
fn der_expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let [found, first, rest @ ..] = input else {
        return Err(format!("{what} is cut short"));
    };
    if *found != tag {
        return Err(format!("{what} has tag {found:#04x}, not {tag:#04x}"));
    }
    let (length, rest) = match *first {
        short @ 0..=0x7f => (short as usize, rest),
        long @ 0x81..=0x84 => {
            let width = (long & 0x7f) as usize;
            if rest.len() < width {
                return Err(format!("{what}'s length is cut short"));
            }
            let (octets, rest) = rest.split_at(width);
            let length = octets
                .iter()
                .fold(0usize, |length, octet| (length << 8) | *octet as usize);
            (length, rest)
        }
        other => return Err(format!("{what} has the length octet {other:#04x}")),
    };
    if length > rest.len() {
        return Err(format!(
            "{what} claims {length} bytes, {} remain",
            rest.len()
        ));
    }
    Ok(rest.split_at(length))
}

/// An OID's content octets in dotted form, for messages.
fn oid_text(octets: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for octet in octets {
        if value > u64::MAX >> 7 {
            return format!("an OID too long to show ({} bytes)", octets.len());
        }
        value = (value << 7) | u64::from(octet & 0x7f);
        if octet & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if arcs.is_empty() || octets.last().is_some_and(|octet| octet & 0x80 != 0) {
        return "a malformed OID".to_string();
    }
    let arcs: Vec<String> = arcs.iter().map(u64::to_string).collect();
    format!("the algorithm {}", arcs.join("."))
}

/// Java's `char[]` password as the bytes JKS hashes: UTF-16 big-endian.
fn utf16_be(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// The bytes of a store, read in order with every length checked first.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, length: usize, what: &str) -> Result<&'a [u8], String> {
        if length > self.remaining() {
            return Err(format!(
                "cut short: {what} needs {length} bytes at offset {}, {} remain",
                self.pos,
                self.remaining()
            ));
        }
        let taken = &self.bytes[self.pos..self.pos + length];
        self.pos += length;
        Ok(taken)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let bytes = self.take(2, what)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A `writeUTF` string. Modified UTF-8 differs from UTF-8 only for NUL
    /// and characters beyond the BMP; aliases serve messages, so those are
    /// shown lossily.
    fn utf(&mut self, what: &str) -> Result<String, String> {
        let length = self.u16(what)?;
        let bytes = self.take(length as usize, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A certificate: (version 2) its type, which must be X.509, then a u32
    /// length and its DER bytes.
    fn cert(&mut self, version: u32, what: &str) -> Result<&'a [u8], String> {
        if version == 2 {
            let kind = self.utf(&format!("{what}'s type"))?;
            if kind != "X.509" {
                return Err(format!("{what} is of type {kind:?}; only X.509 is read"));
            }
        }
        let length = self.u32(&format!("{what}'s length"))?;
        self.take(length as usize, what)
    }
}

/// A JKS writer for tests: the layout above, with a fixed salt.
#[cfg(test)]
pub mod testing {
    use super::*;

    pub enum TestEntry<'a> {
        PrivateKey {
            alias: &'a str,
            pkcs8: &'a [u8],
            chain: Vec<&'a [u8]>,
        },
        TrustedCert {
            alias: &'a str,
            cert: &'a [u8],
        },
    }

    pub const SALT: [u8; 20] = *b"a fixed 20-byte salt";

    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let length = contents.len();
        if length < 0x80 {
            out.push(length as u8);
        } else {
            let octets: Vec<u8> = (length as u32)
                .to_be_bytes()
                .into_iter()
                .skip_while(|octet| *octet == 0)
                .collect();
            out.push(0x80 | octets.len() as u8);
            out.extend(octets);
        }
        out.extend_from_slice(contents);
        out
    }

    /// `pkcs8` under Sun's KeyProtector, as an `EncryptedPrivateKeyInfo`.
    pub fn protect(pkcs8: &[u8], password: &str, salt: [u8; 20]) -> Vec<u8> {
        let password = utf16_be(password);
        let mut data = salt.to_vec();
        let mut block = salt;
        for chunk in pkcs8.chunks(20) {
            let mut hash = Sha1::new();
            hash.update(&password);
            hash.update(block);
            block = hash.finalize().into();
            data.extend(chunk.iter().zip(block).map(|(byte, key)| byte ^ key));
        }
        let mut hash = Sha1::new();
        hash.update(&password);
        hash.update(pkcs8);
        data.extend_from_slice(&hash.finalize());
        let mut algorithm = der(0x06, KEY_PROTECTOR_OID);
        algorithm.extend([0x05, 0x00]);
        let mut info = der(0x30, &algorithm);
        info.extend(der(0x04, &data));
        der(0x30, &info)
    }

    fn utf(out: &mut Vec<u8>, text: &str) {
        out.extend((text.len() as u16).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }

    fn cert(out: &mut Vec<u8>, version: u32, der: &[u8]) {
        if version == 2 {
            utf(out, "X.509");
        }
        out.extend((der.len() as u32).to_be_bytes());
        out.extend_from_slice(der);
    }

    /// A whole store: header, entries (keys protected with `password`),
    /// digest.
    pub fn write(version: u32, entries: &[TestEntry<'_>], password: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(MAGIC.to_be_bytes());
        out.extend(version.to_be_bytes());
        out.extend((entries.len() as u32).to_be_bytes());
        for entry in entries {
            match entry {
                TestEntry::PrivateKey {
                    alias,
                    pkcs8,
                    chain,
                } => {
                    out.extend(TAG_PRIVATE_KEY.to_be_bytes());
                    utf(&mut out, alias);
                    out.extend(1_700_000_000_000i64.to_be_bytes());
                    let protected = protect(pkcs8, password, SALT);
                    out.extend((protected.len() as u32).to_be_bytes());
                    out.extend(protected);
                    out.extend((chain.len() as u32).to_be_bytes());
                    for der in chain {
                        cert(&mut out, version, der);
                    }
                }
                TestEntry::TrustedCert { alias, cert: der } => {
                    out.extend(TAG_TRUSTED_CERT.to_be_bytes());
                    utf(&mut out, alias);
                    out.extend(1_700_000_000_000i64.to_be_bytes());
                    cert(&mut out, version, der);
                }
            }
        }
        let mut hash = Sha1::new();
        hash.update(utf16_be(password));
        hash.update(WHITENER);
        hash.update(&out);
        out.extend_from_slice(&hash.finalize());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    const PASSWORD: &str = "s3cret-pässwörd";

    /// A fresh P-256 key (PKCS#8) and its self-signed certificate.
    fn key_and_cert(name: &str) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        (key.serialize_der(), cert.der().to_vec())
    }

    struct Fixture {
        key: Vec<u8>,
        leaf: Vec<u8>,
        ca: Vec<u8>,
        other: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let (key, leaf) = key_and_cert("server.example");
        let (_, ca) = key_and_cert("ca.example");
        let (_, other) = key_and_cert("other.example");
        Fixture {
            key,
            leaf,
            ca,
            other,
        }
    }

    fn store(f: &Fixture, version: u32, password: &str) -> Vec<u8> {
        write(
            version,
            &[
                TestEntry::TrustedCert {
                    alias: "other",
                    cert: &f.other,
                },
                TestEntry::PrivateKey {
                    alias: "server",
                    pkcs8: &f.key,
                    chain: vec![&f.leaf, &f.ca],
                },
            ],
            password,
        )
    }

    #[test]
    fn a_written_store_reads_back_in_both_versions() {
        let f = fixture();
        for version in [1, 2] {
            let bytes = store(&f, version, PASSWORD);
            let entries = parse(&bytes, PASSWORD).expect("parse");
            assert_eq!(entries.len(), 2);
            assert_eq!(
                entries[0],
                Entry::TrustedCert {
                    alias: "other".to_string(),
                    cert: &f.other
                }
            );
            let Entry::PrivateKey {
                alias,
                protected_key,
                chain,
            } = &entries[1]
            else {
                panic!("not a key entry: {:?}", entries[1]);
            };
            assert_eq!(alias, "server");
            assert_eq!(chain, &vec![&f.leaf[..], &f.ca[..]]);
            assert_eq!(recover_key(protected_key, PASSWORD).as_ref(), Ok(&f.key));
            // Without a password the digest is not checked; certificates
            // still read.
            assert_eq!(parse(&bytes, "").map(|e| e.len()), Ok(2));
        }
    }

    #[test]
    fn the_key_stream_covers_keys_of_any_length() {
        for length in [0, 1, 19, 20, 21, 40, 41, 1000] {
            let plaintext: Vec<u8> = (0..length).map(|i| i as u8).collect();
            let protected = protect(&plaintext, PASSWORD, SALT);
            assert_eq!(recover_key(&protected, PASSWORD), Ok(plaintext));
        }
    }

    #[test]
    fn a_wrong_password_is_a_clear_error() {
        let f = fixture();
        let bytes = store(&f, 2, PASSWORD);
        assert_eq!(
            parse(&bytes, "wrong"),
            Err(
                "the integrity check failed: the password is wrong, or the store is corrupted"
                    .to_string()
            )
        );
        let entries = parse(&bytes, "").expect("parse");
        let Entry::PrivateKey { protected_key, .. } = &entries[1] else {
            panic!("not a key entry");
        };
        let error = recover_key(protected_key, "wrong").expect_err("wrong password");
        assert!(error.contains("the password is wrong"), "{error}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let f = fixture();
        let bytes = store(&f, 2, PASSWORD);
        for length in 0..bytes.len() {
            for password in [PASSWORD, ""] {
                assert!(
                    parse(&bytes[..length], password).is_err(),
                    "cut at {length} of {}",
                    bytes.len()
                );
            }
        }
        let protected = protect(&f.key, PASSWORD, SALT);
        for length in 0..protected.len() {
            assert!(recover_key(&protected[..length], PASSWORD).is_err());
        }
    }

    #[test]
    fn every_flipped_byte_fails_the_digest_or_the_parse() {
        let f = fixture();
        let bytes = store(&f, 2, PASSWORD);
        for offset in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[offset] ^= 0x01;
            assert!(parse(&flipped, PASSWORD).is_err(), "flip at {offset}");
            // Without the digest a flip may read, but never panics.
            let _ = parse(&flipped, "");
        }
        // A flip inside a certificate is the digest's to find.
        let inside = bytes.len() - DIGEST_LEN - 10;
        let mut flipped = bytes.clone();
        flipped[inside] ^= 0x80;
        assert!(parse(&flipped, PASSWORD)
            .unwrap_err()
            .starts_with("the integrity check failed"));
        // A flip in the protected key is the check's.
        let mut protected = protect(&f.key, PASSWORD, SALT);
        let last = protected.len() - CHECK_LEN - 1;
        protected[last] ^= 0x01;
        assert!(recover_key(&protected, PASSWORD)
            .unwrap_err()
            .starts_with("cannot recover the private key"));
    }

    fn header(version: u32, count: u32) -> Vec<u8> {
        let mut out = MAGIC.to_be_bytes().to_vec();
        out.extend(version.to_be_bytes());
        out.extend(count.to_be_bytes());
        out
    }

    #[test]
    fn claimed_counts_and_lengths_are_bounded_by_the_bytes() {
        let mut huge = header(2, u32::MAX);
        huge.extend([0; DIGEST_LEN]);
        assert_eq!(
            parse(&huge, ""),
            Err("the store claims 4294967295 entries but its 32 bytes hold at most 0".to_string())
        );
        // One key entry claiming a huge chain, then a huge key length.
        let mut chain = header(2, 1);
        chain.extend(TAG_PRIVATE_KEY.to_be_bytes());
        chain.extend([0, 1, b'k']);
        chain.extend([0; 8]);
        chain.extend(0u32.to_be_bytes());
        chain.extend(u32::MAX.to_be_bytes());
        chain.extend([0; DIGEST_LEN + 10]);
        assert_eq!(
            parse(&chain, ""),
            Err(
                "entry 0 (\"k\") claims 4294967295 certificates but the bytes left hold at most 1"
                    .to_string()
            )
        );
        let mut key = header(2, 1);
        key.extend(TAG_PRIVATE_KEY.to_be_bytes());
        key.extend([0, 0]);
        key.extend([0; 8]);
        key.extend(u32::MAX.to_be_bytes());
        key.extend([0; DIGEST_LEN]);
        assert_eq!(
            parse(&key, ""),
            Err(
                "cut short: entry 0's protected key needs 4294967295 bytes at offset 30, 20 remain"
                    .to_string()
            )
        );
        // DER lengths too.
        assert!(recover_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], "")
            .unwrap_err()
            .contains("claims 4294967295 bytes"));
        assert!(recover_key(&[0x30, 0x80, 0x00, 0x00], "")
            .unwrap_err()
            .contains("length octet 0x80"));
    }

    #[test]
    fn other_formats_and_contents_are_named() {
        assert_eq!(
            parse(&[0x30, 0x82, 0x01, 0x00], ""),
            Err("not a JKS store: it starts with 0x30820100, not 0xfeedfeed".to_string())
        );
        assert!(parse(&0xCECE_CECEu32.to_be_bytes(), "")
            .unwrap_err()
            .contains("JCEKS"));
        let mut v3 = header(3, 0);
        v3.extend([0; DIGEST_LEN]);
        assert_eq!(
            parse(&v3, ""),
            Err("JKS version 3 is unknown (1 and 2 are)".to_string())
        );
        let mut tag = header(2, 1);
        tag.extend(3u32.to_be_bytes());
        tag.extend([0, 1, b'x']);
        tag.extend([0; 8 + 4 + DIGEST_LEN]);
        assert_eq!(
            parse(&tag, ""),
            Err(
                "entry 0 (\"x\") has the unknown tag 3 (1 is a private key, 2 a trusted certificate)"
                    .to_string()
            )
        );
        let mut kind = header(2, 1);
        kind.extend(TAG_TRUSTED_CERT.to_be_bytes());
        kind.extend([0, 0]);
        kind.extend([0; 8]);
        kind.extend([0, 5]);
        kind.extend(b"X.999");
        kind.extend([0; 4 + DIGEST_LEN]);
        assert_eq!(
            parse(&kind, ""),
            Err("entry 0's certificate is of type \"X.999\"; only X.509 is read".to_string())
        );
        let mut trailing = header(2, 0);
        trailing.extend([0; DIGEST_LEN + 3]);
        assert_eq!(
            parse(&trailing, ""),
            Err("3 bytes follow the integrity digest".to_string())
        );
        // PBES2 (1.2.840.113549.1.5.13), as a PKCS#8 file would hold.
        let pbes2 = [
            0x30, 0x11, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05,
            0x0d, 0x04, 0x02, 0x00, 0x00,
        ];
        assert_eq!(
            recover_key(&pbes2, ""),
            Err(
                "the private key is protected with the algorithm 1.2.840.113549.1.5.13, \
                 not Sun's KeyProtector (1.3.6.1.4.1.42.2.17.1.1) that JKS stores use"
                    .to_string()
            )
        );
        assert_eq!(
            oid_text(KEY_PROTECTOR_OID),
            "the algorithm 1.3.6.1.4.1.42.2.17.1.1"
        );
        assert_eq!(oid_text(&[0x2b, 0x86]), "a malformed OID");
        assert!(oid_text(&[0xff; 20]).starts_with("an OID too long"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_after_the_magic_never_panic(
            version in 1u32..=2,
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = header(version, (body.len() / MIN_ENTRY_LEN) as u32);
            bytes.extend(body);
            let _ = parse(&bytes, "");
            let _ = parse(&bytes, PASSWORD);
            let _ = recover_key(&bytes[12..], PASSWORD);
        }
    }
}
