//! JVM flags: the `-Dname=value` words of `SERVER_JVMFLAGS` and `JVMFLAGS`,
//! which zkServer.sh users and container images use to set Java system
//! properties, split into words as a POSIX shell would.
//!
//! This only finds the definitions; it does not know which properties exist
//! or what their values mean (that is the key table, keys.rs). Other words
//! (`-Xmx512m`, `-XX:...`) are skipped, and no input makes it fail.

/// Where JVM flags come from, for error messages.
pub(super) const JVM_FLAGS_ORIGIN: &str = "SERVER_JVMFLAGS/JVMFLAGS";

/// `$SERVER_JVMFLAGS $JVMFLAGS`, the order zkServer.sh passes them in (so a
/// `-D` in `JVMFLAGS` wins, being later on the Java command line).
pub fn jvm_flags_from_env() -> String {
    let get = |name: &str| std::env::var(name).unwrap_or_default();
    format!("{} {}", get("SERVER_JVMFLAGS"), get("JVMFLAGS"))
}

/// The `-Dname=value` words of a JVM command line, in order (a later
/// definition of a name overrides an earlier one when collected). Words are
/// split as a POSIX shell would: quotes group and are removed, backslash
/// escapes. zkServer.sh expands `$JVMFLAGS` unquoted, so the reference's JVM
/// would see literal quote characters; treating them as quoting is what people
/// who write `-Dx="a b"` mean. A `-Dname` without `=` sets an empty value.
pub fn parse_jvm_flags(flags: &str) -> Vec<(String, String)> {
    shell_words(flags)
        .into_iter()
        .filter_map(|word| {
            let definition = word.strip_prefix("-D")?;
            let (name, value) = definition.split_once('=').unwrap_or((definition, ""));
            (!name.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// POSIX-shell-like word splitting with quote removal; an unterminated quote
/// runs to the end of the text.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(next @ ('"' | '\\' | '$' | '`')) => word.push(next),
                            Some('\n') => {}
                            Some(next) => {
                                word.push('\\');
                                word.push(next);
                            }
                            None => word.push('\\'),
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(next) => word.push(next),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{pairs, MINIMAL};
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn jvm_flags_word_splitting() {
        let flags = parse_jvm_flags(
            " -Da=1  -Db=\"two words\" '-Dc=single quoted' -Dd=\"x\\\"y\" -De=un\\ quoted -Df -D -Dg=\"\" -Dh='a\"b' -Di=\"unterminated",
        );
        assert_eq!(
            flags,
            pairs(&[
                ("a", "1"),
                ("b", "two words"),
                ("c", "single quoted"),
                ("d", "x\"y"),
                ("e", "un quoted"),
                ("f", ""),
                ("g", ""),
                ("h", "a\"b"),
                ("i", "unterminated"),
            ])
        );
        assert_eq!(
            parse_jvm_flags("-Dk=a=b -Dk=c"),
            pairs(&[("k", "a=b"), ("k", "c")])
        );
        assert_eq!(shell_words("a\\"), ["a\\"]);
        // A quoted superDigest (base64 may end in '=') survives intact.
        let config = Config::parse(
            MINIMAL,
            Path::new("zoo.cfg"),
            "-Dzookeeper.DigestAuthenticationProvider.superDigest=\"super:uBk8GjcZ+Ob1nR3VvqS3RLQ5NkI=\"",
        )
        .expect("parses");
        assert_eq!(
            config.super_digest.as_deref(),
            Some("super:uBk8GjcZ+Ob1nR3VvqS3RLQ5NkI=")
        );
        // Later definitions win.
        let config = Config::parse(
            MINIMAL,
            Path::new("zoo.cfg"),
            "-Djute.maxbuffer=10 -Djute.maxbuffer=20",
        )
        .expect("parses");
        assert_eq!(config.jute_max_buffer, 20);
    }
}
