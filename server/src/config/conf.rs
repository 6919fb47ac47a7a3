//! The `conf` four-letter word: a [`Config`] rendered as the reference's
//! (key, value) lines, in its order and spelling.
//!
//! This only renders: it reads no file and decides no value. The directory
//! sizes are measured by the caller (admin.rs, on the `fourlw` thread), and
//! net's word handler does the printing.

use super::ensemble::{LearnerRole, PeerAddress};
use super::Config;
use std::path::Path;

/// The reference prints a port it does not listen on as -1.
fn port_or_none(port: u16) -> String {
    if port == 0 {
        "-1".to_string()
    } else {
        port.to_string()
    }
}

impl Config {
    /// The `conf` four-letter word's lines, in the reference's order and
    /// spelling. The reference prints its snapshot and log directories (its
    /// `version-2` subdirectories); here the configured directories are
    /// shown, made absolute. A port that is not set shows as -1, as there.
    pub fn conf_4lw(&self, data_dir_size: u64, log_dir_size: u64) -> Vec<(String, String)> {
        let absolute = |path: &Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        let mut lines = vec![
            ("clientPort".to_string(), port_or_none(self.client_port)),
            (
                "secureClientPort".to_string(),
                port_or_none(self.secure_client_port),
            ),
            ("dataDir".to_string(), absolute(&self.data_dir)),
            ("dataDirSize".to_string(), data_dir_size.to_string()),
            ("dataLogDir".to_string(), absolute(&self.data_log_dir)),
            ("dataLogSize".to_string(), log_dir_size.to_string()),
            ("tickTime".to_string(), self.tick_time_ms.to_string()),
            (
                "maxClientCnxns".to_string(),
                self.max_client_cnxns.to_string(),
            ),
            (
                "minSessionTimeout".to_string(),
                self.min_session_timeout_ms.to_string(),
            ),
            (
                "maxSessionTimeout".to_string(),
                self.max_session_timeout_ms.to_string(),
            ),
            (
                "clientPortListenBacklog".to_string(),
                self.client_port_listen_backlog.to_string(),
            ),
            ("serverId".to_string(), self.my_id.unwrap_or(0).to_string()),
        ];
        if self.is_distributed() {
            let me = self.my_id.and_then(|id| self.servers.get(&id));
            let ports = |pick: fn(&PeerAddress) -> u16| {
                me.map(|spec| {
                    spec.addresses
                        .iter()
                        .map(|a| pick(a).to_string())
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .unwrap_or_default()
            };
            lines.push(("initLimit".to_string(), self.init_limit.to_string()));
            lines.push(("syncLimit".to_string(), self.sync_limit.to_string()));
            lines.push(("electionAlg".to_string(), "3".to_string()));
            lines.push(("electionPort".to_string(), ports(|a| a.election_port)));
            lines.push(("quorumPort".to_string(), ports(|a| a.quorum_port)));
            let ordinal = if self.peer_type == LearnerRole::Observer {
                "1"
            } else {
                "0"
            };
            lines.push(("peerType".to_string(), ordinal.to_string()));
            lines.push(("membership:".to_string(), String::new()));
            for (id, spec) in &self.servers {
                let mut value = spec
                    .addresses
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.host, a.quorum_port, a.election_port))
                    .collect::<Vec<_>>()
                    .join("|");
                value.push_str(match spec.role {
                    LearnerRole::Observer => ":observer",
                    LearnerRole::Participant => ":participant",
                });
                if let Some((host, port)) = &spec.client {
                    value.push_str(&format!(";{host}:{port}"));
                }
                lines.push((format!("server.{id}"), value));
            }
            // The static configuration's version, as Apache prints it
            // without dynamic reconfiguration.
            lines.push(("version".to_string(), "0".to_string()));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::parse;

    #[test]
    fn conf_word_lines_for_a_standalone_server() {
        let config = parse("tickTime=2000\ndataDir=/tmp/refzk/data\nclientPort=49487\n");
        let lines: Vec<String> = config
            .conf_4lw(457, 457)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        // The reference's shape, observed on 3.8.0 (which shows its
        // version-2 subdirectories where we show the configured ones).
        assert_eq!(
            lines,
            [
                "clientPort=49487",
                "secureClientPort=-1",
                "dataDir=/tmp/refzk/data",
                "dataDirSize=457",
                "dataLogDir=/tmp/refzk/data",
                "dataLogSize=457",
                "tickTime=2000",
                "maxClientCnxns=60",
                "minSessionTimeout=4000",
                "maxSessionTimeout=40000",
                "clientPortListenBacklog=-1",
                "serverId=0",
            ]
        );
    }

    #[test]
    fn conf_word_lines_for_an_ensemble_member_end_with_the_membership() {
        let mut config = parse(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/var/lib/zk\nclientPort=2181\n\
             server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888;2181\n\
             server.3=10.0.0.3:2888:3888:observer\n",
        );
        config.apply_my_id(Some(2)).unwrap();
        let lines: Vec<String> = config
            .conf_4lw(0, 0)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let tail: Vec<&str> = lines[lines.len() - 11..]
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            tail,
            [
                "initLimit=10",
                "syncLimit=5",
                "electionAlg=3",
                "electionPort=3888",
                "quorumPort=2888",
                "peerType=0",
                "membership:=",
                "server.1=10.0.0.1:2888:3888:participant",
                "server.2=10.0.0.2:2888:3888:participant;0.0.0.0:2181",
                "server.3=10.0.0.3:2888:3888:observer",
                "version=0",
            ]
        );
    }
}
