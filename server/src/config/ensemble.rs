//! The ensemble model: the `server.N` member list (peer addresses and ports,
//! peer types, client addresses), this server's `myid`, and the reference's
//! checks on the list. The quorum wiring takes it from here.
//!
//! It stands alone: it depends on nothing in `config` but the shared error
//! type, so it is not the zoo.cfg reader (it gets `server.N` lines already
//! split into key and value), knows no other key, and leaves `initLimit` /
//! `syncLimit` to [`super::Config`]. It parses text into values and does no
//! other I/O than reading `myid`: host names stay unresolved, and warnings
//! are returned, not logged.

use super::error::{read_text, ConfigError, Setting};
use std::collections::BTreeMap;
use std::path::Path;

/// A member of the ensemble, from one `server.N` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    /// One address, or several separated by `|` with `multiAddress.enabled`.
    pub addresses: Vec<PeerAddress>,
    pub role: LearnerRole,
    /// The `;[host:]port` part: where this member serves clients. A bare port
    /// means host `0.0.0.0`.
    pub client: Option<(String, u16)>,
}

/// Where one member listens to its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnerRole {
    Participant,
    Observer,
}

/// The participants (voting members) in the list.
pub fn participants(servers: &BTreeMap<u64, ServerSpec>) -> usize {
    servers
        .values()
        .filter(|s| s.role == LearnerRole::Participant)
        .count()
}

/// Whether a server with this list runs as a member of a replicated
/// ensemble. As in the reference, a single participant with
/// `standaloneEnabled` runs alone.
pub fn is_distributed(servers: &BTreeMap<u64, ServerSpec>, standalone_enabled: bool) -> bool {
    !servers.is_empty() && (!standalone_enabled || participants(servers) > 1)
}

/// The reference's checks on the member list, `origin` naming the file it
/// came from. A list that is valid but fragile gives a warning for the
/// caller to show.
pub fn check_quorum(
    origin: &str,
    servers: &BTreeMap<u64, ServerSpec>,
    standalone_enabled: bool,
) -> Result<Option<String>, ConfigError> {
    if servers.is_empty() {
        return Ok(None);
    }
    let participants = participants(servers);
    let observers = servers.len() - participants;
    let invalid = |message: &str| ConfigError::Invalid {
        origin: origin.to_string(),
        message: message.to_string(),
    };
    if participants == 0 {
        if !standalone_enabled {
            return Err(invalid(
                "standaloneEnabled=false needs at least one participant in the server.N list",
            ));
        }
        if observers > 0 {
            return Err(invalid(
                "observers without participants is an invalid configuration",
            ));
        }
    } else if participants == 1 && standalone_enabled {
        if observers > 0 {
            return Err(invalid(
                "observers without a quorum is an invalid configuration",
            ));
        }
        return Ok(Some(format!(
            "{origin}: only one server in the server.N list; running standalone (set standaloneEnabled=false to run a one-member ensemble)"
        )));
    } else if participants <= 2 {
        return Ok(Some(format!(
            "{origin}: no server failure will be tolerated; an ensemble needs at least 3 servers"
        )));
    } else if participants & 1 == 0 {
        return Ok(Some(format!("{origin}: an even number of participants tolerates no more failures than one fewer; consider an odd number")));
    }
    Ok(None)
}

/// `dataDir/myid`: this server's id in the ensemble, if the file exists.
/// Surrounding whitespace is tolerated (the reference reads the first line).
pub fn read_my_id(data_dir: &Path) -> Result<Option<u64>, ConfigError> {
    let path = data_dir.join("myid");
    if !path.is_file() {
        return Ok(None);
    }
    let text = read_text(&path)?;
    let first = text.lines().next().unwrap_or("").trim();
    first
        .parse::<u64>()
        .map(Some)
        .map_err(|_| ConfigError::InvalidValue {
            origin: path.display().to_string(),
            key: "myid".to_string(),
            value: first.to_string(),
            expected: "a non-negative server id".to_string(),
        })
}

/// The reference's `server.N` grammar (`QuorumServer`):
/// `host:quorumPort:electionPort[:type]`, several joined by `|`, then
/// optionally `;[host:]clientPort`. IPv6 hosts go in brackets. `lines` are
/// (`server.N`, value) pairs from the file `origin` names.
pub fn parse_servers(
    origin: &str,
    lines: &[(String, String)],
    multi_address_enabled: bool,
) -> Result<BTreeMap<u64, ServerSpec>, ConfigError> {
    let mut servers = BTreeMap::new();
    for (key, value) in lines {
        let setting = Setting {
            origin,
            key: key.clone(),
            value,
        };
        let id_text = key.trim_start_matches("server.");
        let id = id_text
            .parse::<u64>()
            .map_err(|_| ConfigError::InvalidValue {
                origin: origin.to_string(),
                key: key.clone(),
                value: value.clone(),
                expected: format!("a non-negative server id after \"server.\", not \"{id_text}\""),
            })?;
        let spec = parse_server(&setting, id, multi_address_enabled)?;
        servers.insert(id, spec);
    }
    Ok(servers)
}

/// The `version` of a dynamic configuration: hexadecimal, as the reference
/// writes it into the file's name and contents.
pub(super) fn parse_hex_version(setting: &Setting<'_>) -> Result<u64, ConfigError> {
    u64::from_str_radix(setting.value, 16).map_err(|_| setting.invalid("a hexadecimal version"))
}

/// A `group.N` or `weight.N` key: the reference's hierarchical quorums,
/// which this server refuses rather than silently count votes differently.
pub(super) fn hierarchical_unsupported(origin: &str, key: &str) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message: format!("{key}: hierarchical quorums (group.N / weight.N) are not supported"),
    }
}

/// A peer type as `peerType` and the fourth `server.N` field spell it.
pub(super) fn parse_role(text: &str) -> Option<LearnerRole> {
    match text.trim().to_ascii_lowercase().as_str() {
        "participant" => Some(LearnerRole::Participant),
        "observer" => Some(LearnerRole::Observer),
        _ => None,
    }
}

const SERVER_FORMAT: &str =
    "host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]";

pub(super) fn parse_server(
    setting: &Setting<'_>,
    id: u64,
    multi: bool,
) -> Result<ServerSpec, ConfigError> {
    let wrong = || setting.invalid(SERVER_FORMAT);
    let parts = java_split(setting.value, ';');
    if parts.is_empty() || parts.len() > 2 {
        return Err(wrong());
    }
    let client = match parts.get(1) {
        None => None,
        Some(client) => {
            let pieces = host_and_port(client).ok_or_else(wrong)?;
            let (host, port) = match pieces.as_slice() {
                [port] => ("0.0.0.0".to_string(), port),
                [host, port] => (host.clone(), port),
                _ => return Err(wrong()),
            };
            let port = port
                .parse::<u16>()
                .map_err(|_| setting.invalid("a client port number"))?;
            Some((host, port))
        }
    };
    let mut addresses = Vec::new();
    let mut role = None;
    let first = parts.first().ok_or_else(wrong)?;
    let alternatives = java_split(first, '|');
    if alternatives.len() > 1 && !multi {
        return Err(setting.invalid(
            "a single address (several addresses separated by | need multiAddress.enabled=true)",
        ));
    }
    for address in alternatives {
        let pieces = host_and_port(&address).ok_or_else(wrong)?;
        if pieces.len() < 3 || pieces.len() > 4 {
            return Err(wrong());
        }
        let host = pieces.first().ok_or_else(wrong)?.clone();
        if host.is_empty() {
            return Err(wrong());
        }
        let port = |index: usize| -> Result<u16, ConfigError> {
            pieces
                .get(index)
                .and_then(|text| text.parse::<u16>().ok())
                .ok_or_else(|| {
                    setting.invalid("port numbers (0-65535) in host:quorumPort:electionPort")
                })
        };
        let (quorum_port, election_port) = (port(1)?, port(2)?);
        if quorum_port == election_port {
            return Err(ConfigError::Invalid {
                origin: setting.origin.to_string(),
                message: format!(
                    "server.{id}: the quorum port and the election port must be different ({quorum_port})"
                ),
            });
        }
        if let Some(text) = pieces.get(3) {
            let this = parse_role(text)
                .ok_or_else(|| setting.invalid("observer or participant as the fourth field"))?;
            if role.is_some_and(|previous| previous != this) {
                return Err(setting.invalid("the same role for every address of one server"));
            }
            role = Some(this);
        }
        addresses.push(PeerAddress {
            host,
            quorum_port,
            election_port,
        });
    }
    Ok(ServerSpec {
        id,
        addresses,
        role: role.unwrap_or(LearnerRole::Participant),
        client,
    })
}

/// Java's `String.split` with a literal one-character separator: trailing
/// empty pieces are dropped (so `a:b:` is two pieces).
fn java_split(text: &str, separator: char) -> Vec<String> {
    let mut pieces: Vec<String> = text.split(separator).map(str::to_string).collect();
    while pieces.last().is_some_and(|piece| piece.is_empty()) {
        pieces.pop();
    }
    pieces
}

/// The reference's `ConfigUtils.getHostAndPort`: `[v6addr]:a:b` keeps the
/// bracketed host whole; otherwise a plain split on `:`.
fn host_and_port(text: &str) -> Option<Vec<String>> {
    let Some(rest) = text.strip_prefix('[') else {
        return Some(java_split(text, ':'));
    };
    let close = rest.find(']')?;
    let host = rest.get(..close)?.to_string();
    let after = rest.get(close + 1..)?;
    if after.is_empty() {
        return Some(vec![host]);
    }
    let ports = after.strip_prefix(':')?;
    if ports.is_empty() {
        return None;
    }
    let mut pieces = vec![host];
    pieces.extend(java_split(ports, ':'));
    Some(pieces)
}

// These tests use this module alone, as the quorum wiring will; the server.N
// grammar's error messages through zoo.cfg are pinned by Config's tests
// (`server_line_errors`, `quorum_validation`, `dynamic_config_file`).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_split_and_host_and_port() {
        assert_eq!(java_split("a:b::", ':'), ["a", "b"]);
        assert_eq!(java_split("", ':'), Vec::<String>::new());
        assert_eq!(
            host_and_port("[::1]:1:2"),
            Some(vec!["::1".to_string(), "1".to_string(), "2".to_string()])
        );
        assert_eq!(host_and_port("[::1]"), Some(vec!["::1".to_string()]));
        assert_eq!(host_and_port("[::1]x"), None);
        assert_eq!(host_and_port("[::1"), None);
    }

    /// The member list, peer types, ports, quorum checks and myid come from
    /// this module without zoo.cfg's key table or the properties lexer.
    #[test]
    fn member_list_and_myid_without_the_rest_of_the_config() {
        let lines: Vec<(String, String)> = [
            ("server.1", "a:2888:3888"),
            ("server.2", "b:2889:3889;2181"),
            ("server.3", "c:2890:3890:observer;[::1]:2182"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let servers = parse_servers("zoo.cfg.dynamic", &lines, false).expect("parses");
        assert_eq!(
            servers[&2],
            ServerSpec {
                id: 2,
                addresses: vec![PeerAddress {
                    host: "b".to_string(),
                    quorum_port: 2889,
                    election_port: 3889
                }],
                role: LearnerRole::Participant,
                client: Some(("0.0.0.0".to_string(), 2181)),
            }
        );
        assert_eq!(servers[&3].role, LearnerRole::Observer);
        assert_eq!(servers[&3].client, Some(("::1".to_string(), 2182)));
        assert_eq!(participants(&servers), 2);
        assert!(is_distributed(&servers, true));
        assert_eq!(
            check_quorum("zoo.cfg.dynamic", &servers, true)
                .expect("valid")
                .as_deref(),
            Some("zoo.cfg.dynamic: no server failure will be tolerated; an ensemble needs at least 3 servers")
        );
        let alone = parse_servers("zoo.cfg", &lines[..1], false).expect("parses");
        assert!(!is_distributed(&alone, true));
        assert!(is_distributed(&alone, false));
        assert_eq!(
            check_quorum("zoo.cfg", &BTreeMap::new(), false).expect("empty is valid"),
            None
        );

        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_my_id(dir.path()).expect("no myid"), None);
        std::fs::write(dir.path().join("myid"), " 3 \nignored\n").expect("myid");
        assert_eq!(read_my_id(dir.path()).expect("myid"), Some(3));
    }
}
