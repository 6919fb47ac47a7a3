//! The read budget (`engine::read::ReadLimits::max_response_bytes`) counts
//! exactly the bytes `net::proto` encodes a reply to: for every kind of read
//! reply, a budget of the encoded frame body answers it and one byte less
//! refuses it. The engine cannot see the codec, so this is where the two
//! are held together.

use engine::apply::apply;
use engine::prep::{Prep, PrepConfig};
use engine::read::{read_bounded, ReadContext, ReadLimits, OVER_BUDGET};
use engine::request::{CreateRequest, MultiOp, Reply, Request};
use engine::tree::DataTree;
use engine::types::{Acl, AddWatchMode, ErrorCode, Id, OpCode, SessionId, WatcherId, Zxid};
use engine::watch::WatchRegistry;
use net::jute::FRAME_PREFIX_BYTES;
use net::proto::encode_reply;

const SESSION: SessionId = SessionId(0x100);

fn tree() -> DataTree {
    let mut tree = DataTree::new();
    let mut prep = Prep::new(Zxid::ZERO, PrepConfig::default());
    let txn = prep.prep_create_session(SESSION, 30_000, 1);
    apply(&mut tree, &txn);
    let creates = [
        ("/a", Some(vec![1u8; 300]), 0),
        ("/a/x", None, 0),
        ("/a/yy", Some(Vec::new()), 0),
        ("/e", None, 1),
        ("/e2", None, 1),
    ];
    for (path, data, flags) in creates {
        let request = Request::Create {
            op: OpCode::Create,
            request: CreateRequest {
                path: path.to_string(),
                data,
                acl: Acl::open_unsafe(),
                flags,
                ttl: -1,
            },
        };
        let auth = [Id::new("ip", "127.0.0.1")];
        let txn = prep.prep(&tree, SESSION, 1, &auth, &request, 2).unwrap();
        let outcome = apply(&mut tree, &txn);
        assert_eq!(outcome.reply.err, ErrorCode::Ok, "{path}");
        prep.applied(txn.zxid);
    }
    tree
}

fn answer(tree: &DataTree, request: &Request, max_response_bytes: usize) -> Reply {
    let auth = [Id::new("ip", "127.0.0.1"), Id::new("digest", "user:hash")];
    let watches = WatchRegistry::new();
    let ctx = ReadContext {
        session: SESSION,
        auth: &auth,
        watcher: WatcherId(1),
        watches: &watches,
    };
    let limits = ReadLimits {
        max_response_bytes,
        max_multi_ops: 100,
    };
    read_bounded(tree, &ctx, request, &limits)
}

#[test]
fn budget_matches_the_encoded_size_of_every_read_reply() {
    let tree = tree();
    let path = |p: &str| p.to_string();
    let requests = [
        Request::Exists {
            path: path("/a"),
            watch: false,
        },
        Request::GetData {
            path: path("/a"),
            watch: false,
        },
        Request::GetData {
            path: path("/a/x"),
            watch: false,
        },
        Request::GetAcl { path: path("/a") },
        Request::GetChildren {
            path: path("/a"),
            watch: false,
        },
        Request::GetChildren2 {
            path: path("/a"),
            watch: false,
        },
        Request::Sync { path: path("/a") },
        Request::MultiRead(vec![
            MultiOp::GetData { path: path("/a") },
            MultiOp::GetChildren { path: path("/a") },
            MultiOp::GetData {
                path: path("/missing"),
            },
            MultiOp::GetData { path: path("/a/x") },
        ]),
        Request::GetEphemerals { prefix: path("/") },
        Request::GetAllChildrenNumber { path: path("/a") },
        Request::AddWatch {
            path: path("/a"),
            mode: AddWatchMode::Persistent,
        },
        Request::WhoAmI,
    ];
    for request in &requests {
        let unbounded = answer(&tree, request, usize::MAX);
        assert_eq!(unbounded.err, ErrorCode::Ok, "{request:?}");
        let mut frame = Vec::new();
        encode_reply(7, 9, &unbounded, &mut frame);
        let body_bytes = frame.len() - FRAME_PREFIX_BYTES;
        assert_eq!(
            answer(&tree, request, body_bytes),
            unbounded,
            "a budget of exactly the reply's {body_bytes} bytes answers {request:?}"
        );
        assert_eq!(
            answer(&tree, request, body_bytes - 1),
            Reply::error(OVER_BUDGET),
            "one byte less refuses {request:?}"
        );
    }
}
