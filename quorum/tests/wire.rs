//! Property tests of the peer wire format: every message round-trips, and
//! untrusted bytes (arbitrary, truncated or bit-flipped) give an error, never a
//! panic or a different message.

use proptest::prelude::*;

use quorum::wire::{
    decode_frame, encode_frame, Channel, Envelope, FrameHeader, Handshake, Packet,
    FRAME_HEADER_BYTES, HANDSHAKE_BYTES,
};
use quorum::{Epoch, Message, PeerState, ServerId, SyncMode, Txn, Vote, Zxid};

const MAX: u32 = 1 << 20;

fn zxid() -> impl Strategy<Value = Zxid> {
    any::<u64>().prop_map(Zxid)
}

fn epoch() -> impl Strategy<Value = Epoch> {
    any::<u32>().prop_map(Epoch)
}

fn txn() -> impl Strategy<Value = Txn> {
    (zxid(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(zxid, data)| Txn { zxid, data })
}

fn txns() -> impl Strategy<Value = Vec<Txn>> {
    prop::collection::vec(txn(), 0..8)
}

fn state() -> impl Strategy<Value = PeerState> {
    prop_oneof![
        Just(PeerState::Looking),
        Just(PeerState::Following),
        Just(PeerState::Leading),
        Just(PeerState::Observing),
    ]
}

fn sync() -> impl Strategy<Value = SyncMode> {
    prop_oneof![
        Just(SyncMode::Diff),
        zxid().prop_map(|after| SyncMode::Trunc { after }),
        zxid().prop_map(|zxid| SyncMode::Snap { zxid }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let s = any::<u64>();
    prop_oneof![
        (epoch(), zxid(), any::<u64>(), any::<u64>(), state()).prop_map(
            |(epoch, zxid, leader, round, state)| Message::Notification {
                vote: Vote {
                    epoch,
                    zxid,
                    leader: ServerId(leader)
                },
                round,
                state
            }
        ),
        (s, epoch()).prop_map(|(session, accepted_epoch)| Message::FollowerInfo {
            session,
            accepted_epoch
        }),
        (s, epoch()).prop_map(|(session, epoch)| Message::LeaderInfo { session, epoch }),
        (
            s,
            epoch(),
            zxid(),
            zxid(),
            prop::collection::vec(zxid(), 0..8)
        )
            .prop_map(|(session, current_epoch, last_zxid, floor, epoch_ends)| {
                Message::AckEpoch {
                    session,
                    current_epoch,
                    last_zxid,
                    floor,
                    epoch_ends,
                }
            }),
        (s, epoch(), sync(), txns()).prop_map(|(session, epoch, sync, txns)| {
            Message::NewLeader {
                session,
                epoch,
                sync,
                txns,
            }
        }),
        (s, any::<u32>(), zxid()).prop_map(|(session, epoch, zxid)| Message::AckNewLeader {
            session,
            epoch: Epoch(epoch),
            zxid
        }),
        (s, zxid()).prop_map(|(session, committed)| Message::UpToDate { session, committed }),
        (s, zxid(), txn()).prop_map(|(session, prev, txn)| Message::Proposal {
            session,
            prev,
            txn
        }),
        (s, zxid()).prop_map(|(session, zxid)| Message::Ack { session, zxid }),
        (s, zxid()).prop_map(|(session, zxid)| Message::Commit { session, zxid }),
        (s, zxid(), txns(), zxid()).prop_map(|(session, prev, txns, committed)| {
            Message::Inform {
                session,
                prev,
                txns,
                committed,
            }
        }),
        (s, zxid(), zxid()).prop_map(|(session, last_zxid, committed)| Message::Ping {
            session,
            last_zxid,
            committed
        }),
        (s, any::<u64>()).prop_map(|(session, round)| Message::ReadPing { session, round }),
        (s, any::<u64>()).prop_map(|(session, round)| Message::ReadAck { session, round }),
    ]
}

/// A packet as a sender builds it: SNAP state exactly on a SNAP.
fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        1 => Just(Packet::Keepalive),
        20 => (message(), prop::collection::vec(any::<u8>(), 0..128)).prop_map(|(message, state)| {
            let snap = matches!(
                message,
                Message::NewLeader {
                    sync: SyncMode::Snap { .. },
                    ..
                }
            );
            Packet::Envelope(Envelope {
                message,
                snapshot: snap.then_some(state),
            })
        }),
    ]
}

proptest! {
    #[test]
    fn packets_round_trip(packet in packet()) {
        let frame = encode_frame(&packet, MAX).unwrap();
        prop_assert_eq!(decode_frame(&frame, MAX), Ok((packet, frame.len())));
    }

    #[test]
    fn frames_decode_one_at_a_time(a in packet(), b in packet()) {
        let mut bytes = encode_frame(&a, MAX).unwrap();
        let first = bytes.len();
        bytes.extend(encode_frame(&b, MAX).unwrap());
        let (got, used) = decode_frame(&bytes, MAX).unwrap();
        prop_assert_eq!((got, used), (a, first));
        let (got, _) = decode_frame(&bytes[used..], MAX).unwrap();
        prop_assert_eq!(got, b);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame(&bytes, MAX);
        let _ = Handshake::decode(&bytes);
        if let Ok(header) = <[u8; FRAME_HEADER_BYTES]>::try_from(&bytes[..bytes.len().min(8)]) {
            if let Ok(header) = FrameHeader::parse(&header, MAX) {
                let _ = header.decode(&bytes[8..]);
            }
        }
    }

    #[test]
    fn arbitrary_payloads_with_a_valid_checksum_never_panic(
        payload in prop::collection::vec(any::<u8>(), 0..256)
    ) {
        // Past the checksum, so the decoder's own field checks are what is tested.
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&frame), &payload);
        frame.extend_from_slice(&crc.to_le_bytes());
        frame.extend_from_slice(&payload);
        let _ = decode_frame(&frame, MAX);
    }

    #[test]
    fn truncated_frames_are_errors(packet in packet(), cut in any::<prop::sample::Index>()) {
        let frame = encode_frame(&packet, MAX).unwrap();
        let cut = cut.index(frame.len());
        prop_assert!(decode_frame(&frame[..cut], MAX).is_err());
    }

    #[test]
    fn flipped_bits_are_errors(packet in packet(), bit in any::<prop::sample::Index>()) {
        let mut frame = encode_frame(&packet, MAX).unwrap();
        let bit = bit.index(frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_frame(&frame, MAX).is_err());
    }

    #[test]
    fn handshakes_round_trip_and_flips_are_errors(
        server in any::<u64>(),
        fingerprint in any::<u64>(),
        quorum in any::<bool>(),
        bit in 0..HANDSHAKE_BYTES * 8,
    ) {
        let channel = if quorum { Channel::Quorum } else { Channel::Election };
        let handshake = Handshake::new(channel, ServerId(server), fingerprint);
        let mut bytes = handshake.encode();
        prop_assert_eq!(Handshake::decode(&bytes), Ok(handshake));
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Handshake::decode(&bytes).is_err());
    }
}
