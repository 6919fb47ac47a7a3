//! The jute codec on the I/O thread's hot path: decoding client request
//! frames and encoding reply frames, one record per iteration, for the
//! records a busy server sees most (connect, getData, setData, create,
//! multi, setWatches; getData, create, getChildren2, multi replies and watch
//! notifications).
//!
//! Inputs are built with the crate's own encoders, and each one is decoded
//! once before timing and compared with what was encoded, so a bench cannot
//! silently measure an error path. Encoders write into one reused buffer,
//! cleared each iteration, as a connection's output buffer is.
//!
//! `cargo bench -p net --bench codec`; a full run takes under a minute.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::request::{CreateRequest, MultiOp, MultiResult, Reply, Request, Response};
use engine::types::{perms, Acl, EventType, Id, KeeperState, OpCode, Stat, WatcherEvent};
use net::jute::FRAME_PREFIX_BYTES;
use net::proto::{self, ConnectRequest, Decoded, ReplyHeader, RequestHeader};

/// A frame's body: what the reactor hands a decoder once it has split the
/// stream on length prefixes.
fn body(frame: &[u8]) -> &[u8] {
    &frame[FRAME_PREFIX_BYTES..]
}

/// A stat with every field set, so no field encodes as the zero fast case.
fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0042,
        mzxid: 0x1_0000_1234,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_123_456,
        version: 17,
        cversion: 4,
        aversion: 1,
        ephemeral_owner: 0,
        data_length: 100,
        num_children: 2,
        pzxid: 0x1_0000_1200,
    }
}

fn create_request(path: &str, data_bytes: usize) -> CreateRequest {
    CreateRequest {
        path: path.to_string(),
        data: Some(vec![b'd'; data_bytes]),
        acl: vec![
            Acl {
                perms: perms::ALL,
                id: Id::new("digest", "app:4x7b8Zt0Yq1pQdBqz0nmJ+1ZfSs="),
            },
            Acl {
                perms: perms::READ,
                id: Id::new("world", "anyone"),
            },
        ],
        flags: 0,
        ttl: -1,
    }
}

/// Encodes `request` as a client sends it and checks that it decodes back.
fn request_frame(xid: i32, request: Request) -> Vec<u8> {
    let header = RequestHeader {
        xid,
        op: proto::request_op(&request).code(),
    };
    let mut frame = Vec::new();
    proto::encode_request(&header, &request, &mut frame);
    assert_eq!(
        proto::decode_request(body(&frame)),
        Ok(Decoded::Request(header, request)),
        "request frame does not round-trip"
    );
    frame
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));

    let connect = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0x1_0000_0042,
        timeout_ms: 30_000,
        session_id: 0x1234_5678_9abc,
        passwd: vec![7; 16],
        read_only: Some(false),
    };
    let mut frame = Vec::new();
    proto::encode_connect_request(&connect, &mut frame);
    assert_eq!(proto::decode_connect(body(&frame)), Ok(connect));
    group.bench_function("connect", |b| {
        b.iter(|| proto::decode_connect(black_box(body(&frame))))
    });

    let requests = [
        (
            "get_data",
            Request::GetData {
                path: "/app/config/node-0042".to_string(),
                watch: true,
            },
        ),
        (
            "set_data_100b",
            Request::SetData {
                path: "/app/config/node-0042".to_string(),
                data: Some(vec![b'v'; 100]),
                version: 17,
            },
        ),
        (
            "create_acl",
            Request::Create {
                op: OpCode::Create,
                request: create_request("/app/locks/lock-", 32),
            },
        ),
        (
            "multi_6_ops",
            Request::Multi(vec![
                MultiOp::Check {
                    path: "/app/leader".to_string(),
                    version: 3,
                },
                MultiOp::Create {
                    op: OpCode::Create,
                    request: create_request("/app/queue/item-", 64),
                },
                MultiOp::SetData {
                    path: "/app/queue".to_string(),
                    data: Some(vec![b'q'; 100]),
                    version: 41,
                },
                MultiOp::Delete {
                    path: "/app/queue/item-0000000007".to_string(),
                    version: -1,
                },
                MultiOp::Create {
                    op: OpCode::Create2,
                    request: create_request("/app/queue/item-", 64),
                },
                MultiOp::SetData {
                    path: "/app/leader".to_string(),
                    data: Some(vec![b'l'; 16]),
                    version: 3,
                },
            ]),
        ),
        (
            "set_watches_8_paths",
            Request::SetWatches {
                relative_zxid: 0x1_0000_1234,
                data: vec![
                    "/app/config".to_string(),
                    "/app/config/node-0001".to_string(),
                    "/app/config/node-0002".to_string(),
                ],
                exist: vec!["/app/leader".to_string(), "/app/ready".to_string()],
                child: vec![
                    "/app/queue".to_string(),
                    "/app/locks".to_string(),
                    "/app/members".to_string(),
                ],
                persistent: Vec::new(),
                persistent_recursive: Vec::new(),
            },
        ),
    ];
    for (name, request) in requests {
        let frame = request_frame(42, request);
        group.bench_function(name, |b| {
            b.iter(|| proto::decode_request(black_box(body(&frame))))
        });
    }
    group.finish();
}

/// Encodes `reply` as the answer to `op` and checks that it decodes back.
fn check_reply(op: OpCode, reply: &Reply) {
    let mut frame = Vec::new();
    proto::encode_reply(42, 0x1_0000_1234, reply, &mut frame);
    let header = ReplyHeader {
        xid: 42,
        zxid: 0x1_0000_1234,
        err: 0,
    };
    assert_eq!(
        proto::decode_reply(op, body(&frame)),
        Ok((header, reply.clone())),
        "{op:?} reply does not round-trip"
    );
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(64 * 1024);

    let children = (0..100).map(|i| format!("member-{i:010}")).collect();
    let replies = [
        (
            "get_data_reply_100b",
            OpCode::GetData,
            Reply::ok(Response::GetData {
                data: Some(vec![b'v'; 100]),
                stat: stat(),
            }),
        ),
        (
            "create_reply",
            OpCode::Create,
            Reply::ok(Response::Create {
                path: "/app/locks/lock-0000000042".to_string(),
            }),
        ),
        (
            "get_children2_reply_100",
            OpCode::GetChildren2,
            Reply::ok(Response::GetChildren2 {
                children,
                stat: stat(),
            }),
        ),
        (
            "multi_reply_6_results",
            OpCode::Multi,
            Reply::ok(Response::Multi(vec![
                MultiResult::Check,
                MultiResult::Create {
                    path: "/app/queue/item-0000000042".to_string(),
                },
                MultiResult::SetData { stat: stat() },
                MultiResult::Delete,
                MultiResult::Create2 {
                    path: "/app/queue/item-0000000043".to_string(),
                    stat: stat(),
                },
                MultiResult::SetData { stat: stat() },
            ])),
        ),
    ];
    for (name, op, reply) in &replies {
        check_reply(*op, reply);
        group.bench_function(*name, |b| {
            b.iter(|| {
                out.clear();
                proto::encode_reply(42, 0x1_0000_1234, black_box(reply), &mut out);
                black_box(&out);
            })
        });
    }

    let event = WatcherEvent {
        event_type: EventType::NodeDataChanged,
        state: KeeperState::SyncConnected,
        path: "/app/config/node-0042".to_string(),
    };
    let mut frame = Vec::new();
    proto::encode_event(&event, &mut frame);
    assert_eq!(proto::decode_event(body(&frame)), Ok(event.clone()));
    group.bench_function("watch_event", |b| {
        b.iter(|| {
            out.clear();
            proto::encode_event(black_box(&event), &mut out);
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Each record costs about a microsecond or less, so short runs are
    // enough; without plots the whole file takes under a minute.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .without_plots();
    targets = decode, encode
}
criterion_main!(benches);
