//! The four-letter words (`ruok`, `srvr`, `stat`, `mntr`, ...): recognising
//! one in the first four bytes of a connection, the whitelist that gates them,
//! the snapshots a server hands over, and (in `render`) each answer in Apache
//! ZooKeeper 3.8's exact text shape, since monitoring scripts,
//! `zkServer.sh status`, kazoo and zktop parse it. Java's number, date and
//! address formats live in `javafmt`.
//!
//! This is not where the data comes from: the server implements
//! [`FourLetterSource`], which hands over plain snapshots. Rendering is a pure
//! function of the word, the whitelist and those snapshots (no file, clock or
//! socket is read here), so every shape is unit-tested against a fixed fake.
//! Invariant: nothing here panics, whatever the snapshots contain; a word
//! that is not whitelisted gets the reference's refusal line and runs nothing
//! (not even a reset).
//!
//! As in the reference, a connection whose first four bytes, read as the
//! big-endian frame length, spell a known word is a four-letter-word
//! connection: the reactor has the answer rendered on its `fourlw` thread
//! (the source may read the disk or walk the watch registry), writes it and
//! closes the connection.

use crate::stats::{ConnectionStatsSnapshot, ServerStatsSnapshot};
use std::collections::BTreeSet;
use std::net::SocketAddr;

mod render;
pub use render::{default_environment, refusal, render, render_set_trace_mask};

#[cfg(test)]
mod tests;

/// Every command the reference knows, including the ones only `*` enables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum FourLetterWord {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    /// Get the trace mask.
    Gtmk,
    Ruok,
    /// Set the trace mask: eight more bytes follow (see [`render_set_trace_mask`]).
    Stmk,
    Srst,
    Srvr,
    Stat,
    Wchc,
    Wchp,
    Wchs,
    Mntr,
    Isro,
    /// The tree digest log (`zookeeper.digest.enabled`).
    Hash,
    /// `IAC DO TIMING-MARK`-ish bytes telnet sends on close; known so the
    /// reference can log it quietly. Whitelisted it answers nothing.
    TelnetClose,
}

impl FourLetterWord {
    pub const ALL: [FourLetterWord; 19] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Ruok,
        FourLetterWord::Stmk,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
        FourLetterWord::Mntr,
        FourLetterWord::Isro,
        FourLetterWord::Hash,
        FourLetterWord::TelnetClose,
    ];

    /// The name used in the whitelist and in the refusal text.
    pub fn name(self) -> &'static str {
        use FourLetterWord::*;
        match self {
            Conf => "conf",
            Cons => "cons",
            Crst => "crst",
            Dirs => "dirs",
            Dump => "dump",
            Envi => "envi",
            Gtmk => "gtmk",
            Ruok => "ruok",
            Stmk => "stmk",
            Srst => "srst",
            Srvr => "srvr",
            Stat => "stat",
            Wchc => "wchc",
            Wchp => "wchp",
            Wchs => "wchs",
            Mntr => "mntr",
            Isro => "isro",
            Hash => "hash",
            TelnetClose => "telnet close",
        }
    }

    /// The first four bytes of a connection that start this command, read as
    /// a big-endian `i32` (the frame length position).
    pub fn code(self) -> i32 {
        match self {
            FourLetterWord::TelnetClose => i32::from_be_bytes([0xff, 0xf4, 0xff, 0xfd]),
            word => {
                let mut bytes = [0u8; 4];
                for (slot, byte) in bytes.iter_mut().zip(word.name().bytes()) {
                    *slot = byte;
                }
                i32::from_be_bytes(bytes)
            }
        }
    }

    pub fn from_name(name: &str) -> Option<FourLetterWord> {
        FourLetterWord::ALL
            .into_iter()
            .find(|word| word.name() == name)
    }

    /// Bytes the client sends after the four-byte command: `stmk` carries an
    /// eight-byte big-endian trace mask, the others nothing.
    pub fn argument_bytes(self) -> usize {
        if self == FourLetterWord::Stmk {
            8
        } else {
            0
        }
    }
}

/// The command whose code is `first_four_bytes`, if any. Any other value is an
/// ordinary frame length.
pub fn command_from_code(first_four_bytes: i32) -> Option<FourLetterWord> {
    FourLetterWord::ALL
        .into_iter()
        .find(|word| word.code() == first_four_bytes)
}

/// `4lw.commands.whitelist`: which commands run. `srvr` always does, because
/// `zkServer.sh status` depends on it; the reference adds `isro` when
/// `readonlymode.enabled` is set (see [`Whitelist::allow`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Whitelist {
    All,
    Only(BTreeSet<FourLetterWord>),
}

impl Default for Whitelist {
    fn default() -> Self {
        Whitelist::reference_default()
    }
}

impl Whitelist {
    /// The reference's default since 3.5.3: only `srvr`.
    pub fn reference_default() -> Whitelist {
        Whitelist::Only(BTreeSet::from([FourLetterWord::Srvr]))
    }

    pub fn all() -> Whitelist {
        Whitelist::All
    }

    /// Parses a comma-separated list as the reference does: items are
    /// trimmed, empty items skipped, `*` anywhere enables everything, names
    /// are case-sensitive, and unknown names are ignored (see
    /// [`Whitelist::unknown_words`] to report them).
    pub fn parse(list: &str) -> Whitelist {
        let mut words = BTreeSet::from([FourLetterWord::Srvr]);
        for item in list.split(',').map(str::trim) {
            if item == "*" {
                return Whitelist::All;
            }
            if let Some(word) = FourLetterWord::from_name(item) {
                words.insert(word);
            }
        }
        Whitelist::Only(words)
    }

    /// The non-empty items of `list` that name no command (stopping at `*`,
    /// as parsing does).
    pub fn unknown_words(list: &str) -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .take_while(|item| *item != "*")
            .filter(|item| !item.is_empty() && FourLetterWord::from_name(item).is_none())
            .map(str::to_string)
            .collect()
    }

    /// Enables one more command.
    pub fn allow(&mut self, word: FourLetterWord) {
        if let Whitelist::Only(words) = self {
            words.insert(word);
        }
    }

    pub fn allows(&self, word: FourLetterWord) -> bool {
        match self {
            Whitelist::All => true,
            Whitelist::Only(words) => words.contains(&word),
        }
    }
}

/// What `srvr`, `stat`, `mntr` and `dirs` show about the whole server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerSnapshot {
    /// `standalone`, `leader`, `follower`, `observer` or `read-only`.
    pub mode: String,
    /// The last zxid applied to the tree.
    pub last_zxid: i64,
    /// Znodes in the tree. The reference counts the root twice (as `""` and
    /// `/`), so a fresh tree reports 5; report the same to match it.
    pub node_count: u64,
    /// Watches of every kind (`zk_watch_count`).
    pub watch_count: u64,
    pub ephemerals_count: u64,
    /// Sum of path lengths and data sizes (`zk_approximate_data_size`).
    pub approximate_data_size: u64,
    pub global_sessions: u64,
    pub local_sessions: u64,
    /// Bytes in the snapshot and log directories (`dirs`).
    pub data_dir_size: u64,
    pub log_dir_size: u64,
    /// `None` where the platform cannot tell; printed as -1 like the reference.
    pub open_file_descriptors: Option<u64>,
    pub max_file_descriptors: Option<u64>,
    pub uptime_ms: u64,
    pub stats: ServerStatsSnapshot,
    /// Leader only: last/min/max proposal size, printed by `stat`/`srvr`.
    pub proposal_sizes: Option<(i64, i64, i64)>,
    /// Role-specific `mntr` lines appended after the standard ones, as
    /// `(key without the zk_ prefix, value)` (e.g. a leader's `synced_followers`).
    pub extra_metrics: Vec<(String, String)>,
}

/// One open client connection, for `cons` and `stat`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionSnapshot {
    pub remote: SocketAddr,
    /// The selector interest set as the reference prints it (1 read, 4 write,
    /// 5 both, 0 none), shown in hex.
    pub interest_ops: u32,
    /// Requests received and not yet answered.
    pub queued: u64,
    /// 0 before the session is established: then `cons` prints only counts.
    pub session_id: i64,
    pub session_timeout_ms: i32,
    pub stats: ConnectionStatsSnapshot,
}

/// Members that expire together in one bucket (sessions by session timeout,
/// connections by the idle-connection timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiryBucket<T> {
    /// When the bucket expires, Unix ms (printed as a UTC date).
    pub expires_at_ms: u64,
    pub members: Vec<T>,
}

/// What `dump` lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpSnapshot {
    pub session_expiry: Vec<ExpiryBucket<i64>>,
    /// Sessions that own ephemerals, with their ephemeral paths.
    pub ephemerals: Vec<(i64, Vec<String>)>,
    /// Open connections (remote address, session id or 0) by expiry bucket.
    pub connection_expiry: Vec<ExpiryBucket<(SocketAddr, i64)>>,
}

/// `wchs`: how many connections watch how many paths, and the total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchSummary {
    pub connections: usize,
    pub paths: usize,
    pub watches: usize,
}

/// What `envi` shows about the machine and this process, read by the server
/// (from `/proc` and the environment) so that rendering does no I/O. `None` is
/// printed as unavailable, as the reference prints what it cannot tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostSnapshot {
    pub host_name: Option<String>,
    /// The kernel release (`os.version`).
    pub os_version: Option<String>,
    pub user_name: Option<String>,
    pub user_home: Option<String>,
    /// The working directory (`user.dir`).
    pub user_dir: Option<String>,
    /// The machine's available and total memory, in kB.
    pub memory_available_kb: Option<u64>,
    pub memory_total_kb: Option<u64>,
    /// This process's resident set, in kB.
    pub resident_kb: Option<u64>,
    pub process_id: Option<u32>,
}

/// The reference's trace mask before any `stmk`.
pub const DEFAULT_TRACE_MASK: i64 = 306;

/// The data the words show, implemented by the server. Every method returns
/// plain values. Methods may read files or take the server's locks: the
/// reactor calls them on its `fourlw` thread, never on an I/O thread, so a
/// slow one delays only other words. Watch listings follow the reference:
/// `wchc`/`wchp`/`wchs` cover data and exists watches only (its child watches
/// live in a separate table it does not dump), while `zk_watch_count` counts
/// every kind.
pub trait FourLetterSource {
    /// The full version string, e.g. `3.8.0-<build>, built on <date>`;
    /// tools parse the leading `x.y.z`.
    fn version(&self) -> String;
    /// False while starting up or shutting down: most words then answer
    /// "This ZooKeeper instance is not currently serving requests".
    fn is_serving(&self) -> bool;
    fn is_read_only(&self) -> bool;
    fn server(&self) -> ServerSnapshot;
    /// `conf` lines, in order, as `key=value`. See the server's config for the
    /// reference's key set.
    fn config(&self) -> Vec<(String, String)>;
    fn connections(&self) -> Vec<ConnectionSnapshot>;
    fn dump(&self) -> DumpSnapshot;
    /// `wchc`: per connection, its session id and watched paths.
    fn watches_by_session(&self) -> Vec<(i64, Vec<String>)>;
    /// `wchp`: per path, the session ids of the connections watching it.
    fn watches_by_path(&self) -> Vec<(String, Vec<i64>)>;
    fn watch_summary(&self) -> WatchSummary;
    /// `crst`.
    fn reset_connection_stats(&self);
    /// `srst`.
    fn reset_server_stats(&self);

    /// What `envi` says about the machine and this process. The default
    /// knows nothing (every value prints as unavailable).
    fn host(&self) -> HostSnapshot {
        HostSnapshot::default()
    }
    /// `envi` lines after `Environment:`. The default describes this process
    /// from [`FourLetterSource::host`].
    fn environment(&self) -> Vec<(String, String)> {
        default_environment(&self.version(), &self.host())
    }
    /// `gtmk`. There is no trace logging to mask; the reference's default is
    /// reported unless the server keeps what `stmk` set.
    fn trace_mask(&self) -> i64 {
        DEFAULT_TRACE_MASK
    }
    fn set_trace_mask(&self, _mask: i64) {}
    /// `hash`: `(zxid, digest)` pairs of the digest log, oldest first.
    fn digest_log(&self) -> Vec<(i64, i64)> {
        Vec::new()
    }
}

/// The reference's answer when the server is not up.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";
