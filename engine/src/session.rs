//! Session liveness: which sessions exist, their negotiated timeouts, and when
//! each expires. Expiry is tracked in tick-sized buckets, as ZooKeeper does, so
//! a touch is O(1) and an expiry scan only looks at the bucket that is due.
//!
//! This is liveness only. Creating and closing a session are txns (prep and
//! apply own that); the tracker learns of them from the pipeline and decides
//! when a silent session must be closed. It reads no clock: every call takes
//! `now_ms`, which is *monotonic* time (the server's `net::clock`), never the
//! wall clock, so a clock step expires nothing. Only the id seed in `new` is
//! wall time, to keep ids unique across restarts.

use crate::types::SessionId;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionInfo {
    pub timeout_ms: i32,
    /// The bucket (a multiple of the tick) this session expires at.
    pub expires_at_ms: i64,
    /// Set once expiry or closeSession has started; a closing session is not
    /// revived by touches.
    pub closing: bool,
}

pub struct SessionTracker {
    tick_ms: i64,
    next_id: i64,
    sessions: HashMap<SessionId, SessionInfo>,
    buckets: BTreeMap<i64, HashSet<SessionId>>,
}

impl SessionTracker {
    /// `server_id` goes in the top byte of every id this server hands out and
    /// the clock fills the rest, so ids stay unique across restarts and servers
    /// (the reference's scheme: `(ms << 24 >>> 8) | id << 56`).
    pub fn new(tick_ms: u32, server_id: u8, now_ms: i64) -> SessionTracker {
        assert!(tick_ms > 0, "tick must be positive");
        let time_part = ((now_ms << 24) as u64 >> 8) as i64;
        SessionTracker {
            tick_ms: i64::from(tick_ms),
            next_id: time_part | (i64::from(server_id) << 56),
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    /// A fresh id, never one the tracker already holds: after a restart the
    /// recovered sessions are tracked, and a wall clock set back across the
    /// restart would otherwise hand a new client a live session's id (and
    /// with it that session's password and ephemerals).
    pub fn next_session_id(&mut self) -> SessionId {
        loop {
            let id = SessionId(self.next_id);
            self.next_id = self.next_id.wrapping_add(1);
            if id.0 != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Starts (or restarts, after recovery) tracking a session.
    pub fn add(&mut self, session: SessionId, timeout_ms: i32, now_ms: i64) {
        self.remove(session);
        let expires_at_ms = self.bucket_for(now_ms, timeout_ms);
        self.sessions.insert(
            session,
            SessionInfo {
                timeout_ms,
                expires_at_ms,
                closing: false,
            },
        );
        self.buckets
            .entry(expires_at_ms)
            .or_default()
            .insert(session);
    }

    /// Records activity. Returns false if the session is unknown or closing:
    /// the caller answers SessionExpired.
    pub fn touch(&mut self, session: SessionId, now_ms: i64) -> bool {
        let Some(info) = self.sessions.get(&session).copied() else {
            return false;
        };
        if info.closing {
            return false;
        }
        let expires_at_ms = self.bucket_for(now_ms, info.timeout_ms);
        if expires_at_ms <= info.expires_at_ms {
            return true;
        }
        self.unbucket(session, info.expires_at_ms);
        self.buckets
            .entry(expires_at_ms)
            .or_default()
            .insert(session);
        if let Some(info) = self.sessions.get_mut(&session) {
            info.expires_at_ms = expires_at_ms;
        }
        true
    }

    pub fn set_closing(&mut self, session: SessionId) {
        if let Some(info) = self.sessions.get_mut(&session) {
            info.closing = true;
        }
    }

    pub fn remove(&mut self, session: SessionId) {
        if let Some(info) = self.sessions.remove(&session) {
            self.unbucket(session, info.expires_at_ms);
        }
    }

    /// Sessions whose deadline has passed, marked closing; each must now be
    /// closed through a closeSession txn.
    pub fn expired(&mut self, now_ms: i64) -> Vec<SessionId> {
        let mut expired = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            expired.extend(entry.remove());
        }
        for session in &expired {
            if let Some(info) = self.sessions.get_mut(session) {
                info.closing = true;
            }
        }
        expired.sort();
        expired
    }

    /// Gives every live session a whole timeout from `now_ms`: what a new
    /// leader does, since until now it heard only its own clients' touches
    /// (the reference re-adds every session when a leader takes over).
    pub fn renew_all(&mut self, now_ms: i64) {
        let live: Vec<(SessionId, i32)> = self
            .sessions
            .iter()
            .filter(|(_, info)| !info.closing)
            .map(|(&session, info)| (session, info.timeout_ms))
            .collect();
        for (session, timeout_ms) in live {
            self.add(session, timeout_ms, now_ms);
        }
    }

    /// Every tracked session.
    pub fn ids(&self) -> Vec<SessionId> {
        self.sessions.keys().copied().collect()
    }

    pub fn get(&self, session: SessionId) -> Option<SessionInfo> {
        self.sessions.get(&session).copied()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Sessions grouped by expiry time, for the `dump` four-letter word.
    pub fn by_expiry(&self) -> Vec<(i64, Vec<SessionId>)> {
        self.buckets
            .iter()
            .map(|(at, sessions)| {
                let mut sessions: Vec<SessionId> = sessions.iter().copied().collect();
                sessions.sort();
                (*at, sessions)
            })
            .collect()
    }

    /// Rounds up to the next tick boundary so sessions share buckets.
    fn bucket_for(&self, now_ms: i64, timeout_ms: i32) -> i64 {
        let deadline = now_ms.saturating_add(i64::from(timeout_ms));
        (deadline / self.tick_ms + 1).saturating_mul(self.tick_ms)
    }

    fn unbucket(&mut self, session: SessionId, at_ms: i64) {
        if let Some(bucket) = self.buckets.get_mut(&at_ms) {
            bucket.remove(&session);
            if bucket.is_empty() {
                self.buckets.remove(&at_ms);
            }
        }
    }
}

/// The secret session passwords derive from. Each data directory has its
/// own (the server creates it on first start), so knowing a session id —
/// shown by `cons`, `dump` and every ephemeral's Stat — is not enough to take
/// the session over, as it would be with a secret compiled into the binary.
#[derive(Clone)]
pub struct SessionSecret([u8; SessionSecret::LEN]);

impl SessionSecret {
    pub const LEN: usize = 32;

    pub fn new(bytes: [u8; SessionSecret::LEN]) -> SessionSecret {
        SessionSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; SessionSecret::LEN] {
        &self.0
    }

    /// The password handed to a new session. Derived from the id and the
    /// secret, so this server after a restart can check it without storing
    /// it.
    pub fn password(&self, session: SessionId) -> [u8; 16] {
        use sha1::{Digest, Sha1};
        let mut hasher = Sha1::new();
        hasher.update(self.0);
        hasher.update(session.0.to_be_bytes());
        let digest = hasher.finalize();
        let mut password = [0u8; 16];
        password.copy_from_slice(&digest[..16]);
        password
    }
}

/// The password Apache ZooKeeper hands a session: 16 bytes of
/// `java.util.Random` seeded with the session id xor a constant built into
/// it. Anyone who knows a session id can compute it, so it is accepted only
/// for sessions brought over from an Apache data directory by `zk-migrate`
/// (listed in `<dataDir>/migrated_sessions`), whose clients hold such
/// passwords; every session's next connect hands it one of ours.
pub fn reference_password(session: SessionId) -> [u8; 16] {
    // java.util.Random: a 48-bit LCG; nextBytes takes nextInt()'s bytes
    // low first, four at a time.
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    const REFERENCE_SECRET: u64 = 0xB341_5C00;
    let mut seed = ((session.0 as u64) ^ REFERENCE_SECRET ^ MULTIPLIER) & MASK;
    let mut password = [0u8; 16];
    for chunk in password.chunks_mut(4) {
        seed = seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB) & MASK;
        let next_int = (seed >> 16) as u32;
        chunk.copy_from_slice(&next_int.to_le_bytes()[..chunk.len()]);
    }
    password
}

/// The file in a data directory that lists the sessions `zk-migrate` brought
/// over from Apache ZooKeeper: a comment line, then one session id in hex
/// (`0x…`) per line.
pub const MIGRATED_SESSIONS_FILE: &str = "migrated_sessions";

pub fn encode_migrated_sessions(sessions: &[SessionId]) -> String {
    let mut text = String::from(
        "# sessions brought over from Apache ZooKeeper by zk-migrate: their clients' Apache passwords are accepted\n",
    );
    for session in sessions {
        text.push_str(&format!("{session}\n"));
    }
    text
}

/// The sessions a `MIGRATED_SESSIONS_FILE` lists; an error names the line.
pub fn decode_migrated_sessions(text: &str) -> Result<Vec<SessionId>, String> {
    let mut sessions = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let hex = line.strip_prefix("0x").unwrap_or(line);
        let id = u64::from_str_radix(hex, 16)
            .map_err(|_| format!("line {}: not a session id: {line:?}", index + 1))?;
        sessions.push(SessionId(id as i64));
    }
    Ok(sessions)
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_timeout_rounded_up_to_tick() {
        let mut tracker = SessionTracker::new(100, 1, 1_000);
        let session = tracker.next_session_id();
        tracker.add(session, 400, 1_000);
        assert!(tracker.expired(1_400).is_empty());
        assert_eq!(tracker.expired(1_500), vec![session]);
        assert!(
            !tracker.touch(session, 1_500),
            "closing sessions are not revived"
        );
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut tracker = SessionTracker::new(100, 1, 0);
        let session = tracker.next_session_id();
        tracker.add(session, 400, 0);
        assert!(tracker.touch(session, 300));
        assert!(tracker.expired(500).is_empty());
        assert_eq!(tracker.expired(800), vec![session]);
    }

    #[test]
    fn ids_carry_server_id_and_are_distinct() {
        let mut tracker = SessionTracker::new(2000, 7, 1_700_000_000_000);
        let a = tracker.next_session_id();
        let b = tracker.next_session_id();
        assert_ne!(a, b);
        assert_eq!((a.0 as u64) >> 56, 7);
    }

    #[test]
    fn password_depends_on_id_and_secret() {
        let secret = SessionSecret::new([1; 32]);
        assert_eq!(secret.password(SessionId(5)), secret.password(SessionId(5)));
        assert_ne!(secret.password(SessionId(5)), secret.password(SessionId(6)));
        let other = SessionSecret::new([2; 32]);
        assert_ne!(secret.password(SessionId(5)), other.password(SessionId(5)));
    }

    #[test]
    fn reference_password_is_what_apache_zookeeper_hands_out() {
        // Session 0x100004e04c70001 as Apache ZooKeeper 3.8 answered it.
        let password = reference_password(SessionId(0x0100_004e_04c7_0001));
        let expected: [u8; 16] = [
            0x7e, 0x49, 0xfb, 0x40, 0xbc, 0xd4, 0xe6, 0xd5, 0xb6, 0x97, 0x9c, 0x06, 0x99, 0x4d,
            0x7d, 0x22,
        ];
        assert_eq!(password, expected);
    }

    #[test]
    fn migrated_sessions_round_trip_and_bad_lines_are_named() {
        let sessions = [SessionId(0x0100_004e_04c7_0001), SessionId(-2)];
        let text = encode_migrated_sessions(&sessions);
        assert_eq!(decode_migrated_sessions(&text), Ok(sessions.to_vec()));
        assert_eq!(
            decode_migrated_sessions("# c\n0x1\nzz\n"),
            Err("line 3: not a session id: \"zz\"".to_string())
        );
    }

    #[test]
    fn new_ids_skip_recovered_sessions() {
        // A clock set back across a restart seeds the same ids again.
        let mut before = SessionTracker::new(2000, 1, 1_700_000_000_000);
        let first = before.next_session_id();
        let second = before.next_session_id();
        let mut after = SessionTracker::new(2000, 1, 1_700_000_000_000);
        after.add(first, 10_000, 0);
        after.add(second, 10_000, 0);
        let fresh = after.next_session_id();
        assert_ne!(fresh, first);
        assert_ne!(fresh, second);
    }
}
