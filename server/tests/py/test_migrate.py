"""zk-migrate against a real Apache ZooKeeper 3.8 (Debian's jar).

What it is: the end-to-end proof of `zk-migrate import` and `export`. Apache
runs a recorded workload (creates, sets, deletes, multis that pass and fail,
sequential nodes, ephemerals of a session left open and of one closed,
digest ACLs, a container, a TTL node, a quota made the way zkCli's setquota
makes it) with a small snapCount, so its dataDir holds several snapshots and
logs; it is killed with -9, so the log has a tail after the newest snapshot.
A copy of its dataDir is imported into ours on each storage backend; our
server on the migrated directory and Apache on its own directory again are
then compared node by node (data, stat, ACL, children). Export goes the other
way: our migrated directory, as an Apache snapshot, is what Apache 3.8 starts
from, serving the same tree.

What it is not: a test of the decoders' handling of damage (the Rust unit
tests in tools/src/migrate and tools/tests/migrate.rs do that).

Invariant it keeps: every loop is bounded (node walks by a node budget,
waits by deadlines); every server started is stopped by a finalizer; the
Apache directory a tool reads is a copy taken while nothing runs on it.
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

import harness
import zkraw
from zkraw import Err, Mode, Perm, ACL

# Apache snapshots every snapCount/2 + random(snapCount/2) txns: a few
# hundred txns give several snapshots and log files.
SNAP_COUNT = "50"
# The live session must outlast kill, import and both restarts.
LIVE_TIMEOUT_MS = 40000
# Node walks stop here: the workload makes a few hundred nodes.
MAX_NODES = 5000


def tool(name):
    directory = os.environ.get("ZK_TOOLS_DIR") or os.path.dirname(harness.ours_bin())
    path = os.path.join(directory, name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        harness.missing("%s at %s (build with `cargo build -p tools --bins`)" % (name, path))
    return path


def run(argv, timeout=120):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def ok(reply, what):
    assert reply.err == Err.OK, "%s: %r" % (what, reply)
    return reply


@pytest.fixture
def servers():
    started = []

    def make(kind, **kw):
        kw.setdefault("max_session_timeout", 60000)
        s = harness.Server(kind, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def workload(apache):
    """The recorded workload. Returns (live client, its ephemerals). The
    live client is left connected: its session is live when Apache dies."""
    live = apache.raw(timeout_ms=LIVE_TIMEOUT_MS)
    c = apache.raw(timeout_ms=30000)
    ok(c.create("/app", b"root of the app"), "create /app")
    ok(c.create("/app/cfg", b"v0"), "create /app/cfg")
    for i in range(1, 6):
        ok(c.set_data("/app/cfg", b"v%d" % i), "set /app/cfg")
    ok(c.create("/app/null", None), "create with null data")
    ok(c.create("/app/empty", b""), "create with empty data")
    # Sequential children, some deleted: the parent's cversion is the
    # sequence counter the next create must continue from.
    ok(c.create("/app/jobs", b""), "create /app/jobs")
    for i in range(8):
        ok(c.create("/app/jobs/job-", b"job %d" % i, flags=Mode.PERSISTENT_SEQUENTIAL), "seq")
    for i in (0, 3, 5):
        ok(c.delete("/app/jobs/job-%010d" % i), "delete job")
    # A multi that applies and one that fails (its txn is an error multi).
    ok(c.multi([
        zkraw.op_create("/app/m1", b"from multi"),
        zkraw.op_create2("/app/m2", b"from multi 2"),
        zkraw.op_set_data("/app/cfg", b"set in multi"),
        zkraw.op_delete("/app/empty"),
        zkraw.op_check("/app", 0),
    ]), "multi")
    failed = c.multi([
        zkraw.op_create("/app/never", b"x"),
        zkraw.op_check("/app/cfg", 99),
    ])
    assert failed.err != Err.OK or any(r.err != Err.OK for r in failed.results), failed
    # Ephemerals: of the live session (kept), and of a closed one (gone).
    ok(c.create("/eph", b""), "create /eph")
    ok(live.create("/eph/live", b"still here", flags=Mode.EPHEMERAL), "live ephemeral")
    seq = ok(live.create("/eph/live-seq-", b"", flags=Mode.EPHEMERAL_SEQUENTIAL), "live eph seq")
    closed = apache.raw(timeout_ms=30000)
    ok(closed.create("/eph/closed", b"gone", flags=Mode.EPHEMERAL), "closed ephemeral")
    closed.close_session()
    closed.close()
    # ACLs: digest auth, a node only its creator may touch, and setACL.
    secure = apache.raw(timeout_ms=30000)
    ok(secure.auth("digest", "alice:secret"), "auth")
    ok(secure.create("/secure", b"alice only", acl=zkraw.CREATOR_ALL_ACL), "create /secure")
    ok(secure.create("/secure/child", b"c", acl=[ACL(Perm.READ, "world", "anyone"),
                                               ACL(Perm.ALL, "auth", "")]), "child")
    ok(c.create("/readonly", b"r"), "create /readonly")
    ok(c.set_acl("/readonly", [ACL(Perm.READ, "world", "anyone")]), "setACL")
    secure.shutdown()
    # A container with a child (not reapable) and a TTL node far from expiry.
    ok(c.create_container("/cont", b"container"), "container")
    ok(c.create("/cont/item", b"keeps it"), "container child")
    ok(c.create_ttl("/ttl", b"ttl node", ttl=3600 * 1000), "ttl")
    # A quota the way zkCli's setquota writes it.
    ok(c.create("/zookeeper/quota/app", b""), "quota dir")
    ok(c.create("/zookeeper/quota/app/zookeeper_limits", b"count=1000,bytes=-1"), "limits")
    ok(c.create("/zookeeper/quota/app/zookeeper_stats", b"count=0,bytes=0"), "stats")
    # Bulk writes: past several snapshots, and a tail after the last one.
    ok(c.create("/bulk", b""), "create /bulk")
    for i in range(120):
        ok(c.create("/bulk/n%03d" % i, b"value %d" % i), "bulk create")
    for i in range(0, 120, 3):
        ok(c.set_data("/bulk/n%03d" % i, b"changed %d" % i), "bulk set")
    for i in range(0, 120, 7):
        ok(c.delete("/bulk/n%03d" % i), "bulk delete")
    for i in range(5):
        ok(c.set_data("/app/cfg", b"tail %d" % i), "tail set")
        ok(c.create("/app/tail%d" % i, b"after the last snapshot"), "tail create")
    # A failed multi in the tail: replayed, it must change nothing.
    c.multi([zkraw.op_create("/app/tail-never", b"x"), zkraw.op_check("/app", 77)])
    c.shutdown()
    return live, ["/eph/live", seq.path]


def walk(server):
    """Every node of the server's tree: {path: (data, stat, acl, children)}.
    Reads only; bounded by MAX_NODES."""
    c = server.raw(timeout_ms=30000)
    try:
        # The workload's digest user may read every node it made.
        ok(c.auth("digest", "alice:secret"), "auth for the walk")
        out = {}
        todo = ["/"]
        while todo:
            assert len(out) < MAX_NODES, "tree larger than the workload makes"
            path = todo.pop()
            data = c.get_data(path)
            acl = c.get_acl(path)
            kids = c.get_children(path)
            if data.err == Err.NO_NODE:
                continue
            ok(data, "getData %s" % path)
            ok(acl, "getACL %s" % path)
            ok(kids, "getChildren %s" % path)
            out[path] = (data.data, data.stat, sorted(acl.acl), sorted(kids.children))
            for child in kids.children:
                todo.append(("/" if path == "/" else path + "/") + child)
        return out, c.last_zxid()
    finally:
        c.shutdown()


def compare(expected, got, what):
    """Node-by-node comparison; lists every difference, not just the first."""
    problems = []
    for path in sorted(set(expected) | set(got)):
        if path not in got:
            problems.append("%s: missing" % path)
        elif path not in expected:
            problems.append("%s: extra" % path)
        elif expected[path] != got[path]:
            e, g = expected[path], got[path]
            for name, a, b in zip(("data", "stat", "acl", "children"), e, g):
                if a != b:
                    problems.append("%s: %s: Apache %r, %s %r" % (path, name, a, what, b))
    assert not problems, "%s differs from Apache:\n%s" % (what, "\n".join(problems))


def apache_dir_after_workload(servers, workdir):
    """Runs the workload on Apache, kills it with -9 and returns (copy of
    its dataDir, the Apache server (stopped), the live session)."""
    apache = servers(harness.REFERENCE, extra={"snapCount": SNAP_COUNT})
    apache.start()
    live, ephemerals = workload(apache)
    session = (live.session_id, live.passwd)
    apache.kill9()
    live.close()
    copy = os.path.join(workdir, "apache-data")
    shutil.copytree(apache.data_dir, copy)
    files = os.listdir(os.path.join(copy, "version-2"))
    assert sum(f.startswith("snapshot.") for f in files) >= 2, files
    assert sum(f.startswith("log.") for f in files) >= 2, files
    return copy, apache, session, ephemerals


def test_import_serves_the_same_tree_as_apache(servers, tmp_path):
    migrate = tool("zk-migrate")
    harness.require(harness.OURS)
    copy, apache, (session, passwd), ephemerals = apache_dir_after_workload(servers, str(tmp_path))

    migrated = {}
    for backend in harness.storage_backends():
        to = os.path.join(str(tmp_path), "ours-%s" % backend)
        code, out = run([migrate, "import", "--from", copy, "--to", to, "--backend", backend])
        assert code == 0, "import (%s) exit %d:\n%s" % (backend, code, out)
        assert "digest check(s) passed" in out, out
        assert "migrated_sessions" in out, out
        migrated[backend] = to

    # Apache on its own directory again: the reference tree.
    apache.restart()
    reference, apache_zxid = walk(apache)
    for path in ephemerals:
        assert reference[path][1].ephemeralOwner == session, (path, reference[path])

    for backend, to in migrated.items():
        ours = servers(harness.OURS, backend=backend)
        ours.start(from_data=to)
        tree, zxid = walk(ours)
        compare(reference, tree, "ours-%s" % backend)
        # The live session's ephemerals survived, owned by it.
        for path in ephemerals:
            assert tree[path][1].ephemeralOwner == session, (backend, path, tree[path])
        assert zxid >= max(s.mzxid for _, s, _, _ in tree.values()), zxid
        # Sequence counters carry on where Apache left them.
        c = ours.raw(timeout_ms=10000)
        try:
            r = ok(c.create("/app/jobs/job-", b"next", flags=Mode.PERSISTENT_SEQUENTIAL), "seq")
            assert r.path == "/app/jobs/job-0000000008", r
            # Digest ACLs still hold: without auth, no write; with it, yes.
            assert c.set_data("/secure", b"x").err == Err.NO_AUTH
            ok(c.auth("digest", "alice:secret"), "auth")
            ok(c.set_data("/secure", b"alice again"), "write with auth")
        finally:
            c.shutdown()
        # The client of a migrated session reconnects with its Apache
        # password and keeps the session (and so its ephemerals); it is
        # handed a password of ours, and a wrong one is still refused.
        probe = ours.raw_unconnected()
        try:
            resp = probe.connect(timeout_ms=LIVE_TIMEOUT_MS, session_id=session, passwd=passwd)
            assert resp.session_id == session and resp.timeout > 0, resp
            assert resp.passwd != passwd, "handed Apache's password back"
            for path in ephemerals:
                assert ok(probe.exists(path), "ephemeral").stat.ephemeralOwner == session
        finally:
            probe.close()
        impostor = ours.raw_unconnected()
        try:
            wrong = bytes(b ^ 1 for b in passwd)
            resp = impostor.connect(timeout_ms=LIVE_TIMEOUT_MS, session_id=session, passwd=wrong)
            assert resp.session_id == 0 and resp.timeout == 0, resp
        finally:
            impostor.close()
        ours.kill9()


def test_export_is_what_apache_starts_from(servers, tmp_path):
    migrate = tool("zk-migrate")
    harness.require(harness.OURS)
    copy, apache, (session, _), ephemerals = apache_dir_after_workload(servers, str(tmp_path))
    apache.restart()
    reference, _ = walk(apache)
    apache.kill9()

    for backend in harness.storage_backends():
        ours_dir = os.path.join(str(tmp_path), "ours-%s" % backend)
        code, out = run([migrate, "import", "--from", copy, "--to", ours_dir,
                         "--backend", backend])
        assert code == 0, out
        # Our server runs on it and takes writes, which the export carries.
        ours = servers(harness.OURS, backend=backend)
        ours.start(from_data=ours_dir)
        c = ours.raw(timeout_ms=10000)
        ok(c.create("/written-by-ours", b"after the migration"), "create on ours")
        c.shutdown()
        ours_tree, _ = walk(ours)
        ours.kill9()

        exported = os.path.join(str(tmp_path), "exported-%s" % backend)
        code, out = run([migrate, "export", "--from", ours.data_dir, "--to", exported])
        assert code == 0, "export (%s) exit %d:\n%s" % (backend, code, out)
        snaps = [f for f in os.listdir(os.path.join(exported, "version-2"))
                 if f.startswith("snapshot.")]
        assert len(snaps) == 1, snaps

        back = servers(harness.REFERENCE)
        back.start(from_data=exported)
        tree, _ = walk(back)
        compare(ours_tree, tree, "Apache on the export")
        assert "/written-by-ours" in tree
        for path in ephemerals:
            assert tree[path][1].ephemeralOwner == session, (path, tree[path])
        with open(back.log_path, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        assert "Digests are not matching" not in log, log[-4000:]
        back.kill9()
