//! A client certificate's subject as the text of an `x509` identity: the
//! string Java's `X500Principal.getName()` gives (RFC 2253), which is what
//! Apache ZooKeeper's X509AuthenticationProvider stores, so ACLs written for
//! the reference match here.
//!
//! That format, as Java writes it: the RDNs last-first, joined by `,` with no
//! space; the attributes of a multi-valued RDN joined by `+` in encoded
//! order; the RFC 2253 keywords (CN, C, L, ST, O, OU, STREET, DC, UID) and
//! every other type as its dotted OID, whose value is then `#` and the hex
//! of its DER encoding (as is a value of a non-string type); string values
//! with `,=+<>#;"\` escaped by a backslash, NUL as `\00`, and leading and
//! trailing spaces escaped.
//!
//! The certificate has passed the verifier before it reaches here, but the
//! subject is still parsed as untrusted bytes: bounded, checked, no panic.

/// The subject of a DER certificate, as `X500Principal.getName()` writes it.
pub fn subject_dn(certificate: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|error| format!("unreadable client certificate: {error}"))?;
    render_name(cert.subject().as_raw()).map_err(|error| format!("unreadable subject: {error}"))
}

/// A DER `Name` (SEQUENCE OF RDN; RDN = SET OF SEQUENCE {OID, value}).
pub fn render_name(der: &[u8]) -> Result<String, &'static str> {
    let mut outer = Der { bytes: der };
    let (tag, sequence, _) = outer.next()?;
    if tag != SEQUENCE || !outer.bytes.is_empty() {
        return Err("a Name is one SEQUENCE");
    }
    let mut rdns = Vec::new();
    let mut names = Der { bytes: sequence };
    while !names.bytes.is_empty() {
        let (tag, set, _) = names.next()?;
        if tag != SET {
            return Err("an RDN is a SET");
        }
        let mut avas = Vec::new();
        let mut set = Der { bytes: set };
        while !set.bytes.is_empty() {
            let (tag, ava, _) = set.next()?;
            if tag != SEQUENCE {
                return Err("an attribute is a SEQUENCE");
            }
            let mut ava = Der { bytes: ava };
            let (tag, oid, _) = ava.next()?;
            if tag != OID {
                return Err("an attribute type is an OID");
            }
            let (value_tag, value, value_der) = ava.next()?;
            if !ava.bytes.is_empty() {
                return Err("trailing bytes in an attribute");
            }
            avas.push(render_attribute(oid, value_tag, value, value_der)?);
        }
        if avas.is_empty() {
            return Err("an empty RDN");
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UNIVERSAL_STRING: u8 = 0x1c;
const GENERAL_STRING: u8 = 0x1b;
const BMP_STRING: u8 = 0x1e;

/// The attribute types Java names by keyword in RFC 2253 output.
const KEYWORDS: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

fn render_attribute(
    oid: &[u8],
    tag: u8,
    value: &[u8],
    value_der: &[u8],
) -> Result<String, &'static str> {
    let dotted = dotted_oid(oid)?;
    let keyword = KEYWORDS.iter().find(|(o, _)| *o == dotted).map(|(_, k)| *k);
    let mut out = String::with_capacity(value.len() + 8);
    out.push_str(keyword.unwrap_or(&dotted));
    out.push('=');
    match (keyword, decode_string(tag, value)) {
        (Some(_), Some(text)) => escape_into(&text, &mut out),
        _ => {
            out.push('#');
            for byte in value_der {
                out.push_str(&format!("{byte:02x}"));
            }
        }
    }
    Ok(out)
}

/// The text of a directory string, decoded per its type as Java does;
/// `None` for a type Java does not treat as a string.
fn decode_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        UTF8_STRING => Some(String::from_utf8_lossy(value).into_owned()),
        PRINTABLE_STRING | T61_STRING | IA5_STRING | GENERAL_STRING => {
            Some(value.iter().map(|&b| char::from(b)).collect())
        }
        BMP_STRING => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        UNIVERSAL_STRING => Some(
            value
                .chunks_exact(4)
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
        ),
        _ => None,
    }
}

fn escape_into(text: &str, out: &mut String) {
    const ESCAPED: &str = ",=+<>#;\"\\";
    let chars: Vec<char> = text.chars().collect();
    let blank = |c: char| c == ' ' || c == '\r';
    let lead = chars.iter().take_while(|c| blank(**c)).count();
    let trail = chars.len() - chars.iter().rev().take_while(|c| blank(**c)).count();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\0' {
            out.push_str("\\00");
            continue;
        }
        if ESCAPED.contains(c) || i < lead || i >= trail.max(lead) {
            out.push('\\');
        }
        out.push(c);
    }
}

fn dotted_oid(bytes: &[u8]) -> Result<String, &'static str> {
    let mut parts: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut pending = false;
    for &byte in bytes {
        if value > (u64::MAX >> 7) {
            return Err("an OID component overflows");
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        pending = true;
        if byte & 0x80 == 0 {
            if parts.is_empty() {
                let (first, second) = match value {
                    0..=39 => (0, value),
                    40..=79 => (1, value - 40),
                    _ => (2, value - 80),
                };
                parts.push(first);
                parts.push(second);
            } else {
                parts.push(value);
            }
            value = 0;
            pending = false;
        }
    }
    if pending || parts.is_empty() {
        return Err("a truncated OID");
    }
    Ok(parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

/// A cursor over DER TLVs.
struct Der<'a> {
    bytes: &'a [u8],
}

impl<'a> Der<'a> {
    /// The next TLV: its tag, its contents, and the whole encoding.
    fn next(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), &'static str> {
        let bytes = self.bytes;
        let (&tag, rest) = bytes.split_first().ok_or("truncated")?;
        if tag & 0x1f == 0x1f {
            return Err("a high tag number");
        }
        let (&first, mut rest) = rest.split_first().ok_or("truncated")?;
        let length = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err("an unsupported length");
            }
            let (digits, after) = rest.split_at_checked(count).ok_or("truncated")?;
            rest = after;
            digits
                .iter()
                .fold(0usize, |n, &d| (n << 8) | usize::from(d))
        };
        let header = bytes.len() - rest.len();
        let contents = rest.get(..length).ok_or("truncated")?;
        let whole = &bytes[..header + length];
        self.bytes = &rest[length..];
        Ok((tag, contents, whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER TLV with a short length.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(contents.len()).expect("short")];
        out.extend_from_slice(contents);
        out
    }

    fn ava(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut inner = tlv(OID, oid);
        inner.extend(tlv(tag, value));
        tlv(SEQUENCE, &inner)
    }

    fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let sets: Vec<u8> = rdns
            .iter()
            .flat_map(|avas| tlv(SET, &avas.concat()))
            .collect();
        tlv(SEQUENCE, &sets)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];

    #[track_caller]
    fn check(rdns: &[Vec<Vec<u8>>], expected: &str) {
        assert_eq!(render_name(&name(rdns)).as_deref(), Ok(expected));
    }

    #[test]
    fn rdns_last_first_keywords_and_hex() {
        check(
            &[
                vec![ava(C, PRINTABLE_STRING, b"US")],
                vec![ava(O, UTF8_STRING, b"Example Org")],
                vec![ava(CN, UTF8_STRING, b"client one")],
            ],
            "CN=client one,O=Example Org,C=US",
        );
        // emailAddress has no RFC 2253 keyword: dotted OID, DER in hex.
        check(
            &[
                vec![ava(EMAIL, IA5_STRING, b"a@b")],
                vec![ava(CN, UTF8_STRING, b"x")],
            ],
            "CN=x,1.2.840.113549.1.9.1=#1603614062",
        );
        // A multi-valued RDN keeps its encoded order.
        check(
            &[vec![ava(CN, UTF8_STRING, b"a"), ava(O, UTF8_STRING, b"b")]],
            "CN=a+O=b",
        );
        // A keyword type with a non-string value is hex too.
        check(&[vec![ava(CN, 0x04, b"\x01")]], "CN=#040101");
        check(&[], "");
    }

    #[test]
    fn escaping_as_java_writes_it() {
        check(
            &[vec![ava(CN, UTF8_STRING, b"a,b=c+d<e>f#g;h\"i\\j")]],
            "CN=a\\,b\\=c\\+d\\<e\\>f\\#g\\;h\\\"i\\\\j",
        );
        check(&[vec![ava(CN, UTF8_STRING, b"  x y ")]], "CN=\\ \\ x y\\ ");
        check(&[vec![ava(CN, UTF8_STRING, b"   ")]], "CN=\\ \\ \\ ");
        check(&[vec![ava(CN, UTF8_STRING, b"a\0b")]], "CN=a\\00b");
        check(
            &[vec![ava(CN, UTF8_STRING, "Zoë_*@".as_bytes())]],
            "CN=Zoë_*@",
        );
        check(&[vec![ava(CN, BMP_STRING, &[0, b'h', 0, b'i'])]], "CN=hi");
    }

    proptest::proptest! {
        /// Untrusted bytes: any input is an answer or an error, never a
        /// panic, also behind a well-formed Name/RDN/attribute prefix.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..300)) {
            let _ = render_name(&bytes);
            let _ = subject_dn(&bytes);
            let tail = u8::try_from(bytes.len().min(120)).unwrap_or(0);
            let mut shaped = vec![SEQUENCE, tail + 4, SET, tail + 2, SEQUENCE, tail];
            shaped.extend_from_slice(&bytes[..usize::from(tail)]);
            let _ = render_name(&shaped);
        }
    }

    #[test]
    fn malformed_names_are_errors() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x31],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x02, 0x31, 0x00],
            &[0x30, 0x04, 0x31, 0x02, 0x30, 0x00],
            &[0x31, 0x00],
            &[0x30, 0x00, 0x00],
            &[0x30, 0x07, 0x31, 0x05, 0x30, 0x03, 0x06, 0x01, 0x80],
        ] {
            assert!(render_name(bad).is_err(), "{bad:?}");
        }
        assert!(subject_dn(b"not a certificate").is_err());
    }
}
