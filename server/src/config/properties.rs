//! Java `.properties` syntax as `java.util.Properties.load` reads it (the
//! syntax of zoo.cfg and of the dynamic config file): comments, the three
//! key/value separators, continued lines and escapes, then ZooKeeper's
//! trimming.
//!
//! This is a lexer only: it knows no key (what zoo.cfg's keys mean is
//! keys.rs) and reads no file. Any text is accepted or refused with a
//! [`PropertiesError`] naming the line; nothing panics.

use std::collections::BTreeMap;

/// A properties-syntax error: the line and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct PropertiesError {
    pub line: usize,
    pub message: String,
}

/// Java `Properties.load` rules: `#` and `!` comments, `key=value`,
/// `key: value` or `key value`, a line ending in an odd number of backslashes
/// continues (leading whitespace of the next line dropped), `\t \n \r \f
/// \uXXXX` escapes, any other escaped character stands for itself. Keys and
/// values are then trimmed as ZooKeeper trims them. Returns every
/// (key, value, line) in order, duplicates included.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String, usize)>, PropertiesError> {
    let mut properties = Vec::new();
    for (line, chars) in logical_lines(text) {
        let (key, value) = split_key_value(&chars);
        let key = unescape(key).map_err(|message| PropertiesError { line, message })?;
        let value = unescape(value).map_err(|message| PropertiesError { line, message })?;
        properties.push((
            java_trim(&key).to_string(),
            java_trim(&value).to_string(),
            line,
        ));
    }
    Ok(properties)
}

/// Keeps each key once, at its first position, with its last value.
pub(super) fn last_value_wins(properties: Vec<(String, String, usize)>) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (key, value, _) in properties {
        match index.get(&key) {
            Some(&at) => {
                if let Some(entry) = entries.get_mut(at) {
                    entry.1 = value;
                }
            }
            None => {
                index.insert(key.clone(), entries.len());
                entries.push((key, value));
            }
        }
    }
    entries
}

/// Java's `String.trim`: strips every char up to U+0020 from both ends.
fn java_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// Java's `LineReader` (JDK 9 and later, which the reference runs on): joins
/// continued lines and drops comments and blank lines. Each logical line comes
/// with the 1-based number of the natural line it starts on; escapes are
/// still in the text. Quirks kept on purpose: a `#`/`!` is a comment only
/// while the logical line is still empty (so it can follow a continuation of
/// an empty line), and a line that is only a continuation backslash at the
/// very end of the input still counts as an (empty) line.
fn logical_lines(text: &str) -> Vec<(usize, Vec<char>)> {
    let chars: Vec<char> = text.chars().collect();
    // The natural line of each char; a terminator belongs to the line it ends.
    let mut line_of = Vec::with_capacity(chars.len());
    let mut line = 1;
    for (index, &c) in chars.iter().enumerate() {
        line_of.push(line);
        if c == '\n' || (c == '\r' && chars.get(index + 1) != Some(&'\n')) {
            line += 1;
        }
    }
    let line_at = |index: usize| line_of.get(index).copied().unwrap_or(line);

    let mut lines = Vec::new();
    let mut pos = 0;
    let mut skip_lf = false;
    loop {
        let mut buffer: Vec<char> = Vec::new();
        let mut start = None;
        let mut skip_whitespace = true;
        let mut appended_line_begin = false;
        let mut preceding_backslash = false;
        let logical = loop {
            let Some(&c) = chars.get(pos) else {
                // End of input.
                if buffer.is_empty() {
                    break None;
                }
                if preceding_backslash {
                    buffer.pop();
                }
                break Some(buffer);
            };
            let here = pos;
            pos += 1;
            if skip_lf {
                skip_lf = false;
                if c == '\n' {
                    continue;
                }
            }
            if skip_whitespace {
                if is_blank(c) {
                    continue;
                }
                if !appended_line_begin && (c == '\r' || c == '\n') {
                    continue;
                }
                skip_whitespace = false;
                appended_line_begin = false;
            }
            if buffer.is_empty() && (c == '#' || c == '!') {
                // A comment runs to the end of its natural line.
                while let Some(&d) = chars.get(pos) {
                    pos += 1;
                    if d == '\r' || d == '\n' {
                        break;
                    }
                }
                skip_whitespace = true;
                continue;
            }
            if c != '\n' && c != '\r' {
                start.get_or_insert(here);
                buffer.push(c);
                preceding_backslash = c == '\\' && !preceding_backslash;
                continue;
            }
            if buffer.is_empty() {
                skip_whitespace = true;
                continue;
            }
            if pos >= chars.len() {
                // A terminator ends the input: the line ends here, minus a
                // continuation backslash, even if that leaves it empty.
                if preceding_backslash {
                    buffer.pop();
                }
                break Some(buffer);
            }
            if preceding_backslash {
                // An escaped terminator: the logical line goes on.
                buffer.pop();
                skip_whitespace = true;
                appended_line_begin = true;
                preceding_backslash = false;
                skip_lf = c == '\r';
            } else {
                break Some(buffer);
            }
        };
        match logical {
            Some(buffer) => lines.push((line_at(start.unwrap_or(pos.saturating_sub(1))), buffer)),
            None => break,
        }
    }
    lines
}

/// Java's `Properties.load0`: the key ends at the first unescaped `=`, `:` or
/// blank; blanks and at most one `=`/`:` separate it from the value.
fn split_key_value(chars: &[char]) -> (&[char], &[char]) {
    let mut key_len = 0;
    let mut value_start = chars.len();
    let mut has_separator = false;
    let mut preceding_backslash = false;
    while let Some(&c) = chars.get(key_len) {
        if (c == '=' || c == ':') && !preceding_backslash {
            value_start = key_len + 1;
            has_separator = true;
            break;
        }
        if is_blank(c) && !preceding_backslash {
            value_start = key_len + 1;
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
        key_len += 1;
    }
    while let Some(&c) = chars.get(value_start) {
        if !is_blank(c) {
            if !has_separator && (c == '=' || c == ':') {
                has_separator = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    let key = chars.get(..key_len).unwrap_or(&[]);
    let value = chars.get(value_start..).unwrap_or(&[]);
    (key, value)
}

/// Java's `loadConvert`: resolves escapes. `\uXXXX` needs exactly four hex
/// digits; surrogate pairs combine, a lone surrogate becomes U+FFFD.
fn unescape(chars: &[char]) -> Result<String, String> {
    let mut units: Vec<u16> = Vec::with_capacity(chars.len());
    let mut iter = chars.iter().copied();
    while let Some(c) = iter.next() {
        let c = if c == '\\' {
            match iter.next() {
                Some('u') => {
                    let mut unit: u16 = 0;
                    for _ in 0..4 {
                        let digit = iter
                            .next()
                            .and_then(|d| d.to_digit(16))
                            .ok_or_else(|| "malformed \\uxxxx escape".to_string())?;
                        // At most four hex digits: fits in 16 bits.
                        unit = (unit << 4) | u16::try_from(digit).unwrap_or(0);
                    }
                    units.push(unit);
                    continue;
                }
                Some('t') => '\t',
                Some('r') => '\r',
                Some('n') => '\n',
                Some('f') => '\x0c',
                Some(other) => other,
                // A lone trailing backslash cannot reach here from a logical
                // line, but drop it rather than trust that.
                None => break,
            }
        } else {
            c
        };
        let mut buffer = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut buffer));
    }
    Ok(String::from_utf16_lossy(&units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::pairs;
    use proptest::prelude::*;

    #[track_caller]
    fn props(text: &str) -> Vec<(String, String)> {
        match parse_properties(text) {
            Ok(list) => list.into_iter().map(|(k, v, _)| (k, v)).collect(),
            Err(error) => panic!("properties error: {error:?}"),
        }
    }

    #[test]
    fn properties_separators_comments_and_whitespace() {
        let text = "# comment\n! also a comment\n\n   \n  a=1\nb = 2 \nc:3\nd 4\ne\t\t:  5\nf\ng=\n h = x = y\n";
        assert_eq!(
            props(text),
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5"),
                ("f", ""),
                ("g", ""),
                ("h", "x = y")
            ])
        );
        // A separator after blanks counts once; a second one is value.
        assert_eq!(props("k = = v"), pairs(&[("k", "= v")]));
        assert_eq!(props("k  :=v"), pairs(&[("k", "=v")]));
    }

    #[test]
    fn properties_continuations() {
        assert_eq!(
            props("list = a,\\\n    b,\\\n\tc\n"),
            pairs(&[("list", "a,b,c")])
        );
        // An even number of backslashes does not continue.
        assert_eq!(props("a=x\\\\\nb=y"), pairs(&[("a", "x\\"), ("b", "y")]));
        // A comment line cannot be continued.
        assert_eq!(props("# c \\\nb=y"), pairs(&[("b", "y")]));
        // `#` at the start of a continuation is data, unless nothing came
        // before it: then it starts a comment (as in Java 9+).
        assert_eq!(props("a=1\\\n#2\n"), pairs(&[("a", "1#2")]));
        assert_eq!(props("\\\n#c\nx=1"), pairs(&[("x", "1")]));
        // A lone continuation at the very end still makes an empty property.
        assert_eq!(props("\x0c\\\r\\\n\\\r"), pairs(&[("", "")]));
        // CRLF and lone CR terminate lines; a trailing backslash at EOF is dropped.
        assert_eq!(
            props("a=1\r\nb=2\rc=3\\"),
            pairs(&[("a", "1"), ("b", "2"), ("c", "3")])
        );
        assert_eq!(props("a=1\\\r\n  2"), pairs(&[("a", "12")]));
        // A blank line after a continuation ends the logical line.
        assert_eq!(props("a=1\\\n\nb=2"), pairs(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn properties_escapes() {
        assert_eq!(props("a\\=b=c"), pairs(&[("a=b", "c")]));
        assert_eq!(props("a\\ b c"), pairs(&[("a b", "c")]));
        assert_eq!(
            props("k=\\u0041\\u00e9\\t\\x"),
            pairs(&[("k", "A\u{e9}\tx")])
        );
        assert_eq!(props("k=\\uD83D\\uDE00"), pairs(&[("k", "\u{1F600}")]));
        assert_eq!(props("k=\\uD83D"), pairs(&[("k", "\u{FFFD}")]));
        assert_eq!(
            props("dataDir=C:\\\\zk\\\\data"),
            pairs(&[("dataDir", "C:\\zk\\data")])
        );
        let error = parse_properties("a=1\nb=\\u12G4\n").expect_err("malformed escape");
        assert_eq!(
            error,
            PropertiesError {
                line: 2,
                message: "malformed \\uxxxx escape".to_string()
            }
        );
        let lines: Vec<usize> = parse_properties("# c\n\na=1\\\n 2\n\r\nb=3")
            .expect("parses")
            .iter()
            .map(|(_, _, line)| *line)
            .collect();
        assert_eq!(lines, [3, 6]);
    }

    proptest! {
        /// Properties round trip: escaped keys and values read back as written.
        #[test]
        fn escaped_properties_round_trip(key in "[a-zA-Z0-9.=: #!\\\\]{1,12}", value in "[ -~]{0,20}") {
            let escape = |text: &str, is_key: bool| -> String {
                let mut out = String::new();
                for (i, c) in text.chars().enumerate() {
                    match c {
                        '\\' | '=' | ':' | '#' | '!' => { out.push('\\'); out.push(c); }
                        ' ' if is_key || i == 0 => { out.push('\\'); out.push(c); }
                        c => out.push(c),
                    }
                }
                out
            };
            let line = format!("{}={}\n", escape(&key, true), escape(&value, false));
            let parsed = parse_properties(&line).expect("escaped text parses");
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(&parsed[0].0, java_trim(&key));
            prop_assert_eq!(&parsed[0].1, java_trim(&value));
        }
    }
}
