//! ACL semantics as Apache ZooKeeper 3.8 applies them: the permission check
//! (`world:anyone`, `digest`, `ip` with CIDR, and the `super` identity that
//! bypasses every check), digest identities, `setAuth`, the validation and
//! `auth`-expansion of ACL lists given to create and setACL, and getACL's
//! redaction. The `digest` and `ip` providers exist, as in a default
//! reference server, and `sasl` (the reference's SASLAuthenticationProvider:
//! identities come from the reactor's SASL exchange; the SASL name `super`
//! matches every `sasl` ACL), and `x509` (the reference's
//! X509AuthenticationProvider: identities are client certificate subjects
//! the reactor takes from a TLS handshake, matched exactly); an ACL naming
//! any other scheme never matches.
//!
//! It is not the place that decides which operation needs which permission;
//! prep (writes) and read (reads) do, following the reference:
//! create → CREATE on the parent, delete → DELETE on the parent, setData →
//! WRITE, setACL → ADMIN, check (in multi) → READ, getData, getChildren,
//! getAllChildrenNumber → READ, getACL → READ or ADMIN (digest ids redacted
//! without ADMIN), exists, sync and addWatch → none.
//!
//! Invariant: nothing here panics on client bytes; malformed identities are
//! answers (InvalidACL, AuthFailed, no match); resolving a list costs time
//! linear in its length, and no resolved list is longer than the cap prep
//! passes in.

use std::collections::HashSet;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::types::{Acl, ErrorCode, Id};

/// True when `auth` may perform an operation needing any bit of `perm` on a
/// node guarded by `acl`. An empty ACL allows everything, as in the
/// reference.
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> bool {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter()
        .filter(|entry| entry.perms & perm != 0)
        .any(|entry| {
            let id = &entry.id;
            match id.scheme.as_str() {
                "world" => id.id == "anyone",
                "digest" => auth.iter().any(|a| a.scheme == "digest" && a.id == id.id),
                "ip" => auth
                    .iter()
                    .any(|a| a.scheme == "ip" && ip_matches(&a.id, &id.id)),
                "sasl" => auth
                    .iter()
                    .any(|a| a.scheme == "sasl" && (a.id == id.id || a.id == "super")),
                "x509" => auth.iter().any(|a| a.scheme == "x509" && a.id == id.id),
                _ => false,
            }
        })
}

/// `user:base64(sha1("user:password"))`, the id a digest ACL names. Input
/// without a colon digests the whole string and keeps it as the user.
pub fn digest_id(user_colon_password: &str) -> String {
    let user = user_colon_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_colon_password.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(hash);
    format!("{user}:{encoded}")
}

/// setAuth. `digest` yields the digest id, preceded by `super:` when it
/// equals the configured super digest (`user:base64hash`). `ip` yields
/// nothing: the caller already holds the connection's `ip` identity (it is
/// added at connect, which is why whoAmI always shows it). Any other scheme
/// is AuthFailed. The caller appends the returned ids to the connection's
/// list, skipping ones already present.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        "digest" => {
            let text = String::from_utf8_lossy(auth);
            let digest = digest_id(&text);
            let mut ids = Vec::with_capacity(2);
            if super_digest.is_some_and(|s| s == digest) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id {
                scheme: "digest".to_string(),
                id: digest,
            });
            Ok(ids)
        }
        "ip" => Ok(Vec::new()),
        _ => Err(ErrorCode::AuthFailed),
    }
}

/// Validates an ACL list from create or setACL and resolves it: duplicates
/// are dropped first (keeping the first of each, in the order given, as the
/// reference's `removeDuplicates`), then each `auth` entry is replaced by
/// one entry per authenticated identity of the session (`digest` ids: `ip`
/// is not an authenticated provider), with the entry's permissions.
/// InvalidACL for an empty list, `auth` with no such identity, a digest id
/// that is not `user:hash`, an unparsable ip, `world` other than `anyone`,
/// or any other scheme (ZK-BEHAVIOURS 8). Permission bits are kept as given.
///
/// Also InvalidACL (ours; the reference has no cap): a list of more than
/// `max_entries` entries as given, or one that grows past it when `auth`
/// expands. Prep runs under the tree's read lock, so the work here must
/// stay linear in the request and bounded per node.
pub fn fixup(acl: &[Acl], auth: &[Id], max_entries: usize) -> Result<Vec<Acl>, ErrorCode> {
    if acl.len() > max_entries {
        return Err(ErrorCode::InvalidAcl);
    }
    // A set, not `Vec::contains`: 87k entries took 5.7 s quadratically
    // (review 1.5).
    let mut seen: HashSet<&Acl> = HashSet::with_capacity(acl.len());
    let unique: Vec<&Acl> = acl.iter().filter(|entry| seen.insert(*entry)).collect();
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(unique.len());
    for entry in unique {
        let id = &entry.id;
        match id.scheme.as_str() {
            "world" if id.id == "anyone" => out.push(entry.clone()),
            "auth" => {
                let mut any = false;
                for cid in auth
                    .iter()
                    .filter(|cid| is_authenticated_scheme(&cid.scheme))
                {
                    any = true;
                    // Only `auth` can make the list longer than it came.
                    if out.len() == max_entries {
                        return Err(ErrorCode::InvalidAcl);
                    }
                    out.push(Acl {
                        perms: entry.perms,
                        id: cid.clone(),
                    });
                }
                if !any {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "digest" if digest_id_valid(&id.id) => out.push(entry.clone()),
            "ip" if ip_parse(&id.id).is_some() => out.push(entry.clone()),
            // Ours: accepted whether or not SASLAuthenticationProvider is
            // configured (the reference refuses it without the provider).
            "sasl" if sasl_id_valid(&id.id) => out.push(entry.clone()),
            // Likewise for X509AuthenticationProvider.
            "x509" if x500_name_valid(&id.id) => out.push(entry.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

/// getACL's answer for a reader without ADMIN: digest ids lose their hash
/// (`user:x`).
pub fn redact(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| {
            if entry.id.scheme != "digest" {
                return entry.clone();
            }
            let id = match entry.id.id.find(':') {
                Some(i) => format!("{}:x", &entry.id.id[..i]),
                None => entry.id.id.clone(),
            };
            Acl {
                perms: entry.perms,
                id: Id {
                    scheme: "digest".to_string(),
                    id,
                },
            }
        })
        .collect()
}

/// The user name whoAmI reports for an identity: the digest user, the ip
/// address, or "" for schemes without a provider (`super`).
pub fn user_name(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_string(),
        "ip" | "sasl" | "x509" => id.id.clone(),
        _ => String::new(),
    }
}

/// Providers whose identities count for an `auth` ACL: `digest`, `sasl`
/// and `x509` among the ones we have (`ip` is explicitly not
/// "authenticated").
fn is_authenticated_scheme(scheme: &str) -> bool {
    scheme == "digest" || scheme == "sasl" || scheme == "x509"
}

/// The reference accepts an `x509` id that `new X500Principal(id)` parses:
/// RFC 2253 text, `type=value` pairs joined by `,` (or `;`) and `+`, each
/// type a keyword or a dotted OID, values with backslash escapes, `"..."`
/// quoting or `#hex`. Checked here for that shape, not for every keyword
/// Java knows.
fn x500_name_valid(id: &str) -> bool {
    if id.trim().is_empty() {
        // Valid in Java, but it matches no certificate; refused, as a
        // reference without the provider refuses every x509 ACL.
        return false;
    }
    let chars: Vec<char> = id.chars().collect();
    let mut i = 0;
    loop {
        // The attribute type.
        let start = i;
        while i < chars.len() && chars[i] != '=' {
            i += 1;
        }
        let kind: String = chars[start..i].iter().collect();
        let kind = kind.trim();
        let kind = kind
            .strip_prefix("OID.")
            .or_else(|| kind.strip_prefix("oid."))
            .unwrap_or(kind);
        let keyword = kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let oid = !kind.is_empty()
            && kind
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
        if i == chars.len() || !(keyword || oid) {
            return false;
        }
        i += 1;
        // The value, up to an unescaped separator.
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        if chars.get(i) == Some(&'"') {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return false;
            }
            i += 1;
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
        } else if chars.get(i) == Some(&'#') {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i == start || (i - start) % 2 != 0 {
                return false;
            }
        } else {
            while i < chars.len() && !matches!(chars[i], ',' | ';' | '+') {
                if chars[i] == '\\' {
                    i += 1;
                    if i == chars.len() {
                        return false;
                    }
                }
                i += 1;
            }
        }
        if i == chars.len() {
            return true;
        }
        if !matches!(chars[i], ',' | ';' | '+') {
            return false;
        }
        i += 1;
    }
}

/// The reference validates `sasl` ids as Kerberos names: one with `@` must
/// be `service[/host]@realm` (parts may be empty, none holding `/` or `@`
/// beyond that shape); one without `@` is taken whole.
fn sasl_id_valid(id: &str) -> bool {
    let Some((principal, realm)) = id.split_once('@') else {
        return true;
    };
    !realm.contains(['@', '/']) && principal.matches('/').count() <= 1
}

/// The reference splits on ':' dropping trailing empty parts and wants
/// exactly two: `u:h` and `:h` pass, `u:`, `u`, `u:h:z` do not.
fn digest_id_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts.len() == 2
}

/// An IPv4 address with an optional `/bits` mask (0..=32), as the
/// reference's ip provider accepts them (no IPv6).
fn ip_parse(expr: &str) -> Option<([u8; 4], u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((addr, bits)) => {
            let bits: i32 = bits.parse().ok()?;
            let bits = u32::try_from(bits).ok().filter(|b| *b <= 32)?;
            (addr, bits)
        }
        None => (expr, 32),
    };
    let mut out = [0u8; 4];
    let mut parts = addr.split('.');
    for byte in out.iter_mut() {
        let value: i32 = parts.next()?.parse().ok()?;
        *byte = u8::try_from(value).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some((out, bits))
}

fn masked(addr: [u8; 4], bits: u32) -> u32 {
    let value = u32::from_be_bytes(addr);
    match bits {
        0 => 0,
        b => value & (u32::MAX << (32 - b.min(32))),
    }
}

/// Whether a client address `id` falls in the ACL's `expr` (address or CIDR).
fn ip_matches(id: &str, expr: &str) -> bool {
    let Some((acl_addr, bits)) = ip_parse(expr) else {
        return false;
    };
    let Some((client_addr, _)) = ip_parse(id) else {
        return false;
    };
    masked(acl_addr, bits) == masked(client_addr, bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::perms::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[track_caller]
    fn check_fixup(given: &[Acl], auth: &[Id], expected: Result<Vec<Acl>, ErrorCode>) {
        assert_eq!(fixup(given, auth, 1024), expected);
    }

    #[test]
    fn digest_matches_reference() {
        // Known value: ZooKeeper's generateDigest("super:test").
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        assert_eq!(digest_id("user:pass:word").split(':').next(), Some("user"));
        assert!(digest_id("nocolon").starts_with("nocolon:"));
    }

    #[test]
    fn authenticate_digest_and_super() {
        let ids = authenticate(
            "digest",
            b"super:test",
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU="),
        )
        .unwrap();
        assert_eq!(
            ids,
            vec![
                Id::new("super", ""),
                Id::new("digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
            ]
        );
        let ids =
            authenticate("digest", b"u:p", Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            authenticate("kerberos", b"x", None),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(authenticate("ip", b"", None), Ok(vec![]));
    }

    #[test]
    fn check_permissions() {
        let user = Id::new("digest", &digest_id("u:p"));
        let ip = Id::new("ip", "10.1.2.3");
        let guarded = vec![
            acl(READ, "digest", &user.id),
            acl(WRITE, "ip", "10.1.0.0/16"),
        ];
        assert!(check(&guarded, READ, std::slice::from_ref(&user)));
        assert!(!check(&guarded, WRITE, std::slice::from_ref(&user)));
        assert!(check(&guarded, WRITE, std::slice::from_ref(&ip)));
        assert!(!check(&guarded, WRITE, &[Id::new("ip", "10.2.0.1")]));
        assert!(check(&guarded, ADMIN, &[Id::new("super", "")]));
        assert!(check(&[], ADMIN, &[]), "empty ACL allows everything");
        assert!(check(&Acl::open_unsafe(), CREATE, &[]));
        assert!(!check(
            &Acl::read_unsafe(),
            WRITE,
            std::slice::from_ref(&ip)
        ));
        assert!(
            check(&Acl::read_unsafe(), READ | ADMIN, &[]),
            "any requested bit suffices"
        );
        assert!(!check(&[acl(ALL, "world", "nobody")], READ, &[]));
        assert!(check(&[acl(ALL, "ip", "0.0.0.0/0")], READ, &[ip]));
    }

    /// SASLAuthenticationProvider: `sasl:<name>` matches that name, and the
    /// SASL user `super` matches every `sasl` ACL; `auth` expands to sasl
    /// identities; ids with `@` must be Kerberos-shaped.
    #[test]
    fn sasl_scheme() {
        let bob = [Id::new("ip", "127.0.0.1"), Id::new("sasl", "bob")];
        let guarded = [acl(READ, "sasl", "bob")];
        assert!(check(&guarded, READ, &bob));
        assert!(!check(&guarded, READ, &[Id::new("sasl", "eve")]));
        assert!(!check(&guarded, READ, &[Id::new("digest", "bob")]));
        assert!(check(&guarded, READ, &[Id::new("sasl", "super")]));
        assert_eq!(
            fixup(&[acl(ALL, "auth", "")], &bob, 8),
            Ok(vec![acl(ALL, "sasl", "bob")])
        );
        for valid in ["bob", "zk/host@EXAMPLE.COM", "a@B", "x/y/z", "@"] {
            assert!(fixup(&[acl(ALL, "sasl", valid)], &[], 8).is_ok(), "{valid}");
        }
        for invalid in ["a@b@c", "a/b/c@R", "a@R/x"] {
            assert_eq!(
                fixup(&[acl(ALL, "sasl", invalid)], &[], 8),
                Err(ErrorCode::InvalidAcl),
                "{invalid}"
            );
        }
        assert_eq!(user_name(&bob[1]), "bob");
    }

    // ZK-BEHAVIOURS 8.
    #[test]
    fn x509_scheme() {
        let dn = "CN=client,O=Example,C=US";
        let alice = [Id::new("ip", "127.0.0.1"), Id::new("x509", dn)];
        let guarded = [acl(READ, "x509", dn)];
        assert!(check(&guarded, READ, &alice));
        assert!(!check(&guarded, READ, &[Id::new("x509", "CN=client")]));
        assert!(!check(&guarded, READ, &[Id::new("digest", dn)]));
        // `auth` expands to the certificate's identity.
        check_fixup(
            &[acl(ALL, "auth", "")],
            &alice,
            Ok(vec![acl(ALL, "x509", dn)]),
        );
        assert_eq!(user_name(&Id::new("x509", dn)), dn);
        for valid in [
            dn,
            "CN=a\\,b,OU=x+O=y",
            "cn = spaced , o=x",
            "2.5.4.3=#0c0161",
            "OID.2.5.4.3=abc",
            "CN=\"quoted, value\",O=x",
            "CN=",
        ] {
            assert!(fixup(&[acl(ALL, "x509", valid)], &[], 8).is_ok(), "{valid}");
        }
        for invalid in [
            "",
            "CN",
            "=x",
            "CN=a,",
            "CN=a,O",
            "C N=a",
            "CN=#0",
            "CN=#zz",
            "CN=a\\",
            "CN=\"open",
        ] {
            assert_eq!(
                fixup(&[acl(ALL, "x509", invalid)], &[], 8),
                Err(ErrorCode::InvalidAcl),
                "{invalid}"
            );
        }
    }

    #[test]
    fn fixup_rules() {
        let user = Id::new("digest", "u:hash");
        let open = acl(ALL, "world", "anyone");
        check_fixup(&[open.clone(), open.clone()], &[], Ok(vec![open.clone()]));
        check_fixup(
            &[acl(0, "world", "anyone")],
            &[],
            Ok(vec![acl(0, "world", "anyone")]),
        );
        check_fixup(
            &[acl(99, "world", "anyone")],
            &[],
            Ok(vec![acl(99, "world", "anyone")]),
        );
        check_fixup(&[], &[], Err(ErrorCode::InvalidAcl));
        check_fixup(
            &[acl(ALL, "auth", "")],
            &[Id::new("ip", "127.0.0.1")],
            Err(ErrorCode::InvalidAcl),
        );
        check_fixup(
            &[acl(READ, "auth", "ignored")],
            &[
                Id::new("ip", "127.0.0.1"),
                user.clone(),
                Id::new("super", ""),
            ],
            Ok(vec![acl(READ, "digest", "u:hash")]),
        );
        check_fixup(
            &[acl(ALL, "digest", "nocolon")],
            &[],
            Err(ErrorCode::InvalidAcl),
        );
        check_fixup(&[acl(ALL, "digest", "u:")], &[], Err(ErrorCode::InvalidAcl));
        check_fixup(
            &[acl(ALL, "digest", ":h")],
            &[],
            Ok(vec![acl(ALL, "digest", ":h")]),
        );
        check_fixup(
            &[acl(ALL, "world", "nobody")],
            &[],
            Err(ErrorCode::InvalidAcl),
        );
        check_fixup(&[acl(ALL, "super", "")], &[], Err(ErrorCode::InvalidAcl));
        check_fixup(&[acl(ALL, "ip", "1.2.3")], &[], Err(ErrorCode::InvalidAcl));
        check_fixup(
            &[acl(ALL, "ip", "1.2.3.4/33")],
            &[],
            Err(ErrorCode::InvalidAcl),
        );
        check_fixup(
            &[acl(ALL, "ip", "1.2.3.256")],
            &[],
            Err(ErrorCode::InvalidAcl),
        );
        check_fixup(
            &[acl(ALL, "ip", "1.2.3.4/8")],
            &[],
            Ok(vec![acl(ALL, "ip", "1.2.3.4/8")]),
        );
    }

    // The reference drops repeated entries keeping the first of each, in
    // the order given.
    #[test]
    fn fixup_dedupes_in_first_seen_order() {
        let (a, b, c) = (
            acl(READ, "ip", "10.0.0.1"),
            acl(ALL, "world", "anyone"),
            acl(WRITE, "ip", "10.0.0.1"),
        );
        check_fixup(
            &[
                b.clone(),
                a.clone(),
                b.clone(),
                c.clone(),
                a.clone(),
                c.clone(),
            ],
            &[],
            Ok(vec![b, a, c]),
        );
    }

    // Review 1.5: a list longer than the cap is InvalidACL, whether it came
    // that long or grew past it when `auth` expanded.
    #[test]
    fn fixup_caps_entries() {
        let distinct = |n: usize| -> Vec<Acl> {
            (0..n)
                .map(|i| acl(READ, "ip", &format!("10.0.{}.{}", i / 256, i % 256)))
                .collect()
        };
        assert_eq!(fixup(&distinct(4), &[], 4).map(|l| l.len()), Ok(4));
        assert_eq!(fixup(&distinct(5), &[], 4), Err(ErrorCode::InvalidAcl));
        let users: Vec<Id> = (0..3)
            .map(|i| Id::new("digest", &format!("u{i}:hash")))
            .collect();
        let mut given = distinct(1);
        given.push(acl(ALL, "auth", ""));
        assert_eq!(fixup(&given, &users, 4).map(|l| l.len()), Ok(4));
        assert_eq!(fixup(&given, &users, 3), Err(ErrorCode::InvalidAcl));
        // Many copies of one entry are still one entry too many to check.
        let copies = vec![acl(ALL, "world", "anyone"); 5];
        assert_eq!(fixup(&copies, &[], 4), Err(ErrorCode::InvalidAcl));
    }

    #[test]
    fn redaction_and_names() {
        let redacted = redact(&[acl(ALL, "digest", "u:secret"), acl(READ, "ip", "1.2.3.4")]);
        assert_eq!(
            redacted,
            vec![acl(ALL, "digest", "u:x"), acl(READ, "ip", "1.2.3.4")]
        );
        assert_eq!(user_name(&Id::new("digest", "u:hash")), "u");
        assert_eq!(user_name(&Id::new("ip", "1.2.3.4")), "1.2.3.4");
        assert_eq!(user_name(&Id::new("super", "")), "");
    }
}
