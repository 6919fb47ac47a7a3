//! The peer wire format: how [`Message`]s, the SNAP state attached to them and
//! the connection handshake travel between servers. Pure: it turns values into
//! bytes and bytes into values, and does no I/O (the transport, behind the
//! `transport` feature, moves the bytes). Clients never see this format, so it
//! is ours rather than Apache's jute quorum packets.
//!
//! Invariant: decoding never panics and never allocates more than the input
//! could hold. Every count and length is checked against the bytes that remain
//! and every frame against a configured maximum *before* anything is
//! allocated; anything malformed is a [`WireError`], which closes the one
//! connection it came from.
//!
//! # Handshake
//!
//! Each side of a new connection first sends one fixed-size record, unframed,
//! so that a later version may change the framing and still be recognised:
//!
//! ```text
//! offset size
//!      0    4  magic "zkqp"
//!      4    1  protocol version (2)
//!      5    1  channel: 1 = election, 2 = quorum
//!      6    8  sender's ServerId (myid), u64 LE
//!     14    8  ensemble fingerprint, u64 LE (see `fingerprint`)
//!     22    4  crc32c of bytes 0..22, u32 LE
//! ```
//!
//! A reader takes the first 6 bytes alone and stops at a wrong magic or
//! version, so a peer speaking another version is named as such instead of
//! failing later on a checksum.
//!
//! # Two channels
//!
//! Like Apache (`server.N=host:quorumPort:electionPort`) a pair of servers
//! keeps two connections: election notifications on the election port, every
//! other message on the quorum port. One connection would do for correctness
//! (Zab tolerates loss and reordering), but not for liveness: a NEWLEADER with
//! a large DIFF or SNAP, or a backlog of proposals, would sit in front of the
//! notifications that keep an election moving, and a full quorum queue would
//! drop them. So each channel has its own socket, queue and frame limit; the
//! election one is small ([`ELECTION_MAX_FRAME_BYTES`]) because a notification
//! is a few dozen bytes.
//!
//! # Frames
//!
//! After the handshake, each direction is a sequence of frames:
//!
//! ```text
//! offset size
//!      0    4  payload length n, u32 LE (at most the channel's limit)
//!      4    4  crc32c of bytes 0..4 and the payload, u32 LE
//!      8    n  payload
//! ```
//!
//! The checksum covers the length too, so a flipped length bit is caught
//! (by the limit, or by the checksum once the bytes arrive) rather than read
//! as a shorter frame. A payload is a tag byte and the message's fields in a
//! fixed order, all integers little-endian, `Zxid` and `ServerId` as u64,
//! `Epoch` as u32:
//!
//! ```text
//! tag  packet        fields after the tag
//! 0x00 keepalive     (none; sent by an idle transport, never delivered)
//! 0x01 NOTIFICATION  vote.epoch u32, vote.zxid, vote.leader, round u64, state u8
//! 0x02 FOLLOWERINFO  session u64, accepted_epoch u32
//! 0x03 LEADERINFO    session, epoch u32
//! 0x04 ACKEPOCH      session, current_epoch u32, last_zxid, floor, epoch_ends: zxids
//! 0x05 NEWLEADER     session, epoch u32, sync, txns, snapshot
//! 0x06 ACK NEWLEADER session, zxid
//! 0x07 UPTODATE      session, committed
//! 0x08 PROPOSAL      session, prev, txn
//! 0x09 ACK           session, zxid
//! 0x0a COMMIT        session, zxid
//! 0x0b INFORM        session, prev, txns, committed
//! 0x0c PING          session, last_zxid, committed
//! ```
//!
//! `state` is 0 LOOKING, 1 FOLLOWING, 2 LEADING, 3 OBSERVING. `sync` is a byte,
//! 0 DIFF, 1 TRUNC followed by `after`, 2 SNAP followed by `zxid`. A list is a
//! u32 count and its items; a txn is its zxid, a u32 length and its bytes.
//! `snapshot` is a byte, 0 for none or 1 followed by a u32 length and what
//! the leader's driver attaches to a SNAP (the server attaches the trailer of
//! the state it streamed ahead as `App` messages); it is present exactly when
//! `sync` is SNAP (see [`crate::Action::Send`]), and a payload must end where
//! its last field does.

use std::collections::BTreeSet;

use crate::{Epoch, Membership, Message, PeerState, ServerId, SyncMode, Txn, Vote, Zxid};

/// The handshake's first bytes.
pub const MAGIC: [u8; 4] = *b"zkqp";
/// The protocol version this build speaks, and the only one it accepts.
/// 2: NEWLEADER acks carry their epoch, and MEMBERSHIP exists.
pub const VERSION: u8 = 2;
/// Bytes in a handshake record.
pub const HANDSHAKE_BYTES: usize = 26;
/// Bytes of a handshake a reader takes before the rest: magic and version.
pub const HANDSHAKE_PREFIX_BYTES: usize = 6;
/// Bytes in a frame header (length and checksum).
pub const FRAME_HEADER_BYTES: usize = 8;
/// Frame limit on the election channel: a notification is 38 bytes.
pub const ELECTION_MAX_FRAME_BYTES: u32 = 4096;

const TAG_KEEPALIVE: u8 = 0x00;
const TAG_NOTIFICATION: u8 = 0x01;
const TAG_FOLLOWER_INFO: u8 = 0x02;
const TAG_LEADER_INFO: u8 = 0x03;
const TAG_ACK_EPOCH: u8 = 0x04;
const TAG_NEW_LEADER: u8 = 0x05;
const TAG_ACK_NEW_LEADER: u8 = 0x06;
const TAG_UP_TO_DATE: u8 = 0x07;
const TAG_PROPOSAL: u8 = 0x08;
const TAG_ACK: u8 = 0x09;
const TAG_COMMIT: u8 = 0x0a;
const TAG_INFORM: u8 = 0x0b;
const TAG_PING: u8 = 0x0c;
const TAG_APP: u8 = 0x0d;
// Sent only under linearizable reads; a peer of a version before them
// refuses the tags, so every member must know them before those are on.
const TAG_READ_PING: u8 = 0x0e;
const TAG_READ_ACK: u8 = 0x0f;
const TAG_MEMBERSHIP: u8 = 0x10;

/// Smallest encoding of a list item, used to bound a count before allocating.
const ZXID_BYTES: usize = 8;
const TXN_MIN_BYTES: usize = 8 + 4;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes is over the limit of {max}")]
    FrameTooLarge { len: u64, max: u32 },
    #[error("frame checksum {actual:#010x} does not match {expected:#010x}")]
    Checksum { expected: u32, actual: u32 },
    #[error("truncated {what}: needs {needed} bytes, {remaining} left")]
    Truncated {
        what: &'static str,
        needed: u64,
        remaining: usize,
    },
    #[error("unknown packet tag {0:#04x}")]
    UnknownTag(u8),
    #[error("invalid {what} {value}")]
    Invalid { what: &'static str, value: u64 },
    #[error("{0} bytes after the end of the packet")]
    Trailing(usize),
    #[error("a snapshot is attached to a message that is not a SNAP, or a SNAP lacks one")]
    Snapshot,
    #[error("not a quorum peer handshake (magic {0:02x?})")]
    Magic([u8; 4]),
    #[error("peer speaks protocol version {theirs}; this server speaks {ours}")]
    Version { theirs: u8, ours: u8 },
    #[error("handshake checksum {actual:#010x} does not match {expected:#010x}")]
    HandshakeChecksum { expected: u32, actual: u32 },
}

/// Which of a pair's two connections a handshake opens (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// The election port: notifications only.
    Election,
    /// The quorum port: discovery, synchronization and broadcast.
    Quorum,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Election, Channel::Quorum];

    /// The channel a message travels on.
    pub fn of(message: &Message) -> Channel {
        match message {
            Message::Notification { .. } | Message::Membership { .. } => Channel::Election,
            _ => Channel::Quorum,
        }
    }

    fn byte(self) -> u8 {
        match self {
            Channel::Election => 1,
            Channel::Quorum => 2,
        }
    }
}

/// The record each side sends first on a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub version: u8,
    pub channel: Channel,
    /// The sender's `myid`.
    pub server: ServerId,
    /// The sender's [`fingerprint`] of the ensemble.
    pub fingerprint: u64,
}

impl Handshake {
    /// This build's handshake.
    pub fn new(channel: Channel, server: ServerId, fingerprint: u64) -> Handshake {
        Handshake {
            version: VERSION,
            channel,
            server,
            fingerprint,
        }
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_BYTES] {
        let mut out = [0u8; HANDSHAKE_BYTES];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = self.version;
        out[5] = self.channel.byte();
        out[6..14].copy_from_slice(&self.server.0.to_le_bytes());
        out[14..22].copy_from_slice(&self.fingerprint.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..22]);
        out[22..26].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Check the magic and version, the first [`HANDSHAKE_PREFIX_BYTES`].
    pub fn check_prefix(prefix: &[u8]) -> Result<(), WireError> {
        let mut reader = Reader::new(prefix);
        let magic: [u8; 4] = reader.array("handshake magic")?;
        if magic != MAGIC {
            return Err(WireError::Magic(magic));
        }
        let version = reader.u8("handshake version")?;
        if version != VERSION {
            return Err(WireError::Version {
                theirs: version,
                ours: VERSION,
            });
        }
        Ok(())
    }

    /// Decode a whole record. A wrong version is an error: this build speaks
    /// one version and refuses others.
    pub fn decode(bytes: &[u8]) -> Result<Handshake, WireError> {
        Handshake::check_prefix(bytes)?;
        let mut reader = Reader::new(bytes);
        let head: [u8; 22] = reader.array("handshake")?;
        let actual = reader.u32("handshake checksum")?;
        reader.finish()?;
        let expected = crc32c::crc32c(&head);
        if actual != expected {
            return Err(WireError::HandshakeChecksum { expected, actual });
        }
        let channel = match head[5] {
            1 => Channel::Election,
            2 => Channel::Quorum,
            other => {
                return Err(WireError::Invalid {
                    what: "handshake channel",
                    value: u64::from(other),
                })
            }
        };
        let mut fields = Reader::new(&head[6..]);
        Ok(Handshake {
            version: head[4],
            channel,
            server: ServerId(fields.u64("handshake server id")?),
            fingerprint: fields.u64("handshake fingerprint")?,
        })
    }
}

/// A fingerprint of the ensemble's membership: FNV-1a over the sorted voter
/// ids, then the sorted observer ids. Peers whose zoo.cfg lists different
/// servers or roles compute different fingerprints and refuse each other,
/// instead of forming quorums that do not intersect.
pub fn fingerprint(voters: &BTreeSet<ServerId>, observers: &BTreeSet<ServerId>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (role, ids) in [(b'v', voters), (b'o', observers)] {
        for id in ids {
            feed(&[role]);
            feed(&id.0.to_le_bytes());
        }
    }
    hash
}

/// A message as it travels: with what its leader's driver attached to a SNAP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub message: Message,
    /// The driver's SNAP attachment (the server's: the trailer of the state
    /// it streamed ahead), opaque here; present exactly when `message` is a
    /// NEWLEADER with `SyncMode::Snap`.
    pub snapshot: Option<Vec<u8>>,
}

impl From<Message> for Envelope {
    fn from(message: Message) -> Envelope {
        Envelope {
            message,
            snapshot: None,
        }
    }
}

/// What one frame carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// Sent by an idle transport so the other side can tell a quiet
    /// connection from a dead one; never delivered to the peer.
    Keepalive,
    Envelope(Envelope),
}

fn is_snap(message: &Message) -> bool {
    matches!(
        message,
        Message::NewLeader {
            sync: SyncMode::Snap { .. },
            ..
        }
    )
}

/// Encode a packet as one frame, refusing one whose payload is over
/// `max_frame_bytes` (or inconsistent: a snapshot on anything but a SNAP).
pub fn encode_frame(packet: &Packet, max_frame_bytes: u32) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; FRAME_HEADER_BYTES];
    match packet {
        Packet::Keepalive => out.push(TAG_KEEPALIVE),
        Packet::Envelope(envelope) => {
            if envelope.snapshot.is_some() != is_snap(&envelope.message) {
                return Err(WireError::Snapshot);
            }
            encode_message(&mut out, &envelope.message, envelope.snapshot.as_deref())?;
        }
    }
    let len = out.len() - FRAME_HEADER_BYTES;
    let len32 = u32::try_from(len)
        .ok()
        .filter(|&n| n <= max_frame_bytes)
        .ok_or(WireError::FrameTooLarge {
            len: len as u64,
            max: max_frame_bytes,
        })?;
    out[0..4].copy_from_slice(&len32.to_le_bytes());
    let crc = frame_crc(&out[0..4], &out[FRAME_HEADER_BYTES..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn frame_crc(len: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), payload)
}

/// A checked frame header: the payload length (within the limit) and its
/// expected checksum. Read the header, check it, then read `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    crc: u32,
}

impl FrameHeader {
    pub fn parse(
        header: &[u8; FRAME_HEADER_BYTES],
        max_frame_bytes: u32,
    ) -> Result<FrameHeader, WireError> {
        let [a, b, c, d, e, f, g, h] = *header;
        let len = u32::from_le_bytes([a, b, c, d]);
        if len > max_frame_bytes {
            return Err(WireError::FrameTooLarge {
                len: u64::from(len),
                max: max_frame_bytes,
            });
        }
        Ok(FrameHeader {
            len,
            crc: u32::from_le_bytes([e, f, g, h]),
        })
    }

    /// Verify the payload against the header and decode it.
    pub fn decode(&self, payload: &[u8]) -> Result<Packet, WireError> {
        if payload.len() as u64 != u64::from(self.len) {
            return Err(WireError::Truncated {
                what: "frame payload",
                needed: u64::from(self.len),
                remaining: payload.len(),
            });
        }
        let actual = frame_crc(&self.len.to_le_bytes(), payload);
        if actual != self.crc {
            return Err(WireError::Checksum {
                expected: self.crc,
                actual,
            });
        }
        decode_payload(payload)
    }
}

/// Decode the first frame of `bytes`: the packet and the bytes it used.
pub fn decode_frame(bytes: &[u8], max_frame_bytes: u32) -> Result<(Packet, usize), WireError> {
    let mut reader = Reader::new(bytes);
    let header: [u8; FRAME_HEADER_BYTES] = reader.array("frame header")?;
    let header = FrameHeader::parse(&header, max_frame_bytes)?;
    let payload = reader.bytes("frame payload", u64::from(header.len))?;
    let packet = header.decode(payload)?;
    Ok((packet, FRAME_HEADER_BYTES + payload.len()))
}

// ---- encoding ---------------------------------------------------------------

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// A u32 count or length; anything longer cannot be framed anyway.
fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), WireError> {
    let len32 = u32::try_from(len).map_err(|_| WireError::FrameTooLarge {
        len: len as u64,
        max: u32::MAX,
    })?;
    put_u32(out, len32);
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), WireError> {
    put_len(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_txns(out: &mut Vec<u8>, txns: &[Txn]) -> Result<(), WireError> {
    put_len(out, txns.len())?;
    for txn in txns {
        put_u64(out, txn.zxid.0);
        put_bytes(out, &txn.data)?;
    }
    Ok(())
}

fn state_byte(state: PeerState) -> u8 {
    match state {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

fn encode_message(
    out: &mut Vec<u8>,
    message: &Message,
    snapshot: Option<&[u8]>,
) -> Result<(), WireError> {
    match message {
        Message::Notification { vote, round, state } => {
            out.push(TAG_NOTIFICATION);
            put_u32(out, vote.epoch.0);
            put_u64(out, vote.zxid.0);
            put_u64(out, vote.leader.0);
            put_u64(out, *round);
            out.push(state_byte(*state));
        }
        Message::Membership {
            version,
            membership,
        } => {
            out.push(TAG_MEMBERSHIP);
            put_u64(out, version.0);
            for ids in [&membership.voters, &membership.observers] {
                put_len(out, ids.len())?;
                for id in ids {
                    put_u64(out, id.0);
                }
            }
        }
        Message::FollowerInfo {
            session,
            accepted_epoch,
        } => {
            out.push(TAG_FOLLOWER_INFO);
            put_u64(out, *session);
            put_u32(out, accepted_epoch.0);
        }
        Message::LeaderInfo { session, epoch } => {
            out.push(TAG_LEADER_INFO);
            put_u64(out, *session);
            put_u32(out, epoch.0);
        }
        Message::AckEpoch {
            session,
            current_epoch,
            last_zxid,
            floor,
            epoch_ends,
        } => {
            out.push(TAG_ACK_EPOCH);
            put_u64(out, *session);
            put_u32(out, current_epoch.0);
            put_u64(out, last_zxid.0);
            put_u64(out, floor.0);
            put_len(out, epoch_ends.len())?;
            for zxid in epoch_ends {
                put_u64(out, zxid.0);
            }
        }
        Message::NewLeader {
            session,
            epoch,
            sync,
            txns,
        } => {
            out.push(TAG_NEW_LEADER);
            put_u64(out, *session);
            put_u32(out, epoch.0);
            match sync {
                SyncMode::Diff => out.push(0),
                SyncMode::Trunc { after } => {
                    out.push(1);
                    put_u64(out, after.0);
                }
                SyncMode::Snap { zxid } => {
                    out.push(2);
                    put_u64(out, zxid.0);
                }
            }
            put_txns(out, txns)?;
            match snapshot {
                None => out.push(0),
                Some(state) => {
                    out.push(1);
                    put_bytes(out, state)?;
                }
            }
        }
        Message::AckNewLeader {
            session,
            epoch,
            zxid,
        } => {
            out.push(TAG_ACK_NEW_LEADER);
            put_u64(out, *session);
            put_u32(out, epoch.0);
            put_u64(out, zxid.0);
        }
        Message::UpToDate { session, committed } => {
            out.push(TAG_UP_TO_DATE);
            put_u64(out, *session);
            put_u64(out, committed.0);
        }
        Message::Proposal { session, prev, txn } => {
            out.push(TAG_PROPOSAL);
            put_u64(out, *session);
            put_u64(out, prev.0);
            put_u64(out, txn.zxid.0);
            put_bytes(out, &txn.data)?;
        }
        Message::Ack { session, zxid } => {
            out.push(TAG_ACK);
            put_u64(out, *session);
            put_u64(out, zxid.0);
        }
        Message::Commit { session, zxid } => {
            out.push(TAG_COMMIT);
            put_u64(out, *session);
            put_u64(out, zxid.0);
        }
        Message::Inform {
            session,
            prev,
            txns,
            committed,
        } => {
            out.push(TAG_INFORM);
            put_u64(out, *session);
            put_u64(out, prev.0);
            put_txns(out, txns)?;
            put_u64(out, committed.0);
        }
        Message::Ping {
            session,
            last_zxid,
            committed,
        } => {
            out.push(TAG_PING);
            put_u64(out, *session);
            put_u64(out, last_zxid.0);
            put_u64(out, committed.0);
        }
        Message::ReadPing { session, round } => {
            out.push(TAG_READ_PING);
            put_u64(out, *session);
            put_u64(out, *round);
        }
        Message::ReadAck { session, round } => {
            out.push(TAG_READ_ACK);
            put_u64(out, *session);
            put_u64(out, *round);
        }
        Message::App { payload } => {
            out.push(TAG_APP);
            put_bytes(out, payload)?;
        }
    }
    Ok(())
}

// ---- decoding ---------------------------------------------------------------

/// A cursor over untrusted bytes: every read is checked against what is left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn bytes(&mut self, what: &'static str, len: u64) -> Result<&'a [u8], WireError> {
        let truncated = WireError::Truncated {
            what,
            needed: len,
            remaining: self.bytes.len(),
        };
        let n = usize::try_from(len).map_err(|_| truncated.clone())?;
        if n > self.bytes.len() {
            return Err(truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let head = self.bytes(what, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn zxid(&mut self, what: &'static str) -> Result<Zxid, WireError> {
        Ok(Zxid(self.u64(what)?))
    }

    fn epoch(&mut self, what: &'static str) -> Result<Epoch, WireError> {
        Ok(Epoch(self.u32(what)?))
    }

    /// A list count whose items take at least `item_bytes` each: refused if
    /// the bytes left could not hold that many, so a forged count never sizes
    /// an allocation.
    fn count(&mut self, what: &'static str, item_bytes: usize) -> Result<usize, WireError> {
        let count = self.u32(what)?;
        let needed = u64::from(count) * item_bytes as u64;
        if needed > self.bytes.len() as u64 {
            return Err(WireError::Truncated {
                what,
                needed,
                remaining: self.bytes.len(),
            });
        }
        // Fits: at most the remaining length, which is a usize.
        Ok(count as usize)
    }

    fn blob(&mut self, what: &'static str) -> Result<Vec<u8>, WireError> {
        let len = self.u32(what)?;
        Ok(self.bytes(what, u64::from(len))?.to_vec())
    }

    fn txn(&mut self) -> Result<Txn, WireError> {
        Ok(Txn {
            zxid: self.zxid("txn zxid")?,
            data: self.blob("txn data")?,
        })
    }

    fn txns(&mut self) -> Result<Vec<Txn>, WireError> {
        let count = self.count("txn count", TXN_MIN_BYTES)?;
        let mut txns = Vec::with_capacity(count);
        for _ in 0..count {
            txns.push(self.txn()?);
        }
        Ok(txns)
    }

    fn finish(&self) -> Result<(), WireError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

fn decode_payload(payload: &[u8]) -> Result<Packet, WireError> {
    let mut r = Reader::new(payload);
    let tag = r.u8("packet tag")?;
    let mut snapshot = None;
    let message = match tag {
        TAG_KEEPALIVE => {
            r.finish()?;
            return Ok(Packet::Keepalive);
        }
        TAG_NOTIFICATION => Message::Notification {
            vote: Vote {
                epoch: r.epoch("vote epoch")?,
                zxid: r.zxid("vote zxid")?,
                leader: ServerId(r.u64("vote leader")?),
            },
            round: r.u64("election round")?,
            state: match r.u8("peer state")? {
                0 => PeerState::Looking,
                1 => PeerState::Following,
                2 => PeerState::Leading,
                3 => PeerState::Observing,
                other => {
                    return Err(WireError::Invalid {
                        what: "peer state",
                        value: u64::from(other),
                    })
                }
            },
        },
        TAG_MEMBERSHIP => {
            let version = r.zxid("membership version")?;
            let mut sets = [BTreeSet::new(), BTreeSet::new()];
            for set in &mut sets {
                let count = r.count("member count", 8)?;
                for _ in 0..count {
                    set.insert(ServerId(r.u64("member id")?));
                }
            }
            let [voters, observers] = sets;
            Message::Membership {
                version,
                membership: Membership { voters, observers },
            }
        }
        TAG_FOLLOWER_INFO => Message::FollowerInfo {
            session: r.u64("session")?,
            accepted_epoch: r.epoch("accepted epoch")?,
        },
        TAG_LEADER_INFO => Message::LeaderInfo {
            session: r.u64("session")?,
            epoch: r.epoch("epoch")?,
        },
        TAG_ACK_EPOCH => {
            let session = r.u64("session")?;
            let current_epoch = r.epoch("current epoch")?;
            let last_zxid = r.zxid("last zxid")?;
            let floor = r.zxid("floor")?;
            let count = r.count("epoch end count", ZXID_BYTES)?;
            let mut epoch_ends = Vec::with_capacity(count);
            for _ in 0..count {
                epoch_ends.push(r.zxid("epoch end")?);
            }
            Message::AckEpoch {
                session,
                current_epoch,
                last_zxid,
                floor,
                epoch_ends,
            }
        }
        TAG_NEW_LEADER => {
            let session = r.u64("session")?;
            let epoch = r.epoch("epoch")?;
            let sync = match r.u8("sync mode")? {
                0 => SyncMode::Diff,
                1 => SyncMode::Trunc {
                    after: r.zxid("truncation zxid")?,
                },
                2 => SyncMode::Snap {
                    zxid: r.zxid("snapshot zxid")?,
                },
                other => {
                    return Err(WireError::Invalid {
                        what: "sync mode",
                        value: u64::from(other),
                    })
                }
            };
            let txns = r.txns()?;
            snapshot = match r.u8("snapshot flag")? {
                0 => None,
                1 => Some(r.blob("snapshot")?),
                other => {
                    return Err(WireError::Invalid {
                        what: "snapshot flag",
                        value: u64::from(other),
                    })
                }
            };
            Message::NewLeader {
                session,
                epoch,
                sync,
                txns,
            }
        }
        TAG_ACK_NEW_LEADER => Message::AckNewLeader {
            session: r.u64("session")?,
            epoch: r.epoch("epoch")?,
            zxid: r.zxid("zxid")?,
        },
        TAG_UP_TO_DATE => Message::UpToDate {
            session: r.u64("session")?,
            committed: r.zxid("committed zxid")?,
        },
        TAG_PROPOSAL => Message::Proposal {
            session: r.u64("session")?,
            prev: r.zxid("previous zxid")?,
            txn: r.txn()?,
        },
        TAG_ACK => Message::Ack {
            session: r.u64("session")?,
            zxid: r.zxid("zxid")?,
        },
        TAG_COMMIT => Message::Commit {
            session: r.u64("session")?,
            zxid: r.zxid("zxid")?,
        },
        TAG_INFORM => Message::Inform {
            session: r.u64("session")?,
            prev: r.zxid("previous zxid")?,
            txns: r.txns()?,
            committed: r.zxid("committed zxid")?,
        },
        TAG_PING => Message::Ping {
            session: r.u64("session")?,
            last_zxid: r.zxid("last zxid")?,
            committed: r.zxid("committed zxid")?,
        },
        TAG_READ_PING => Message::ReadPing {
            session: r.u64("session")?,
            round: r.u64("read round")?,
        },
        TAG_READ_ACK => Message::ReadAck {
            session: r.u64("session")?,
            round: r.u64("read round")?,
        },
        TAG_APP => Message::App {
            payload: r.blob("app payload")?,
        },
        other => return Err(WireError::UnknownTag(other)),
    };
    r.finish()?;
    if snapshot.is_some() != is_snap(&message) {
        return Err(WireError::Snapshot);
    }
    Ok(Packet::Envelope(Envelope { message, snapshot }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 1 << 20;

    #[track_caller]
    fn check(packet: Packet) {
        let frame = encode_frame(&packet, MAX).unwrap();
        assert_eq!(decode_frame(&frame, MAX), Ok((packet, frame.len())));
    }

    fn txn(counter: u32, data: &[u8]) -> Txn {
        Txn {
            zxid: Zxid::new(Epoch(3), counter),
            data: data.to_vec(),
        }
    }

    #[test]
    fn every_message_kind_round_trips() {
        let z = Zxid::new(Epoch(2), 7);
        let messages = vec![
            Message::Notification {
                vote: Vote {
                    epoch: Epoch(2),
                    zxid: z,
                    leader: ServerId(3),
                },
                round: 9,
                state: PeerState::Observing,
            },
            Message::Membership {
                version: z,
                membership: crate::Membership {
                    voters: [ServerId(1), ServerId(4)].into(),
                    observers: [ServerId(9)].into(),
                },
            },
            Message::FollowerInfo {
                session: 1,
                accepted_epoch: Epoch(2),
            },
            Message::LeaderInfo {
                session: 1,
                epoch: Epoch(3),
            },
            Message::AckEpoch {
                session: 1,
                current_epoch: Epoch(2),
                last_zxid: z,
                floor: Zxid(5),
                epoch_ends: vec![Zxid(6), z],
            },
            Message::NewLeader {
                session: 1,
                epoch: Epoch(3),
                sync: SyncMode::Trunc { after: z },
                txns: vec![txn(1, b"a"), txn(2, b"")],
            },
            Message::AckNewLeader {
                session: 1,
                epoch: Epoch(3),
                zxid: z,
            },
            Message::UpToDate {
                session: 1,
                committed: z,
            },
            Message::Proposal {
                session: 1,
                prev: z,
                txn: txn(8, b"set /a"),
            },
            Message::Ack {
                session: 1,
                zxid: z,
            },
            Message::Commit {
                session: 1,
                zxid: z,
            },
            Message::Inform {
                session: u64::MAX,
                prev: z,
                txns: vec![txn(9, b"x")],
                committed: Zxid(u64::MAX),
            },
            Message::Ping {
                session: 1,
                last_zxid: z,
                committed: z,
            },
            Message::ReadPing {
                session: 1,
                round: u64::MAX,
            },
            Message::ReadAck {
                session: u64::MAX,
                round: 7,
            },
            Message::App {
                payload: b"forwarded".to_vec(),
            },
        ];
        for message in messages {
            check(Packet::Envelope(message.into()));
        }
        check(Packet::Keepalive);
        check(Packet::Envelope(Envelope {
            message: Message::NewLeader {
                session: 2,
                epoch: Epoch(3),
                sync: SyncMode::Snap { zxid: z },
                txns: vec![],
            },
            snapshot: Some(b"state".to_vec()),
        }));
    }

    #[test]
    fn a_notification_fits_the_election_limit() {
        let frame = encode_frame(
            &Packet::Envelope(
                Message::Notification {
                    vote: Vote {
                        epoch: Epoch(1),
                        zxid: Zxid(1),
                        leader: ServerId(1),
                    },
                    round: 1,
                    state: PeerState::Looking,
                }
                .into(),
            ),
            ELECTION_MAX_FRAME_BYTES,
        )
        .unwrap();
        assert_eq!(frame.len(), FRAME_HEADER_BYTES + 30);
    }

    #[test]
    fn a_snapshot_travels_only_with_a_snap() {
        let diff = Message::NewLeader {
            session: 1,
            epoch: Epoch(1),
            sync: SyncMode::Diff,
            txns: vec![],
        };
        let stray = Packet::Envelope(Envelope {
            message: diff.clone(),
            snapshot: Some(vec![1]),
        });
        assert_eq!(encode_frame(&stray, MAX), Err(WireError::Snapshot));
        let snap = Message::NewLeader {
            session: 1,
            epoch: Epoch(1),
            sync: SyncMode::Snap { zxid: Zxid(4) },
            txns: vec![],
        };
        assert_eq!(
            encode_frame(&Packet::Envelope(snap.into()), MAX),
            Err(WireError::Snapshot)
        );
        // A decoder holds senders to the same rule: flip a DIFF's snapshot
        // flag and give it a payload, with a valid checksum.
        let mut payload = Vec::new();
        encode_message(&mut payload, &diff, Some(b"zz")).unwrap();
        assert_eq!(decode_payload(&payload), Err(WireError::Snapshot));
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let big = Packet::Envelope(
            Message::Proposal {
                session: 1,
                prev: Zxid(0),
                txn: txn(1, &[7; 100]),
            }
            .into(),
        );
        assert!(matches!(
            encode_frame(&big, 64),
            Err(WireError::FrameTooLarge { max: 64, .. })
        ));
        let frame = encode_frame(&big, MAX).unwrap();
        assert!(matches!(
            decode_frame(&frame, 64),
            Err(WireError::FrameTooLarge { max: 64, .. })
        ));
    }

    #[test]
    fn forged_counts_do_not_allocate() {
        // An INFORM claiming 2^32 - 1 txns in a 30-byte payload.
        let mut payload = vec![TAG_INFORM];
        payload.extend_from_slice(&1u64.to_le_bytes());
        payload.extend_from_slice(&0u64.to_le_bytes());
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
        payload.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode_payload(&payload),
            Err(WireError::Truncated {
                what: "txn count",
                ..
            })
        ));
        // A txn claiming 4 GiB of data.
        let mut payload = vec![TAG_PROPOSAL];
        payload.extend_from_slice(&[0; 24]);
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_payload(&payload),
            Err(WireError::Truncated {
                what: "txn data",
                ..
            })
        ));
    }

    #[test]
    fn trailing_bytes_and_unknown_tags_are_errors() {
        let mut payload = Vec::new();
        encode_message(
            &mut payload,
            &Message::Ack {
                session: 1,
                zxid: Zxid(2),
            },
            None,
        )
        .unwrap();
        payload.push(0);
        assert_eq!(decode_payload(&payload), Err(WireError::Trailing(1)));
        assert_eq!(decode_payload(&[0x7f]), Err(WireError::UnknownTag(0x7f)));
        assert_eq!(
            decode_payload(&[TAG_KEEPALIVE, 0]),
            Err(WireError::Trailing(1))
        );
    }

    #[test]
    fn handshake_round_trips_and_names_a_wrong_version() {
        let hs = Handshake::new(Channel::Quorum, ServerId(42), 0xdead_beef);
        let bytes = hs.encode();
        assert_eq!(Handshake::decode(&bytes), Ok(hs));
        let mut v1 = bytes;
        v1[4] = 1;
        assert_eq!(
            Handshake::check_prefix(&v1[..HANDSHAKE_PREFIX_BYTES]),
            Err(WireError::Version { theirs: 1, ours: 2 })
        );
        let mut http = bytes;
        http[0..4].copy_from_slice(b"GET ");
        assert_eq!(Handshake::decode(&http), Err(WireError::Magic(*b"GET ")));
        let mut flipped = bytes;
        flipped[10] ^= 1;
        assert!(matches!(
            Handshake::decode(&flipped),
            Err(WireError::HandshakeChecksum { .. })
        ));
    }

    #[test]
    fn fingerprint_depends_on_members_and_roles() {
        let set = |ids: &[u64]| ids.iter().copied().map(ServerId).collect::<BTreeSet<_>>();
        let base = fingerprint(&set(&[1, 2, 3]), &set(&[]));
        assert_eq!(base, fingerprint(&set(&[3, 2, 1]), &set(&[])));
        assert_ne!(base, fingerprint(&set(&[1, 2, 4]), &set(&[])));
        assert_ne!(base, fingerprint(&set(&[1, 2]), &set(&[3])));
        assert_ne!(base, fingerprint(&set(&[1, 2, 3]), &set(&[4])));
    }
}
