//! The codec's tests: byte-exact vectors built by hand from the jute spec or
//! recorded from the reference, and proptests that every record round-trips
//! through both halves and that no input makes a decoder panic.

use super::*;
use crate::jute::{put_bool, put_buffer, put_bytes, put_int, put_long, put_string};
use engine::request::{ClientInfo, CreateRequest, MultiOp, MultiResult, Reply, Request, Response};
use engine::types::{
    Acl, AddWatchMode, ErrorCode, EventType, Id, KeeperState, OpCode, Stat, WatcherEvent,
    WatcherType,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;

// ---- helpers -------------------------------------------------------

/// Bytes from a hex string; spaces are for readability.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A request body (no length prefix) starting with its header.
fn body(xid: i32, op: i32) -> Vec<u8> {
    let mut out = Vec::new();
    put_int(&mut out, xid);
    put_int(&mut out, op);
    out
}

/// Strips and checks the length prefix of one encoded frame.
fn unframe(frame: &[u8]) -> &[u8] {
    let (prefix, rest) = frame.split_at(4);
    assert_eq!(
        i32::from_be_bytes(prefix.try_into().unwrap()) as usize,
        rest.len()
    );
    rest
}

/// Every decoding test goes through here.
#[track_caller]
fn check(body: &[u8], expected: Decoded) {
    assert_eq!(
        decode_request(body).expect("frame should be answered, not closed"),
        expected
    );
}

#[track_caller]
fn check_rejected(body: &[u8], code: ErrorCode) {
    let header = decode_request(body).map(|decoded| match decoded {
        Decoded::Rejected(header, got) => {
            assert_eq!(got, code);
            header
        }
        other => panic!("expected Rejected({code:?}), got {other:?}"),
    });
    assert!(header.is_ok());
}

fn encoded_reply(xid: i32, zxid: i64, reply: &Reply) -> Vec<u8> {
    let mut out = Vec::new();
    encode_reply(xid, zxid, reply, &mut out);
    out
}

// ---- golden bytes, built by hand from the jute spec ------------------

/// getData("/a", watch) with xid 1: length 15, xid, opcode 4, ustring, bool.
#[test]
fn golden_get_data_request() {
    let expected = hex("0000000f 00000001 00000004 00000002 2f61 01");
    let mut out = Vec::new();
    let request = Request::GetData {
        path: "/a".into(),
        watch: true,
    };
    encode_request(&RequestHeader { xid: 1, op: 4 }, &request, &mut out);
    assert_eq!(out, expected);
    check(
        &expected[4..],
        Decoded::Request(RequestHeader { xid: 1, op: 4 }, request),
    );
}

fn sample_stat() -> Stat {
    Stat {
        czxid: 1,
        mzxid: 2,
        ctime: 3,
        mtime: 4,
        version: 5,
        cversion: 6,
        aversion: 7,
        ephemeral_owner: 8,
        data_length: 9,
        num_children: 10,
        pzxid: 11,
    }
}

/// create2 reply: ReplyHeader, then Create2Response{path, Stat}; the Stat
/// fields in jute order (czxid, mzxid, ctime, mtime: long; version,
/// cversion, aversion: int; ephemeralOwner: long; dataLength, numChildren:
/// int; pzxid: long).
#[test]
fn golden_create2_reply() {
    let expected = hex("0000005a 00000005 0000000000000010 00000000 00000002 2f6e
         0000000000000001 0000000000000002 0000000000000003 0000000000000004
         00000005 00000006 00000007 0000000000000008 00000009 0000000a
         000000000000000b");
    let reply = Reply::ok(Response::Create2 {
        path: "/n".into(),
        stat: sample_stat(),
    });
    assert_eq!(encoded_reply(5, 0x10, &reply), expected);
    let header = ReplyHeader {
        xid: 5,
        zxid: 0x10,
        err: 0,
    };
    assert_eq!(
        decode_reply(OpCode::Create2, &expected[4..]),
        Ok((header, reply))
    );
}

/// An error reply has no body, whatever the Reply carries.
#[test]
fn golden_error_reply_has_no_body() {
    let reply = Reply {
        err: ErrorCode::NoNode,
        body: Response::Stat(sample_stat()),
    };
    assert_eq!(
        encoded_reply(7, 3, &reply),
        hex("00000010 00000007 0000000000000003 ffffff9b")
    );
}

/// NodeDataChanged on /a: xid -1, zxid -1, err 0, type 3, state 3, path.
#[test]
fn golden_event() {
    let mut out = Vec::new();
    let event = WatcherEvent {
        event_type: EventType::NodeDataChanged,
        state: KeeperState::SyncConnected,
        path: "/a".into(),
    };
    encode_event(&event, &mut out);
    let expected =
        hex("0000001e ffffffff ffffffffffffffff 00000000 00000003 00000003 00000002 2f61");
    assert_eq!(out, expected);
    assert_eq!(decode_event(&expected[4..]), Ok(event));
}

// ---- golden bytes captured from Apache ZooKeeper 3.8.0 ----------------

/// A multi whose second op failed (ZK-BEHAVIOURS 3): earlier ops report 0,
/// the failing op its code, later ops RuntimeInconsistency, each as type -1
/// plus ErrorResponse; err 0 in the header.
#[test]
fn reference_failed_multi_reply() {
    let reply = Reply::ok(Response::Multi(vec![
        MultiResult::Error(ErrorCode::Ok),
        MultiResult::Error(ErrorCode::NoNode),
        MultiResult::Error(ErrorCode::RuntimeInconsistency),
    ]));
    let body = "ffffffff 00 00000000 00000000  ffffffff 00 ffffff9b ffffff9b
                ffffffff 00 fffffffe fffffffe  ffffffff 01 ffffffff";
    let mut expected = hex("00000001 00000000000000e5 00000000");
    expected.extend(hex(body));
    let frame = encoded_reply(1, 229, &reply);
    assert_eq!(unframe(&frame), expected);
    assert_eq!(
        decode_reply(OpCode::Multi, &expected).map(|(_, r)| r),
        Ok(reply)
    );
}

#[test]
fn reference_multi_read_and_check_results() {
    let cases = [
        (
            "000000080000000000000000020000000178000000097a6f6f6b6565706572ffffffff01ffffffff",
            vec![MultiResult::GetChildren {
                children: vec!["x".into(), "zookeeper".into()],
            }],
        ),
        (
            "0000000d0000000000ffffffff01ffffffff",
            vec![MultiResult::Check],
        ),
        (
            "000000020000000000ffffffff01ffffffff",
            vec![MultiResult::Delete],
        ),
        (
            "ffffffff00ffffff9bffffff9bffffffff01ffffffff",
            vec![MultiResult::Error(ErrorCode::NoNode)],
        ),
        ("ffffffff01ffffffff", vec![]),
    ];
    for (body, results) in cases {
        let reply = Reply::ok(Response::Multi(results));
        let frame = encoded_reply(1, 0, &reply);
        assert_eq!(&unframe(&frame)[16..], hex(body).as_slice());
        assert_eq!(
            decode_reply(OpCode::MultiRead, unframe(&frame)).map(|(_, r)| r),
            Ok(reply)
        );
    }
}

/// A multiRead holding a write: MarshallingError in the header, and still
/// an (empty) result list after it.
#[test]
fn reference_error_multi_reply_keeps_its_body() {
    let reply = Reply {
        err: ErrorCode::MarshallingError,
        body: Response::Multi(vec![]),
    };
    let frame = encoded_reply(1, 75, &reply);
    assert_eq!(
        unframe(&frame),
        hex("00000001 000000000000004b fffffffb ffffffff01ffffffff").as_slice()
    );
    assert_eq!(
        decode_reply(OpCode::MultiRead, unframe(&frame)).map(|(_, r)| r),
        Ok(reply)
    );
}

#[test]
fn reference_who_am_i_and_add_watch_bodies() {
    let who = Reply::ok(Response::WhoAmI {
        ids: vec![ClientInfo {
            auth_scheme: "ip".into(),
            user: "127.0.0.1".into(),
        }],
    });
    let frame = encoded_reply(1, 108, &who);
    assert_eq!(
        &unframe(&frame)[16..],
        hex("00000001000000026970000000093132372e302e302e31")
    );
    // addWatch answers ErrorResponse{0}: four zero bytes, not an empty body.
    let frame = encoded_reply(1, 243, &Reply::ok(Response::AddWatch));
    assert_eq!(&unframe(&frame)[16..], hex("00000000"));
    assert_eq!(
        decode_reply(OpCode::AddWatch, unframe(&frame)).map(|(_, r)| r),
        Ok(Reply::ok(Response::AddWatch))
    );
}

/// The reference refuses a bad session with zeros and a 16-byte zero
/// password; it writes readOnly only for clients that sent it.
#[test]
fn reference_connect_responses() {
    let refusal = ConnectResponse {
        protocol_version: 0,
        timeout_ms: 0,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: false,
    };
    let mut out = Vec::new();
    encode_connect_response(&refusal, &mut out);
    let mut expected = hex("00000025 00000000 00000000 0000000000000000 00000010");
    expected.extend([0; 17]);
    assert_eq!(out, expected);

    let accepted = ConnectResponse {
        protocol_version: 0,
        timeout_ms: 30000,
        session_id: 0x0100_0006_08b5_0001,
        passwd: hex("94c6d7561adb71a1bcc12efb27960288"),
        read_only: false,
    };
    let mut out = Vec::new();
    encode_connect_response_for(&accepted, false, &mut out);
    let expected = hex(
        "00000024 00000000 00007530 0100000608b50001 00000010 94c6d7561adb71a1bcc12efb27960288",
    );
    assert_eq!(out, expected);
    assert_eq!(decode_connect_response(&expected[4..]), Ok(accepted));
}

/// The frame a 3.8 client sends to start a session, readOnly included.
#[test]
fn connect_request_with_and_without_read_only() {
    let mut body = hex("00000000 0000000000000000 00007530 0000000000000000 00000010");
    body.extend([0; 16]);
    let mut expected = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: None,
    };
    assert_eq!(decode_connect(&body), Ok(expected.clone()));
    body.push(2);
    expected.read_only = Some(true);
    assert_eq!(decode_connect(&body), Ok(expected.clone()));
    // Trailing bytes after readOnly are ignored; a null password is empty.
    body.extend(b"garbage");
    assert_eq!(decode_connect(&body), Ok(expected.clone()));
    let mut null_password = hex("00000000 0000000000000000 00007530 0000000000000000 ffffffff 00");
    expected.passwd.clear();
    expected.read_only = Some(false);
    assert_eq!(decode_connect(&null_password), Ok(expected));
    // Without a password at all the reference closes the connection.
    null_password.truncate(24);
    assert!(decode_connect(&null_password).is_err());
}

// ---- the reference's handling of odd requests ------------------------

/// Pings are answered with xid -2 whatever they carried; their body is
/// never read.
#[test]
fn ping_xid_is_normalised() {
    let mut frame = body(7, 11);
    frame.extend(b"junk");
    check(
        &frame,
        Decoded::Request(RequestHeader { xid: -2, op: 11 }, Request::Ping),
    );
}

#[test]
fn trailing_bytes_after_a_record_are_ignored() {
    let mut frame = body(1, 4);
    put_string(&mut frame, "/");
    put_bool(&mut frame, false);
    frame.extend(b"garbage");
    let request = Request::GetData {
        path: "/".into(),
        watch: false,
    };
    check(
        &frame,
        Decoded::Request(RequestHeader { xid: 1, op: 4 }, request),
    );
    let mut frame = body(1, 107);
    frame.extend(b"junk");
    check(
        &frame,
        Decoded::Request(RequestHeader { xid: 1, op: 107 }, Request::WhoAmI),
    );
}

/// ZK-BEHAVIOURS 11: these opcodes get Unimplemented and a closed socket.
#[test]
fn unknown_opcodes() {
    for op in [0, 10, 23, 108, -1, -2, 99, i32::MIN] {
        let frame = body(3, op);
        check(&frame, Decoded::UnknownOp(RequestHeader { xid: 3, op }));
    }
}

/// sasl (102) is answered (with a null token), not refused: clients that
/// try SASL first then carry on, as against a reference without SASL.
#[test]
fn sasl_is_a_request() {
    let mut frame = body(3, 102);
    put_buffer(&mut frame, None);
    check(
        &frame,
        Decoded::Request(
            RequestHeader { xid: 3, op: 102 },
            Request::Sasl { token: None },
        ),
    );
}

#[test]
fn short_headers_close_the_connection() {
    for length in 0..8 {
        assert!(decode_request(&body(1, 4)[..length]).is_err());
    }
}

#[test]
fn malformed_bodies_are_marshalling_errors() {
    use ErrorCode::MarshallingError as M;
    let mut get_data_no_watch = body(1, 4);
    put_string(&mut get_data_no_watch, "/");
    check_rejected(&get_data_no_watch, M);
    check_rejected(&body(1, 4), M);
    let mut huge_length = body(1, 4);
    put_int(&mut huge_length, i32::MAX);
    huge_length.extend(b"abc");
    check_rejected(&huge_length, M);
    let mut length_minus_two = body(1, 4);
    put_int(&mut length_minus_two, -2);
    check_rejected(&length_minus_two, M);
    let mut null_path = body(1, 4);
    put_int(&mut null_path, -1);
    put_bool(&mut null_path, false);
    check_rejected(&null_path, M);
    // Creating a session inside a session.
    check_rejected(&body(1, -10), M);
}

/// A vector count of 2^31-1 in a 20-byte frame is refused before any
/// allocation.
#[test]
fn huge_counts_are_refused_without_allocating() {
    let mut frame = body(-8, 101);
    put_long(&mut frame, 0);
    put_int(&mut frame, i32::MAX);
    assert_eq!(frame.len(), 20);
    check_rejected(&frame, ErrorCode::MarshallingError);
    let mut create = body(1, 1);
    put_string(&mut create, "/x");
    put_int(&mut create, -1);
    put_int(&mut create, i32::MAX);
    check_rejected(&create, ErrorCode::MarshallingError);
    let mut reply = hex("00000001 0000000000000001 00000000");
    put_int(&mut reply, i32::MAX);
    assert!(matches!(
        decode_reply(OpCode::GetChildren, &reply),
        Err(DecodeError::CountTooLarge {
            count: i32::MAX,
            ..
        })
    ));
}

/// Null paths: MarshallingError for most requests, the empty string for
/// the few whose reference code path tolerates null.
#[test]
fn null_paths() {
    let null = |op: i32, tail: &[u8]| {
        let mut frame = body(1, op);
        put_int(&mut frame, -1);
        frame.extend_from_slice(tail);
        frame
    };
    let header = |op| RequestHeader { xid: 1, op };
    for (op, tail) in [
        (3, vec![0]),
        (2, vec![0xff; 4]),
        (8, vec![0]),
        (6, vec![]),
        (104, vec![]),
    ] {
        check_rejected(&null(op, &tail), ErrorCode::MarshallingError);
    }
    check_rejected(&null(17, &[0, 0, 0, 1]), ErrorCode::MarshallingError);
    check(
        &null(9, &[]),
        Decoded::Request(
            header(9),
            Request::Sync {
                path: String::new(),
            },
        ),
    );
    check(
        &null(103, &[]),
        Decoded::Request(
            header(103),
            Request::GetEphemerals {
                prefix: String::new(),
            },
        ),
    );
    check(
        &null(5, &hex("ffffffff ffffffff")),
        Decoded::Request(
            header(5),
            Request::SetData {
                path: String::new(),
                data: None,
                version: -1,
            },
        ),
    );
    check(
        &null(106, &[0, 0, 0, 0]),
        Decoded::Request(
            header(106),
            Request::AddWatch {
                path: String::new(),
                mode: AddWatchMode::Persistent,
            },
        ),
    );
    check(
        &null(18, &[0, 0, 0, 3]),
        Decoded::Request(
            header(18),
            Request::RemoveWatches {
                path: String::new(),
                watcher_type: WatcherType::Any,
            },
        ),
    );
}

/// ZK-BEHAVIOURS 17: watcher type 0 (or anything outside 1..=3) and
/// addWatch modes other than 0 and 1 are MarshallingError.
#[test]
fn watch_types_and_modes_out_of_range() {
    for (op, value) in [(17, 0), (17, 4), (18, 0), (18, 5), (106, 2), (106, -1)] {
        let mut frame = body(1, op);
        put_string(&mut frame, "/");
        put_int(&mut frame, value);
        check_rejected(&frame, ErrorCode::MarshallingError);
    }
}

/// A null ACL list or a negative count is an empty list (prep answers
/// InvalidACL), a null scheme is empty, a null id is MarshallingError except
/// for the `auth` scheme, whose id is unused.
#[test]
fn acl_nulls() {
    let create = |acl: &[u8]| {
        let mut frame = body(1, 1);
        put_string(&mut frame, "/x");
        put_int(&mut frame, -1);
        frame.extend_from_slice(acl);
        put_int(&mut frame, 0);
        frame
    };
    let expect = |acl: Vec<Acl>| {
        let request = CreateRequest {
            path: "/x".into(),
            data: None,
            acl,
            flags: 0,
            ttl: -1,
        };
        Decoded::Request(
            RequestHeader { xid: 1, op: 1 },
            Request::Create {
                op: OpCode::Create,
                request,
            },
        )
    };
    check(&create(&hex("ffffffff")), expect(vec![]));
    check(&create(&hex("fffffffb")), expect(vec![]));
    let mut null_scheme = hex("00000001 0000001f ffffffff");
    put_string(&mut null_scheme, "anyone");
    check(
        &create(&null_scheme),
        expect(vec![Acl {
            perms: 31,
            id: Id::new("", "anyone"),
        }]),
    );
    let mut null_id = hex("00000001 0000001f");
    put_string(&mut null_id, "world");
    put_int(&mut null_id, -1);
    check_rejected(&create(&null_id), ErrorCode::MarshallingError);
    // The `auth` scheme ignores its id; kazoo's CREATOR_ALL_ACL sends it null.
    let mut null_auth_id = hex("00000001 0000001f");
    put_string(&mut null_auth_id, "auth");
    put_int(&mut null_auth_id, -1);
    check(
        &create(&null_auth_id),
        expect(vec![Acl {
            perms: 31,
            id: Id::new("auth", ""),
        }]),
    );
}

#[test]
fn set_watches_null_lists_are_marshalling_errors() {
    let mut frame = body(-8, 101);
    put_long(&mut frame, 0);
    frame.extend(hex("ffffffff 00000000 00000000"));
    check_rejected(&frame, ErrorCode::MarshallingError);
    let mut frame = body(-8, 101);
    put_long(&mut frame, 0);
    frame.extend(hex("00000001 ffffffff 00000000 00000000"));
    check_rejected(&frame, ErrorCode::MarshallingError);
    // setWatches2 needs its two extra lists.
    let mut frame = body(-8, 105);
    put_long(&mut frame, 0);
    frame.extend(hex("00000000 00000000 00000000"));
    check_rejected(&frame, ErrorCode::MarshallingError);
}

/// A multi ends at the first header with done set, whatever its type; a
/// type the reference does not take in a multi, a read-only exists
/// included, makes the whole multi MarshallingError, as does a missing
/// terminator.
#[test]
fn multi_framing() {
    let check_op = |path: &str| {
        let mut out = hex("0000000d 00 ffffffff");
        put_string(&mut out, path);
        put_int(&mut out, -1);
        out
    };
    let multi = |parts: &[&[u8]]| {
        let mut frame = body(1, 14);
        for part in parts {
            frame.extend_from_slice(part);
        }
        frame
    };
    let one_check = Decoded::Request(
        RequestHeader { xid: 1, op: 14 },
        Request::Multi(vec![MultiOp::Check {
            path: "/".into(),
            version: -1,
        }]),
    );
    check(
        &multi(&[&check_op("/"), &hex("ffffffff 01 ffffffff")]),
        one_check.clone(),
    );
    check(
        &multi(&[&check_op("/"), &hex("ffffffff 02 ffffffff")]),
        one_check.clone(),
    );
    check(
        &multi(&[&check_op("/"), &hex("00000005 01 00000000")]),
        one_check,
    );
    check(
        &multi(&[&hex("0000000d 01 ffffffff"), &check_op("/")]),
        Decoded::Request(RequestHeader { xid: 1, op: 14 }, Request::Multi(vec![])),
    );
    check_rejected(&multi(&[&check_op("/")]), ErrorCode::MarshallingError);
    check_rejected(
        &multi(&[&hex("ffffffff 00 ffffffff ffffffff 01 ffffffff")]),
        ErrorCode::MarshallingError,
    );
    for op_type in ["00000003", "00000014", "00000063", "0000000b"] {
        let mut op = hex(op_type);
        op.extend(hex("00 ffffffff"));
        put_string(&mut op, "/");
        op.extend(hex("00 ffffffff 01 ffffffff"));
        check_rejected(&multi(&[&op]), ErrorCode::MarshallingError);
    }
}

#[test]
fn reconfig_delete_container_and_create_session() {
    let mut reconfig = body(1, 16);
    put_string(&mut reconfig, "server.4=127.0.0.1:2888:3888;2181");
    reconfig.extend(hex("ffffffff"));
    put_string(&mut reconfig, "a,b");
    reconfig.extend(hex("0000000100000002"));
    check(
        &reconfig,
        Decoded::Request(
            RequestHeader { xid: 1, op: 16 },
            Request::Reconfig {
                joining: Some("server.4=127.0.0.1:2888:3888;2181".into()),
                leaving: None,
                new_members: Some("a,b".into()),
                from_config: 0x1_0000_0002,
            },
        ),
    );
    check_rejected(&body(1, 16), ErrorCode::MarshallingError);
    let mut delete_container = body(1, 20);
    put_string(&mut delete_container, "/c");
    check_rejected(&delete_container, ErrorCode::BadArguments);
    check_rejected(&body(1, -10), ErrorCode::MarshallingError);

    let header = |op| RequestHeader { xid: 1, op };
    assert!(header(1).rejection_consumes_zxid());
    assert!(header(14).rejection_consumes_zxid());
    assert!(header(20).rejection_consumes_zxid());
    assert!(!header(16).rejection_consumes_zxid());
    assert!(!header(22).rejection_consumes_zxid());
    assert!(!header(4).rejection_consumes_zxid());
    assert!(!header(101).rejection_consumes_zxid());
}

/// A malformed auth packet closes the connection (the reference parses it
/// outside its request pipeline); a null auth buffer becomes the empty
/// scheme, which fails like an unknown scheme.
#[test]
fn auth_packets() {
    let mut truncated = body(-4, 100);
    put_int(&mut truncated, 0);
    put_string(&mut truncated, "digest");
    assert!(decode_request(&truncated).is_err());
    let mut null_auth = truncated.clone();
    put_int(&mut null_auth, -1);
    check(
        &null_auth,
        Decoded::Request(
            RequestHeader { xid: -4, op: 100 },
            Request::SetAuth {
                auth_type: 0,
                scheme: String::new(),
                auth: vec![],
            },
        ),
    );
    let mut good = truncated;
    put_bytes(&mut good, b"a:b");
    check(
        &good,
        Decoded::Request(
            RequestHeader { xid: -4, op: 100 },
            Request::SetAuth {
                auth_type: 0,
                scheme: "digest".into(),
                auth: b"a:b".to_vec(),
            },
        ),
    );
}

/// Invalid UTF-8 becomes U+FFFD, as Java decodes it: a read answers NoNode.
#[test]
fn invalid_utf8_paths_are_replaced() {
    let mut frame = body(1, 3);
    put_bytes(&mut frame, b"/\xff");
    put_bool(&mut frame, false);
    let request = Request::Exists {
        path: "/\u{fffd}".into(),
        watch: false,
    };
    check(
        &frame,
        Decoded::Request(RequestHeader { xid: 1, op: 3 }, request),
    );
}

#[test]
fn set_watches2_with_empty_persistent_lists_round_trips() {
    let request = Request::SetWatches {
        relative_zxid: 5,
        data: vec!["/a".into()],
        exist: vec![],
        child: vec![],
        persistent: vec![],
        persistent_recursive: vec![],
    };
    for op in [101, 105] {
        let header = RequestHeader { xid: -8, op };
        let mut out = Vec::new();
        encode_request(&header, &request, &mut out);
        assert_eq!(
            out.len(),
            if op == 101 {
                4 + 8 + 8 + 10 + 8
            } else {
                4 + 8 + 8 + 10 + 16
            }
        );
        check(unframe(&out), Decoded::Request(header, request.clone()));
    }
}

// ---- property tests ---------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z/]{0,12}", ".{0,6}"]
}

fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(vec(any::<u8>(), 0..24))
}

fn acl() -> impl Strategy<Value = Vec<Acl>> {
    vec(
        (any::<i32>(), text(), text()).prop_map(|(perms, scheme, id)| Acl {
            perms,
            id: Id { scheme, id },
        }),
        0..4,
    )
}

fn stat() -> impl Strategy<Value = Stat> {
    (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
        czxid: l[0],
        mzxid: l[1],
        ctime: l[2],
        mtime: l[3],
        version: i[0],
        cversion: i[1],
        aversion: i[2],
        ephemeral_owner: l[4],
        data_length: i[3],
        num_children: i[4],
        pzxid: l[5],
    })
}

fn create() -> impl Strategy<Value = (OpCode, CreateRequest)> {
    let op = prop_oneof![
        Just(OpCode::Create),
        Just(OpCode::Create2),
        Just(OpCode::CreateContainer),
        Just(OpCode::CreateTtl)
    ];
    (op, text(), data(), acl(), any::<i32>(), any::<i64>()).prop_map(
        |(op, path, data, acl, flags, ttl)| {
            let ttl = if op == OpCode::CreateTtl { ttl } else { -1 };
            (
                op,
                CreateRequest {
                    path,
                    data,
                    acl,
                    flags,
                    ttl,
                },
            )
        },
    )
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        create().prop_map(|(op, request)| MultiOp::Create { op, request }),
        (text(), any::<i32>()).prop_map(|(path, version)| MultiOp::Delete { path, version }),
        (text(), data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData {
            path,
            data,
            version
        }),
        (text(), any::<i32>()).prop_map(|(path, version)| MultiOp::Check { path, version }),
        text().prop_map(|path| MultiOp::GetChildren { path }),
        text().prop_map(|path| MultiOp::GetData { path }),
    ]
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..4)
}

fn request() -> BoxedStrategy<Request> {
    let watcher_type = prop_oneof![
        Just(WatcherType::Children),
        Just(WatcherType::Data),
        Just(WatcherType::Any)
    ];
    let mode = prop_oneof![
        Just(AddWatchMode::Persistent),
        Just(AddWatchMode::PersistentRecursive)
    ];
    Union::new(vec![
        create()
            .prop_map(|(op, request)| Request::Create { op, request })
            .boxed(),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Delete { path, version })
            .boxed(),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::Exists { path, watch })
            .boxed(),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetData { path, watch })
            .boxed(),
        (text(), data(), any::<i32>())
            .prop_map(|(path, data, version)| Request::SetData {
                path,
                data,
                version,
            })
            .boxed(),
        text().prop_map(|path| Request::GetAcl { path }).boxed(),
        (text(), acl(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl { path, acl, version })
            .boxed(),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetChildren { path, watch })
            .boxed(),
        (text(), any::<bool>())
            .prop_map(|(path, watch)| Request::GetChildren2 { path, watch })
            .boxed(),
        text().prop_map(|path| Request::Sync { path }).boxed(),
        Just(Request::Ping).boxed(),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Check { path, version })
            .boxed(),
        vec(multi_op(), 0..5).prop_map(Request::Multi).boxed(),
        vec(multi_op(), 0..5).prop_map(Request::MultiRead).boxed(),
        (text(), watcher_type.clone())
            .prop_map(|(path, watcher_type)| Request::CheckWatches { path, watcher_type })
            .boxed(),
        (text(), watcher_type)
            .prop_map(|(path, watcher_type)| Request::RemoveWatches { path, watcher_type })
            .boxed(),
        (any::<i32>(), text(), vec(any::<u8>(), 0..16))
            .prop_map(|(auth_type, scheme, auth)| Request::SetAuth {
                auth_type,
                scheme,
                auth,
            })
            .boxed(),
        (
            any::<i64>(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings(),
        )
            .prop_map(
                |(relative_zxid, data, exist, child, persistent, persistent_recursive)| {
                    Request::SetWatches {
                        relative_zxid,
                        data,
                        exist,
                        child,
                        persistent,
                        persistent_recursive,
                    }
                },
            )
            .boxed(),
        text()
            .prop_map(|prefix| Request::GetEphemerals { prefix })
            .boxed(),
        text()
            .prop_map(|path| Request::GetAllChildrenNumber { path })
            .boxed(),
        (text(), mode)
            .prop_map(|(path, mode)| Request::AddWatch { path, mode })
            .boxed(),
        Just(Request::WhoAmI).boxed(),
        Just(Request::CloseSession).boxed(),
    ])
    .boxed()
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    (-130i32..=0).prop_filter_map("a known code", ErrorCode::from_code)
}

fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        text().prop_map(|path| MultiResult::Create { path }),
        (text(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
        Just(MultiResult::Delete),
        stat().prop_map(|stat| MultiResult::SetData { stat }),
        Just(MultiResult::Check),
        strings().prop_map(|children| MultiResult::GetChildren { children }),
        (data(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
        error_code().prop_map(MultiResult::Error),
    ]
}

/// A reply body and the opcode whose reply has that shape.
fn response() -> BoxedStrategy<(OpCode, Response)> {
    use OpCode as Op;
    Union::new(vec![
        Just((Op::Delete, Response::Empty)).boxed(),
        text()
            .prop_map(|path| (Op::Create, Response::Create { path }))
            .boxed(),
        (text(), stat())
            .prop_map(|(path, stat)| (Op::Create2, Response::Create2 { path, stat }))
            .boxed(),
        stat()
            .prop_map(|stat| (Op::Exists, Response::Stat(stat)))
            .boxed(),
        (data(), stat())
            .prop_map(|(data, stat)| (Op::GetData, Response::GetData { data, stat }))
            .boxed(),
        (acl(), stat())
            .prop_map(|(acl, stat)| (Op::GetAcl, Response::GetAcl { acl, stat }))
            .boxed(),
        strings()
            .prop_map(|children| (Op::GetChildren, Response::GetChildren { children }))
            .boxed(),
        (strings(), stat())
            .prop_map(|(children, stat)| {
                (Op::GetChildren2, Response::GetChildren2 { children, stat })
            })
            .boxed(),
        text()
            .prop_map(|path| (Op::Sync, Response::Sync { path }))
            .boxed(),
        vec(multi_result(), 0..5)
            .prop_map(|results| (Op::Multi, Response::Multi(results)))
            .boxed(),
        strings()
            .prop_map(|paths| (Op::GetEphemerals, Response::GetEphemerals { paths }))
            .boxed(),
        any::<i32>()
            .prop_map(|total| {
                (
                    Op::GetAllChildrenNumber,
                    Response::GetAllChildrenNumber { total },
                )
            })
            .boxed(),
        vec((text(), text()), 0..3)
            .prop_map(|pairs| {
                let ids = pairs
                    .into_iter()
                    .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                    .collect();
                (Op::WhoAmI, Response::WhoAmI { ids })
            })
            .boxed(),
        Just((Op::AddWatch, Response::AddWatch)).boxed(),
    ])
    .boxed()
}

fn event() -> impl Strategy<Value = WatcherEvent> {
    use EventType as E;
    use KeeperState as K;
    let event_type = proptest::sample::select(vec![
        E::None,
        E::NodeCreated,
        E::NodeDeleted,
        E::NodeDataChanged,
        E::NodeChildrenChanged,
        E::DataWatchRemoved,
        E::ChildWatchRemoved,
        E::PersistentWatchRemoved,
    ]);
    let state = proptest::sample::select(vec![
        K::Disconnected,
        K::SyncConnected,
        K::AuthFailed,
        K::ConnectedReadOnly,
        K::SaslAuthenticated,
        K::Closed,
        K::Expired,
    ]);
    (event_type, state, text()).prop_map(|(event_type, state, path)| WatcherEvent {
        event_type,
        state,
        path,
    })
}

/// Every opcode a client may send, for fuzzing bodies behind a valid header.
const CLIENT_OPS: [i32; 33] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102, 103,
    104, 105, 106, 107, -10, -11, 0, 10,
];

proptest! {
    #[test]
    fn every_request_round_trips(xid in any::<i32>(), request in request()) {
        let header = RequestHeader { xid, op: request_op(&request).code() };
        let mut out = vec![0xaa];
        encode_request(&header, &request, &mut out);
        let decoded = decode_request(unframe(&out[1..]));
        let header = if request == Request::Ping {
            RequestHeader { xid: PING_XID, ..header }
        } else {
            header
        };
        prop_assert_eq!(decoded, Ok(Decoded::Request(header, request)));
    }

    #[test]
    fn every_reply_round_trips(
        xid in any::<i32>(),
        zxid in any::<i64>(),
        err in error_code(),
        (op, body) in response(),
    ) {
        let reply = Reply { err, body };
        let frame = encoded_reply(xid, zxid, &reply);
        let expected = if err == ErrorCode::Ok || matches!(reply.body, Response::Multi(_)) {
            reply
        } else {
            Reply::error(err)
        };
        let header = ReplyHeader { xid, zxid, err: err.code() };
        prop_assert_eq!(decode_reply_header(unframe(&frame)), Ok(header));
        prop_assert_eq!(decode_reply(op, unframe(&frame)), Ok((header, expected)));
    }

    #[test]
    fn events_round_trip(event in event()) {
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        let header = ReplyHeader { xid: -1, zxid: -1, err: 0 };
        prop_assert_eq!(decode_reply_header(unframe(&out)), Ok(header));
        prop_assert_eq!(decode_event(unframe(&out)), Ok(event));
    }

    #[test]
    fn connect_records_round_trip(
        protocol_version in any::<i32>(),
        last_zxid_seen in any::<i64>(),
        timeout_ms in any::<i32>(),
        session_id in any::<i64>(),
        passwd in vec(any::<u8>(), 0..20),
        read_only in proptest::option::of(any::<bool>()),
    ) {
        let request = ConnectRequest {
            protocol_version, last_zxid_seen, timeout_ms, session_id,
            passwd: passwd.clone(), read_only,
        };
        let mut out = Vec::new();
        encode_connect_request(&request, &mut out);
        prop_assert_eq!(decode_connect(unframe(&out)), Ok(request));

        let response = ConnectResponse {
            protocol_version, timeout_ms, session_id, passwd,
            read_only: read_only.unwrap_or(false),
        };
        let mut out = Vec::new();
        encode_connect_response(&response, &mut out);
        prop_assert_eq!(decode_connect_response(unframe(&out)), Ok(response.clone()));
        let mut old = Vec::new();
        encode_connect_response_for(&response, false, &mut old);
        prop_assert_eq!(old.len() + 1, out.len());
        prop_assert_eq!(
            decode_connect_response(unframe(&old)),
            Ok(ConnectResponse { read_only: false, ..response })
        );
    }

    /// Any byte string: an answer or an error, never a panic, never an
    /// allocation the input cannot back (a huge count would abort here).
    #[test]
    fn decoders_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = decode_request(&bytes);
        let _ = decode_connect(&bytes);
        let _ = decode_connect_response(&bytes);
        let _ = decode_event(&bytes);
        for op in CLIENT_OPS {
            if let Some(op) = OpCode::from_code(op) {
                let _ = decode_reply(op, &bytes);
            }
        }
    }

    /// Arbitrary bodies behind a real opcode reach every body decoder. Only
    /// an auth packet may close the connection.
    #[test]
    fn request_bodies_never_panic(
        op in proptest::sample::select(CLIENT_OPS.to_vec()),
        tail in vec(any::<u8>(), 0..128),
    ) {
        let mut frame = body(1, op);
        frame.extend(tail);
        let decoded = decode_request(&frame);
        prop_assert!(decoded.is_ok() || op == 100, "{:?}", decoded);
    }

    /// Every truncation of a valid frame, and every single-byte change,
    /// is answered or refused without a panic; past the header only an
    /// auth packet may be an Err.
    #[test]
    fn damaged_frames_never_panic(
        xid in any::<i32>(),
        request in request(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let header = RequestHeader { xid, op: request_op(&request).code() };
        let mut out = Vec::new();
        encode_request(&header, &request, &mut out);
        let frame = unframe(&out);
        let is_auth = matches!(request, Request::SetAuth { .. });
        for cut in 0..frame.len() {
            let decoded = decode_request(&frame[..cut]);
            // A cut auth packet is always incomplete, hence always fatal.
            prop_assert_eq!(decoded.is_ok(), cut >= 8 && !is_auth, "cut {}", cut);
        }
        let mut damaged = frame.to_vec();
        let at = position.index(damaged.len());
        damaged[at] = byte;
        let decoded = decode_request(&damaged);
        prop_assert!(decoded.is_ok() || is_auth || damaged[4..8] == [0, 0, 0, 100]);
    }

    #[test]
    fn damaged_replies_never_panic(
        err in error_code(),
        (op, body) in response(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let frame = encoded_reply(1, 2, &Reply { err, body });
        let frame = unframe(&frame);
        for cut in 0..frame.len() {
            let _ = decode_reply(op, &frame[..cut]);
        }
        let mut damaged = frame.to_vec();
        let at = position.index(damaged.len());
        damaged[at] = byte;
        let _ = decode_reply(op, &damaged);
    }
}
