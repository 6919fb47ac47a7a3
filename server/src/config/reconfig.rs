//! The membership arithmetic of the reconfig request (opcode 16), as the
//! reference does it: from the member list in force and its version (the
//! text of `/zookeeper/config`), an incremental change (`joiningServers`
//! specs, `leavingServers` ids) or a whole new list (`newMembers`), to the
//! next list, or the refusal the reference answers with. It also writes the
//! text back (`render`), the one form `/zookeeper/config` and the
//! `zoo.cfg.dynamic.<version>` files take.
//!
//! Pure: no I/O, no knowledge of who is connected. The leader's own checks
//! (the caller's rights, a change already in progress, a synced quorum of
//! the new voters) come after these, from what only it knows.

use super::ensemble::{self, LearnerRole, ServerSpec};
use super::error::Setting;
use std::collections::BTreeMap;

/// Why the reference refuses a reconfig before looking at who may do it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `curConfigId` is neither -1 nor the version in force.
    BadVersion(String),
    /// A spec or id that does not parse, or a list without enough voters.
    BadArguments(String),
}

/// One reconfig request's change, as the client sent it (`None` for a
/// null string).
#[derive(Clone, Copy, Debug, Default)]
pub struct Change<'a> {
    pub joining: Option<&'a str>,
    pub leaving: Option<&'a str>,
    pub new_members: Option<&'a str>,
    /// The version the client read the config at, or -1.
    pub from_config: i64,
}

/// A member list and the version of the change that made it (0 for a
/// static config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub servers: BTreeMap<u64, ServerSpec>,
    pub version: u64,
}

/// The reference's text of a member list: one
/// `server.N=host:quorumPort:electionPort:role[;clientHost:clientPort]` line
/// a member (addresses joined by `|`), then `version=<hex>`, no final newline.
pub fn render(servers: &BTreeMap<u64, ServerSpec>, version: u64) -> String {
    let mut lines: Vec<String> = servers.values().map(render_server).collect();
    lines.push(format!("version={version:x}"));
    lines.join("\n")
}

fn render_server(spec: &ServerSpec) -> String {
    let addresses: Vec<String> = spec
        .addresses
        .iter()
        .map(|a| format!("{}:{}:{}", a.host, a.quorum_port, a.election_port))
        .collect();
    let role = match spec.role {
        LearnerRole::Participant => "participant",
        LearnerRole::Observer => "observer",
    };
    let mut line = format!("server.{}={}:{role}", spec.id, addresses.join("|"));
    if let Some((host, port)) = &spec.client {
        line.push_str(&format!(";{host}:{port}"));
    }
    line
}

/// Reads a member list as stored (`/zookeeper/config`, a reconfig txn):
/// `render`'s text as UTF-8 bytes, addresses `|`-separated if several.
pub fn parse_stored(data: &[u8]) -> Result<Membership, String> {
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
    parse(text, true)
}

/// Reads `render`'s text back (also a dynamic config file's).
pub fn parse(text: &str, multi_address: bool) -> Result<Membership, String> {
    let mut lines = Vec::new();
    let mut version = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("not key=value: {line}"))?;
        if key == "version" {
            let value = u64::from_str_radix(value, 16)
                .map_err(|_| format!("version is not hexadecimal: {value}"))?;
            version = Some(value);
        } else if key.starts_with("server.") {
            lines.push((key.to_string(), value.to_string()));
        } else {
            return Err(format!("unrecognised parameter {key}"));
        }
    }
    let servers = ensemble::parse_servers("/zookeeper/config", &lines, multi_address)
        .map_err(|e| e.to_string())?;
    Ok(Membership {
        servers,
        version: version.unwrap_or(0),
    })
}

/// The member list `change` makes of `current`, checked as the reference
/// checks it: the version first, then the specs, then the number of voters
/// (at least 2 with `standaloneEnabled`, else at least 1).
pub fn next(
    current: &Membership,
    change: &Change<'_>,
    multi_address: bool,
    standalone_enabled: bool,
) -> Result<BTreeMap<u64, ServerSpec>, Refusal> {
    if change.from_config != -1 && change.from_config as u64 != current.version {
        return Err(Refusal::BadVersion(format!(
            "Reconfiguration from version {:x} failed -- last seen version is {:x}",
            change.from_config, current.version
        )));
    }
    let servers = match change.new_members {
        Some(members) => whole_list(members, multi_address)?,
        None => incremental(current, change, multi_address)?,
    };
    let voters = servers
        .values()
        .filter(|s| s.role == LearnerRole::Participant)
        .count();
    if standalone_enabled && voters < 2 {
        return Err(Refusal::BadArguments(
            "Reconfig failed - new configuration must include at least 2 followers".into(),
        ));
    }
    if voters < 1 {
        return Err(Refusal::BadArguments(
            "Reconfig failed - new configuration must include at least 1 follower".into(),
        ));
    }
    Ok(servers)
}

/// Java's `StringUtils.split` as the reference uses it here: pieces
/// trimmed, empty ones dropped.
fn pieces(text: &str, separator: char) -> Vec<&str> {
    text.split(separator)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::BadArguments(message.into())
}

fn incremental(
    current: &Membership,
    change: &Change<'_>,
    multi_address: bool,
) -> Result<BTreeMap<u64, ServerSpec>, Refusal> {
    let mut servers = current.servers.clone();
    for leaving in change.leaving.map(|l| pieces(l, ',')).unwrap_or_default() {
        let id: u64 = leaving.parse().map_err(|_| {
            bad(format!(
                "Reconfiguration failed: not a server id: {leaving}"
            ))
        })?;
        servers.remove(&id);
    }
    for joining in change.joining.map(|j| pieces(j, ',')).unwrap_or_default() {
        let [key, value] = pieces(joining, '=')[..] else {
            return Err(bad("Wrong format of server string"));
        };
        let id_text = &key[key.rfind('.').map_or(0, |i| i + 1)..];
        let id: u64 = id_text
            .parse()
            .map_err(|_| bad(format!("Wrong format of server string: id {id_text}")))?;
        let setting = Setting {
            origin: "reconfig",
            key: format!("server.{id}"),
            value,
        };
        let spec = ensemble::parse_server(&setting, id, multi_address)
            .map_err(|e| bad(format!("Reconfiguration failed: {e}")))?;
        if spec.client.is_none() {
            return Err(bad(
                "Wrong format of server string - each server should have 3 ports specified",
            ));
        }
        for other in servers.values().filter(|other| other.id != id) {
            if shares_an_address(&spec, other) {
                return Err(bad(format!(
                    "Reconfiguration failed: server.{id} uses an address of server.{}",
                    other.id
                )));
            }
        }
        servers.insert(id, spec);
    }
    Ok(servers)
}

fn whole_list(members: &str, multi_address: bool) -> Result<BTreeMap<u64, ServerSpec>, Refusal> {
    let mut lines = Vec::new();
    for entry in pieces(members, ',') {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(bad(format!(
                "Reconfiguration failed: not key=value: {entry}"
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.starts_with("server.") {
            lines.push((key.to_string(), value.to_string()));
        } else if key != "version" {
            return Err(bad(format!(
                "Reconfiguration failed: unrecognised parameter {key}"
            )));
        }
    }
    let servers = ensemble::parse_servers("reconfig", &lines, multi_address)
        .map_err(|e| bad(format!("Reconfiguration failed: {e}")))?;
    for (i, a) in servers.values().enumerate() {
        if let Some(b) = servers
            .values()
            .skip(i + 1)
            .find(|b| shares_an_address(a, b))
        {
            return Err(bad(format!(
                "Reconfiguration failed: server.{} and server.{} share an address",
                a.id, b.id
            )));
        }
    }
    Ok(servers)
}

/// Two members may not listen on one host and port (the reference's
/// `checkAddressDuplicate`, on the peer ports).
fn shares_an_address(a: &ServerSpec, b: &ServerSpec) -> bool {
    let ports = |s: &ServerSpec| -> Vec<(String, u16)> {
        s.addresses
            .iter()
            .flat_map(|x| {
                [
                    (x.host.clone(), x.quorum_port),
                    (x.host.clone(), x.election_port),
                ]
            })
            .collect()
    };
    let theirs = ports(b);
    ports(a).iter().any(|p| theirs.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = "server.1=127.0.0.1:2888:3888:participant\n\
                         server.2=127.0.0.1:2889:3889:participant\n\
                         server.3=127.0.0.1:2890:3890:participant;0.0.0.0:2183\n\
                         version=100000002";

    fn current() -> Membership {
        parse(THREE, false).unwrap()
    }

    fn change<'a>(joining: Option<&'a str>, leaving: Option<&'a str>) -> Change<'a> {
        Change {
            joining,
            leaving,
            new_members: None,
            from_config: -1,
        }
    }

    #[test]
    fn the_text_reads_back_as_written() {
        let membership = current();
        assert_eq!(membership.version, 0x1_0000_0002);
        assert_eq!(membership.servers.len(), 3);
        assert_eq!(render(&membership.servers, membership.version), THREE);
    }

    #[test]
    fn an_observer_joins_and_leaves() {
        let joining = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456";
        let next = next(&current(), &change(Some(joining), None), false, true).unwrap();
        let text = render(&next, 0x1_0000_0005);
        assert!(text.contains(joining), "{text}");
        assert!(text.ends_with("\nversion=100000005"), "{text}");
        let with_it = Membership {
            servers: next,
            version: 0x1_0000_0005,
        };
        let after = super::next(&with_it, &change(None, Some("100")), false, true).unwrap();
        assert_eq!(after, current().servers);
    }

    #[test]
    fn a_participant_changes_its_role_and_ports_by_joining_again() {
        let joining = "server.3=127.0.0.1:2990:3990:observer;2183";
        let next = next(&current(), &change(Some(joining), None), false, false).unwrap();
        let three = &next[&3];
        assert_eq!(three.role, LearnerRole::Observer);
        assert_eq!(three.addresses[0].quorum_port, 2990);
        assert_eq!(three.client, Some(("0.0.0.0".to_string(), 2183)));
    }

    #[test]
    fn a_whole_new_list_replaces_the_old() {
        let members = "server.1=127.0.0.1:2888:3888:participant;2181,\
                       server.4=127.0.0.1:2891:3891:participant;2184";
        let change = Change {
            new_members: Some(members),
            ..change(None, None)
        };
        let next = next(&current(), &change, false, true).unwrap();
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), [1, 4]);
    }

    #[test]
    fn refusals_as_the_reference_answers() {
        let bad = |joining: Option<&str>, leaving: Option<&str>| match next(
            &current(),
            &change(joining, leaving),
            false,
            true,
        ) {
            Err(Refusal::BadArguments(_)) => {}
            other => panic!("{joining:?} {leaving:?}: {other:?}"),
        };
        bad(Some("some thing"), None);
        bad(Some("server.5=127.0.0.1:1:2"), None); // no client port
        bad(Some("server.x=127.0.0.1:1:2;3"), None);
        bad(Some("server.5=127.0.0.1:2888:4000;3"), None); // server.1's quorum port
        bad(Some("server.5=127.0.0.1:7:7;3"), None); // quorum = election port
        bad(None, Some("one"));
        bad(None, Some("1,2")); // one voter left (standaloneEnabled)
        let lone = next(&current(), &change(None, Some("1,2")), false, false).unwrap();
        assert_eq!(lone.keys().copied().collect::<Vec<_>>(), [3]);
        assert!(matches!(
            next(&current(), &change(None, Some("1,2,3")), false, false),
            Err(Refusal::BadArguments(_))
        ));
        let stale = Change {
            from_config: 0x1_0000_0003,
            ..change(Some("some thing"), None)
        };
        assert!(matches!(
            next(&current(), &stale, false, true),
            Err(Refusal::BadVersion(_))
        ));
        let matching = Change {
            from_config: 0x1_0000_0002,
            ..change(None, Some("3"))
        };
        assert!(next(&current(), &matching, false, true).is_ok());
    }
}
