//! The files an activated membership change leaves, as the reference
//! leaves them: the member list in `<config file>.dynamic.<hex version>`,
//! and the static config file rewritten without `server.N` lines, naming
//! that file in `dynamicConfigFile` (the first rewrite keeps the original
//! as `<config file>.bak`). A restart then reads the list in force.
//!
//! When this server's own line carries its client address, `clientPort`
//! and `clientPortAddress` leave the static file too, as the reference
//! does (the line is then the one place it is written, and a change to it
//! takes effect on the next start); otherwise they stay.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one: a temp file synced, renamed over, and the directory synced.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The dynamic file of `version` next to `config_file`.
pub fn dynamic_path(config_file: &Path, version: u64) -> PathBuf {
    let mut name = config_file.as_os_str().to_owned();
    name.push(format!(".dynamic.{version:x}"));
    PathBuf::from(name)
}

/// Writes `list` (`config::reconfig::render`'s text, which ends with its
/// `version` line) as the dynamic file of `version`, then points the static
/// file at it (without `clientPort` and `clientPortAddress` if
/// `own_client` says this server's line carries its client address).
/// Returns the dynamic file's path.
pub fn write_activated(
    config_file: &Path,
    list: &str,
    version: u64,
    own_client: bool,
) -> std::io::Result<PathBuf> {
    let dynamic = dynamic_path(config_file, version);
    replace_file(&dynamic, format!("{list}\n").as_bytes())?;
    let original = std::fs::read_to_string(config_file)?;
    let (text, had_servers) = static_text(&original, &dynamic, own_client);
    if had_servers {
        let mut backup = config_file.as_os_str().to_owned();
        backup.push(".bak");
        replace_file(Path::new(&backup), original.as_bytes())?;
    }
    replace_file(config_file, text.as_bytes())?;
    Ok(dynamic)
}

/// The static file's text without its member list, naming `dynamic`; and
/// whether it had `server.N` lines of its own.
fn static_text(original: &str, dynamic: &Path, own_client: bool) -> (String, bool) {
    let mut had_servers = false;
    let mut out = String::with_capacity(original.len() + 64);
    for line in original.lines() {
        let key = line.split(['=', ':']).next().unwrap_or_default().trim();
        let member = ["server.", "group.", "weight."]
            .iter()
            .any(|prefix| key.starts_with(prefix));
        had_servers |= key.starts_with("server.");
        let client = own_client && (key == "clientPort" || key == "clientPortAddress");
        if member || client || key == "dynamicConfigFile" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let dynamic = std::path::absolute(dynamic).unwrap_or_else(|_| dynamic.to_path_buf());
    out.push_str(&format!("dynamicConfigFile={}\n", dynamic.display()));
    (out, had_servers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn an_activated_list_is_what_the_next_start_reads() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("myid"), "1\n").unwrap();
        let original = format!(
            "tickTime=2000\ndataDir={}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
             reconfigEnabled=true\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n",
            data.display()
        );
        std::fs::write(&cfg, &original).unwrap();
        let list = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                    server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
                    server.3=127.0.0.1:2890:3890:observer;0.0.0.0:2183\n\
                    version=100000004";
        let dynamic = write_activated(&cfg, list, 0x1_0000_0004, false).unwrap();
        assert_eq!(dynamic, dir.path().join("zoo.cfg.dynamic.100000004"));
        assert_eq!(
            std::fs::read_to_string(&dynamic).unwrap(),
            format!("{list}\n")
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("zoo.cfg.bak")).unwrap(),
            original
        );
        let rewritten = std::fs::read_to_string(&cfg).unwrap();
        assert!(!rewritten.contains("server."), "{rewritten}");
        assert!(rewritten.contains("reconfigEnabled=true\n"), "{rewritten}");
        assert!(rewritten.contains("clientPort=2181\n"), "{rewritten}");

        let config = Config::load(&cfg).unwrap();
        assert_eq!(config.config_version, Some(0x1_0000_0004));
        assert_eq!(config.servers.len(), 3);
        assert_eq!(config.my_id, Some(1));

        // A second change replaces the pointer, keeps the first backup.
        let next = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                    server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
                    version=100000009";
        write_activated(&cfg, next, 0x1_0000_0009, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("zoo.cfg.bak")).unwrap(),
            original
        );
        let config = Config::load(&cfg).unwrap();
        assert_eq!(config.config_version, Some(0x1_0000_0009));
        assert_eq!(config.servers.len(), 2);
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert_eq!(text.matches("dynamicConfigFile=").count(), 1, "{text}");
        // This server's line carries its client address: the only place.
        assert!(!text.contains("clientPort"), "{text}");
        assert_eq!(config.client_port, 2181);
    }
}
