//! The znode tree under the two threads that touch it: lookups and reads as
//! the I/O threads serve them (`DataTree::get`, `read::read`), and writes as
//! the applier makes them (`apply::apply` of a prepped txn). The tree holds
//! 100,000 znodes of 100 bytes: 100 parents of 1,000 children each.
//!
//! Txns come from the real `Prep`, made outside the timed region
//! (`iter_batched_ref`), so the write figures are apply alone: the tree
//! change, the reply with its stat and the list of watches to fire. Each
//! bench checks its answer once before timing, so none can silently measure
//! an error path, and the tree's invariants are checked after the writes.
//!
//! `cargo bench -p engine --bench tree`; a full run takes about 20 seconds.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::apply::apply;
use engine::prep::{Prep, PrepConfig};
use engine::read::{self, ReadContext};
use engine::request::{CreateRequest, Reply, Request, Response};
use engine::tree::DataTree;
use engine::txn::Txn;
use engine::types::{Acl, Id, OpCode, SessionId, WatcherId, Zxid};
use engine::watch::WatchRegistry;

const PARENTS: usize = 100;
const CHILDREN_PER_PARENT: usize = 1_000;
const DATA_BYTES: usize = 100;
const SESSION: SessionId = SessionId(1);
const NOW_MS: i64 = 1_700_000_000_000;

fn child_path(parent: usize, child: usize) -> String {
    format!("/p{parent:03}/n{child:04}")
}

/// The leaves' paths, packed end to end at a fixed width: a random pick
/// costs what reading a path from a fresh request frame does, rather than a
/// cache miss on a scattered `String` that the server would not have.
struct Leaves {
    packed: String,
    /// xorshift64 state: random picks without a dependency; a fixed seed
    /// keeps runs comparable.
    rng: u64,
}

impl Leaves {
    const PATH_BYTES: usize = "/p000/n0000".len();

    fn new() -> Leaves {
        let mut packed = String::with_capacity(PARENTS * CHILDREN_PER_PARENT * Self::PATH_BYTES);
        for parent in 0..PARENTS {
            for child in 0..CHILDREN_PER_PARENT {
                let path = child_path(parent, child);
                assert_eq!(path.len(), Self::PATH_BYTES);
                packed.push_str(&path);
            }
        }
        Leaves {
            packed,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn len(&self) -> usize {
        self.packed.len() / Self::PATH_BYTES
    }

    fn path(&self, index: usize) -> &str {
        &self.packed[index * Self::PATH_BYTES..(index + 1) * Self::PATH_BYTES]
    }

    fn random(&mut self) -> &str {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.path((self.rng % self.len() as u64) as usize)
    }
}

/// A tree and the prep stage that feeds it, as the sequencer and applier
/// hold them.
struct Scene {
    tree: DataTree,
    prep: Prep,
}

impl Scene {
    /// Builds the tree through prep and apply, like a server taking the
    /// creates from clients.
    fn new() -> Scene {
        let mut scene = Scene {
            tree: DataTree::new(),
            prep: Prep::new(Zxid::ZERO, PrepConfig::default()),
        };
        for parent in 0..PARENTS {
            scene.write(&create(&format!("/p{parent:03}")));
            for child in 0..CHILDREN_PER_PARENT {
                scene.write(&create(&child_path(parent, child)));
            }
        }
        scene
    }

    /// Preps `request` against the tree and every txn prepped but not yet
    /// applied, as the sequencer does.
    fn prep(&mut self, request: &Request) -> Txn {
        self.prep.applied(self.tree.last_zxid());
        let txn = self
            .prep
            .prep(&self.tree, SESSION, 0, &[], request, NOW_MS)
            .expect("a write");
        assert!(!txn.op.is_error(), "prep refused {request:?}: {:?}", txn.op);
        txn
    }

    fn write(&mut self, request: &Request) -> Reply {
        let txn = self.prep(request);
        apply(&mut self.tree, &txn).reply
    }
}

fn create(path: &str) -> Request {
    Request::Create {
        op: OpCode::Create,
        request: CreateRequest {
            path: path.to_string(),
            data: Some(vec![b'd'; DATA_BYTES]),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    }
}

fn set_data(path: &str) -> Request {
    Request::SetData {
        path: path.to_string(),
        data: Some(vec![b's'; DATA_BYTES]),
        version: -1,
    }
}

fn lookups(c: &mut Criterion, scene: &Scene, leaves: &mut Leaves) {
    let mut group = c.benchmark_group("tree");
    group.throughput(Throughput::Elements(1));
    let tree = &scene.tree;
    let system_nodes = DataTree::new().node_count();
    assert_eq!(tree.node_count(), system_nodes + PARENTS + leaves.len());
    assert!((0..leaves.len()).all(|index| tree.contains(leaves.path(index))));

    group.bench_function("get_stat_random_of_100k", |b| {
        b.iter(|| tree.get(black_box(leaves.random())).map(|node| node.stat()))
    });
    group.finish();
}

fn reads(c: &mut Criterion, scene: &Scene, leaves: &mut Leaves) {
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(1));
    let tree = &scene.tree;
    let watches = WatchRegistry::new();
    // What the reactor passes for a connection that has not authenticated.
    let auth = [Id::new("ip", "127.0.0.1")];
    let context = ReadContext {
        session: SESSION,
        auth: &auth,
        watcher: WatcherId::new(0, 1),
        watches: &watches,
    };

    // One request whose path is rewritten in place each iteration: a
    // decoded request, without the decoder's allocation.
    let mut request = Request::GetData {
        path: leaves.path(0).to_string(),
        watch: false,
    };
    let reply = read::read(tree, &context, &request);
    assert!(
        matches!(&reply.body, Response::GetData { data: Some(data), .. } if data.len() == DATA_BYTES),
        "{reply:?}"
    );
    group.bench_function("get_data_random_of_100k", |b| {
        b.iter(|| {
            if let Request::GetData { path, .. } = &mut request {
                path.clear();
                path.push_str(leaves.random());
            }
            read::read(tree, &context, black_box(&request))
        })
    });

    let request = Request::GetChildren2 {
        path: "/p007".to_string(),
        watch: false,
    };
    let reply = read::read(tree, &context, &request);
    assert!(
        matches!(&reply.body, Response::GetChildren2 { children, .. } if children.len() == CHILDREN_PER_PARENT),
        "{:?}",
        reply.err
    );
    group.bench_function("get_children2_of_1000", |b| {
        b.iter(|| read::read(tree, &context, black_box(&request)))
    });
    group.finish();
}

fn writes(c: &mut Criterion, scene: Scene, leaves: &mut Leaves) {
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(1));
    let scene = RefCell::new(scene);

    let reply = scene.borrow_mut().write(&set_data(leaves.path(0)));
    assert!(
        matches!(reply.body, Response::Stat(stat) if stat.version == 1),
        "{reply:?}"
    );
    group.bench_function("set_data_100b_random_of_100k", |b| {
        b.iter_batched_ref(
            || scene.borrow_mut().prep(&set_data(leaves.random())),
            |txn| apply(&mut scene.borrow_mut().tree, txn),
            BatchSize::SmallInput,
        )
    });

    // One create and its delete per iteration, under a parent of 1,000
    // children, so the tree is the same size after every iteration.
    let path = child_path(0, CHILDREN_PER_PARENT);
    let mut create_then_delete = || {
        let mut scene = scene.borrow_mut();
        let create = scene.prep(&create(&path));
        let delete = scene.prep(&Request::Delete {
            path: path.clone(),
            version: -1,
        });
        [create, delete]
    };
    let replies = create_then_delete().map(|txn| apply(&mut scene.borrow_mut().tree, &txn).reply);
    assert_eq!(
        replies,
        [
            Reply::ok(Response::Create { path: path.clone() }),
            Reply::ok(Response::Empty)
        ]
    );
    group.bench_function("create_delete_100b", |b| {
        b.iter_batched_ref(
            &mut create_then_delete,
            |[create, delete]| {
                let mut scene = scene.borrow_mut();
                (
                    apply(&mut scene.tree, create),
                    apply(&mut scene.tree, delete),
                )
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let scene = scene.into_inner();
    assert_eq!(scene.tree.check_invariants(), Ok(()));
    assert!(!scene.tree.contains(&path));
}

fn tree(c: &mut Criterion) {
    let scene = Scene::new();
    let mut leaves = Leaves::new();
    lookups(c, &scene, &mut leaves);
    reads(c, &scene, &mut leaves);
    writes(c, scene, &mut leaves);
}

criterion_group! {
    name = benches;
    // Short runs are enough for operations of a microsecond or so, and
    // without plots the whole file takes about 20 seconds.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .without_plots();
    targets = tree
}
criterion_main!(benches);
