//! znode path rules: the validation ZooKeeper's `PathUtils.validatePath`
//! applies to paths written by create, delete, setData and setACL, and the
//! parent/name split every module uses. It does not normalise anything: reads
//! take paths as given (ZK-BEHAVIOURS 5), and an invalid path is an answer
//! (BadArguments), never a panic.
//!
//! Invariant: `validate` accepts exactly the paths the reference accepts,
//! judged on UTF-16 code units as Java sees them (so any character outside
//! the Basic Multilingual Plane, a surrogate pair there, is refused).

use crate::types::ErrorCode;

/// Validates a path for a write. `sequential` validates `path + "1"`, as the
/// reference does, so `/a/` is a valid sequential prefix (ZK-BEHAVIOURS 6).
pub fn validate(path: &str, sequential: bool) -> Result<(), ErrorCode> {
    if sequential {
        let mut with_suffix = String::with_capacity(path.len() + 1);
        with_suffix.push_str(path);
        with_suffix.push('1');
        return validate_exact(&with_suffix);
    }
    validate_exact(path)
}

fn validate_exact(path: &str) -> Result<(), ErrorCode> {
    let bad = Err(ErrorCode::BadArguments);
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return bad;
    }
    if bytes.len() == 1 {
        return Ok(());
    }
    if bytes.last() == Some(&b'/') {
        return bad;
    }
    // Component rules: no empty names, no "." or "..".
    for component in path[1..].split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return bad;
        }
    }
    for c in path.chars() {
        let code = u32::from(c);
        let invalid = code == 0
            || (0x01..=0x1f).contains(&code)
            || (0x7f..=0x9f).contains(&code)
            // Surrogates (any supplementary character in UTF-16) and the
            // private use area.
            || (0xd800..=0xf8ff).contains(&code)
            || code > 0xffff
            || (0xfff0..=0xffff).contains(&code);
        if invalid {
            return bad;
        }
    }
    Ok(())
}

/// The parent path of `path` ("/" for a child of the root and for paths
/// without a slash). Meant for validated absolute paths other than "/".
pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of `path`.
pub fn name_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `parent` joined with child `name`.
pub fn join(parent: &str, name: &str) -> String {
    let mut path = String::with_capacity(parent.len() + 1 + name.len());
    path.push_str(parent);
    if !parent.ends_with('/') {
        path.push('/');
    }
    path.push_str(name);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(path: &str, sequential: bool, ok: bool) {
        let got = validate(path, sequential);
        assert_eq!(
            got.is_ok(),
            ok,
            "validate({path:?}, sequential={sequential}) = {got:?}"
        );
    }

    #[test]
    fn reference_path_rules() {
        for ok in [
            "/", "/a", "/a/b", "/a.b", "/.a", "/a..", "/...", "/a/.b/c", "/é", "/a b",
        ] {
            check(ok, false, true);
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//a",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/../b",
            "/a/./b",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{fff0}",
            "/a\u{1F600}",
        ] {
            check(bad, false, false);
        }
        // ZK-BEHAVIOURS 6: "/a/" is a valid sequential prefix.
        check("/a/", true, true);
        check("/", true, true);
        check("//", true, false);
        check("/a/.", true, true);
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(name_of("/a/b"), "b");
        assert_eq!(name_of("/a/"), "");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
