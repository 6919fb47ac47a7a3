"""Crash and corruption tests of our durable server (DESIGN invariant 7).

What it is: tests that kill -9 `zk-server` under concurrent write load and
check every acknowledged write after the restart; that cut the newest WAL
segment inside its last record (a torn tail) and check the server starts
with everything but that record; that flip one bit in the middle of the log
and check start-up is refused with a message naming the file, the offset and
`zk-snaprepair`, and that `zk-snaprepair repair --apply` then recovers what
it says it recovers; that snapshots taken under load restore the same tree;
and that sessions outlive a restart and still expire.

What it is not: a test of the WAL or snapshot crates' internals (their unit
tests do that), nor of what a client sees on a clean restart
(test_durability.py). Everything except the session test is about our
storage, so it runs on `ours` only; the session test runs on both servers.

Invariant it keeps: randomness comes from one seeded RNG per test, printed
(set ZK_CRASH_SEED to replay a run); damaged data directories are always
copies or belong to a server the test owns; every server started is stopped
by a finalizer.

The WAL layout parsed here (32-byte segment header, then frames of
len u32 | crc32c u32 | zxid u64 | payload, little-endian, len = 8 +
payload length, zeros after the last record) is wal/FORMAT.md's.
"""

import os
import random
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time

import pytest

import harness
import zkraw
from conftest import start_server
from zkraw import Err, Mode, ok

TOOLS_DIR = os.path.join(harness.REPO_ROOT, "target", "debug")
SEGMENT_HEADER = 32
FRAME_HEADER = 16


def _seed(what):
    raw = os.environ.get("ZK_CRASH_SEED")
    seed = int(raw) if raw else random.SystemRandom().randrange(1 << 32)
    print("%s: seed %d (replay with ZK_CRASH_SEED=%d)" % (what, seed, seed))
    return seed


def _require_ours():
    if harness.OURS not in harness.targets():
        pytest.skip("ZK_TARGETS excludes ours (these tests are about our storage)")


# A small preallocation (KB) where a test restarts many times: start-up
# scans each segment's preallocated zeros, which costs about a second per
# 64 MiB in a debug build; a small step also makes the log grow past its
# preallocated end many times under the crash loop.
SMALL_PREALLOC = {"preAllocSize": "256"}


@pytest.fixture
def ours(request):
    """A fresh server of ours per test (crash tests own their data dir),
    with the default preallocation."""
    _require_ours()
    return start_server(request, harness.OURS)


@pytest.fixture
def ours_small(request):
    """A fresh server of ours with SMALL_PREALLOC."""
    _require_ours()
    return start_server(request, harness.OURS, extra=SMALL_PREALLOC)


def tool(name):
    """Path of one of the `tools` crate's binaries; a missing one skips
    (fails with CI=true)."""
    path = os.path.join(TOOLS_DIR, name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        harness.missing("%s at %s (build with `cargo build -p tools`)" % (name, path))
    return path


def run_tool(argv, timeout=60):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


# ---------------------------------------------------------------- WAL parsing


def segments(data_dir):
    return sorted(f for f in os.listdir(data_dir)
                  if re.fullmatch(r"log\.[0-9a-f]{16}", f))


def records(path):
    """(offset, total frame bytes, zxid) of every record in a segment, read
    per wal/FORMAT.md up to the first zero length (or short frame)."""
    with open(path, "rb") as f:
        b = f.read()
    out = []
    off = SEGMENT_HEADER
    while off + FRAME_HEADER <= len(b):
        length, _crc, zxid = struct.unpack_from("<IIQ", b, off)
        if length == 0 or off + 8 + length > len(b):
            break
        out.append((off, 8 + length, zxid))
        off += 8 + length
    return out


# ---------------------------------------------------------------- tree reads


def pipelined(c, requests, chunk=200):
    """Send (op, body) requests in windows of `chunk` and return the
    replies in order (one session answers in order: invariant 1)."""
    out = []
    for i in range(0, len(requests), chunk):
        xids = [c.submit(op, body) for op, body in requests[i:i + chunk]]
        out.extend(c.wait_reply(x, timeout=30) for x in xids)
    return out


def get_many(c, paths):
    """path -> (data, stat) for existing nodes, None for NoNode."""
    replies = pipelined(c, [(zkraw.Op.GET_DATA, zkraw.body_path_watch(p, False))
                            for p in paths])
    out = {}
    for p, r in zip(paths, replies):
        if r.err == Err.NO_NODE:
            out[p] = None
        else:
            ok(r)
            out[p] = (r.data, r.stat)
    return out


def dump(c, root):
    """Every node under and including `root`: path -> (data, stat, acl)."""
    out = {}
    todo = [root]
    while todo:
        path = todo.pop()
        r = ok(c.get_data(path))
        acl = ok(c.get_acl(path)).acl
        out[path] = (r.data, r.stat, acl)
        kids = ok(c.get_children(path)).children
        base = "" if path == "/" else path
        todo.extend(base + "/" + k for k in kids)
    return out


def child(path, name):
    return path.rstrip("/") + "/" + name


# ---------------------------------------------------------------- 1. crash loop


class Writer(threading.Thread):
    """One client session writing as fast as the server answers, with up to
    `window` requests outstanding: creates of fresh names under `home`, and
    setData with the expected version on nodes in `owned` (path -> (data,
    version), known exactly). It stops at the first connection error (the
    kill) or after `max_ops`. Afterwards: `acked` holds the state every OK
    reply promised, `inflight` the requests sent without a reply, `errors`
    any non-OK reply (each one a bug)."""

    def __init__(self, server, home, owned, rng, max_ops, tag):
        super().__init__(daemon=True)
        self.client = server.raw(timeout_ms=30000)
        self.home = home
        self.owned = dict(owned)
        self.rng = rng
        self.max_ops = max_ops
        self.tag = tag
        self.window = rng.randint(1, 4)
        self.go = threading.Event()
        self.acked = {}  # path -> (data, version)
        self.inflight = []  # ("create", path, data) / ("set", path, old, new)
        self.errors = []
        self.failure = None

    def _next_op(self, n, busy):
        idle = [p for p in self.owned if p not in busy]
        if idle and self.rng.random() < 0.4:
            path = self.rng.choice(idle)
            data, version = self.owned[path]
            new = b"%s-set%d" % (self.tag, n)
            body = zkraw.body_set_data(path, new, version)
            return zkraw.Op.SET_DATA, body, ("set", path, (data, version), (new, version + 1))
        path = child(self.home, "n%04d" % n)
        data = b"%s-n%04d" % (self.tag, n)
        body = zkraw.body_create(path, data)
        return zkraw.Op.CREATE, body, ("create", path, data)

    def run(self):
        c = self.client
        pending = []  # (xid, op record), in send order
        n = 0
        self.go.wait(30)
        try:
            while n < self.max_ops or pending:
                while n < self.max_ops and len(pending) < self.window:
                    busy = {rec[1] for _x, rec in pending}
                    op, body, rec = self._next_op(n, busy)
                    n += 1
                    pending.append((c.submit(op, body), rec))
                xid, rec = pending[0]
                reply = c.wait_reply(xid, timeout=20)
                pending.pop(0)
                if reply.err != Err.OK:
                    self.errors.append((rec, reply))
                    continue
                if rec[0] == "create":
                    state = (rec[2], 0)
                else:
                    state = rec[3]
                self.acked[rec[1]] = state
                self.owned[rec[1]] = state
        except (zkraw.Closed, zkraw.Timeout, OSError) as e:
            self.failure = e
        except Exception as e:  # a parse error: report it, do not hang
            self.failure = e
            self.errors.append(("exception", repr(e)))
        self.inflight = [rec for _x, rec in pending]
        c.close()


def test_crash_loop_keeps_every_acknowledged_write(ours_small, raw, prefix):
    ours = ours_small
    seed = _seed("crash loop")
    rng = random.Random(seed)
    iterations = 50
    c = raw(ours)
    ok(c.create(prefix, b""))
    # The exact state of every node under `prefix` that this test made,
    # known after each verification: path -> (data, version).
    model = {prefix: (b"", 0)}
    started = time.monotonic()
    totals = {"acked": 0, "inflight": 0, "inflight_present": 0, "restart_s": 0.0}
    for it in range(iterations):
        ctx = "iteration %d, seed %d" % (it, seed)
        c = raw(ours)
        nthreads = rng.randint(3, 4)
        homes = []
        for t in range(nthreads):
            home = child(prefix, "i%02dt%d" % (it, t))
            ok(c.create(home, b""))
            model[home] = (b"", 0)
            homes.append(home)
        c.close()
        # Older nodes are updated too (the model knows their versions), each
        # by one writer only so versions stay predictable.
        old = sorted(p for p in model if p.count("/") == prefix.count("/") + 2)
        rng.shuffle(old)
        old = old[: 8 * nthreads]
        writers = []
        for t, home in enumerate(homes):
            owned = {p: model[p] for p in old[t::nthreads]}
            writers.append(Writer(ours, home, owned, random.Random(rng.random()),
                                  max_ops=rng.randint(60, 250), tag=b"i%dt%d" % (it, t)))
        for w in writers:
            w.start()
        for w in writers:
            w.go.set()
        time.sleep(rng.uniform(0.0, 0.25))
        ours.kill9()
        for w in writers:
            w.join(30)
            assert not w.is_alive(), ctx
            assert not w.errors, "%s: non-OK replies %r" % (ctx, w.errors[:5])
        t0 = time.monotonic()
        ours.restart()
        totals["restart_s"] += time.monotonic() - t0

        # What must hold now: acked state for acknowledged writes; either
        # outcome for requests in flight at the kill.
        must = {}
        either = {}
        for w in writers:
            must.update(w.acked)
            for rec in w.inflight:
                if rec[0] == "create":
                    either[rec[1]] = (None, (rec[2], 0))
                else:
                    # A set in flight: the old state, or the new one. A
                    # later acked write of the same node cannot exist (the
                    # writer stops at the first error).
                    either[rec[1]] = (rec[2], rec[3])
            totals["inflight"] += len(w.inflight)
        totals["acked"] += len(must)
        d = raw(ours)
        state = get_many(d, sorted(set(must) | set(either)))
        for path, want in must.items():
            if path in either:
                continue
            got = state[path]
            assert got is not None, "%s: acknowledged %s lost" % (ctx, path)
            assert (got[0], got[1].version) == want, "%s: %s is %r, acknowledged %r" % (
                ctx, path, (got[0], got[1].version), want)
            model[path] = want
        for path, options in either.items():
            got = state[path]
            seen = None if got is None else (got[0], got[1].version)
            assert seen in options, "%s: in-flight %s is %r, expected one of %r" % (
                ctx, path, seen, options)
            if seen is None:
                model.pop(path, None)
            else:
                model[path] = seen
                totals["inflight_present"] += 1
        for path in must:
            if path not in either:
                model[path] = must[path]
        # Nothing exists that no client asked for: the children of every
        # directory the test made are exactly what the model says.
        dirs = sorted({p.rsplit("/", 1)[0] for p in model if p != prefix} | {prefix})
        replies = pipelined(d, [(zkraw.Op.GET_CHILDREN, zkraw.body_path_watch(p, False))
                                for p in dirs])
        for path, r in zip(dirs, replies):
            ok(r)
            want = sorted(p.rsplit("/", 1)[1] for p in model
                          if p != prefix and p.rsplit("/", 1)[0] == path)
            assert sorted(r.children) == want, "%s: children of %s differ: extra %r missing %r" % (
                ctx, path, sorted(set(r.children) - set(want)),
                sorted(set(want) - set(r.children)))
        d.close()

    # Finally every node's data and version, across all iterations.
    d = raw(ours)
    paths = sorted(model)
    state = get_many(d, paths)
    for path in paths:
        got = state[path]
        assert got is not None, "seed %d: %s lost by a later crash" % (seed, path)
        assert (got[0], got[1].version) == model[path], "seed %d: %s" % (seed, path)
    print("crash loop: %d iterations, %d acknowledged writes checked, %d in flight at a kill "
          "(%d of them kept), %d nodes, %.1fs (%.1fs restarting)" % (
              iterations, totals["acked"], totals["inflight"], totals["inflight_present"],
              len(model), time.monotonic() - started, totals["restart_s"]))
    assert totals["acked"] > iterations * 10, "too few writes to test anything: %r" % totals


# ---------------------------------------------------------------- 2. torn tail


def _write_then_kill(server, c, prefix, n):
    """`n` acknowledged writes under `prefix` (creates, then setData on
    every third), a dump of the subtree, then one more create whose record
    ends the log; kill -9. Returns (dump before the last write, last path,
    czxid of each node)."""
    ok(c.create(prefix, b"root"))
    czxid = {}
    for i in range(n):
        path = "%s/n%03d" % (prefix, i)
        czxid[path] = ok(c.create2(path, b"data-%03d" % i)).stat.czxid
        if i % 3 == 0:
            ok(c.set_data(path, b"set-%03d" % i, 0))
    before = dump(c, prefix)
    last = prefix + "/last"
    czxid[last] = ok(c.create2(last, b"the last record")).stat.czxid
    c.close()  # the socket only: no closeSession record after the last one
    server.kill9()
    return before, last, czxid


def _damaged_copy(src, seg_name, edit):
    """A copy of data dir `src` in a new temp dir whose segment `seg_name`
    went through `edit(bytearray) -> bytes`."""
    dst = tempfile.mkdtemp(prefix="zkcrash-")
    data = os.path.join(dst, "data")
    os.makedirs(data)
    for name in os.listdir(src):
        if name == seg_name:
            continue
        s = os.path.join(src, name)
        if os.path.isdir(s):
            shutil.copytree(s, os.path.join(data, name))
        else:
            shutil.copy2(s, os.path.join(data, name))
    with open(os.path.join(src, seg_name), "rb") as f:
        seg = bytearray(f.read())
    with open(os.path.join(data, seg_name), "wb") as f:
        f.write(edit(seg))
    return dst, data


def test_torn_tail_is_truncated_and_nothing_else_lost(request, ours_small, raw, prefix):
    seed = _seed("torn tail")
    rng = random.Random(seed)
    c = raw(ours_small)
    before, last, czxid = _write_then_kill(ours_small, c, prefix, 30)
    data_dir = ours_small.data_dir
    seg = segments(data_dir)[-1]
    recs = records(os.path.join(data_dir, seg))
    assert recs, "no records in %s" % seg
    start, size, zxid = recs[-1]
    assert zxid == czxid[last], "the last record is not the last create: %#x" % zxid
    end = start + size
    # Cut points inside the last record: in its length, crc, zxid, at the
    # start and middle and end of its payload, and a few at random.
    inside = {0, 1, 3, 4, 7, 8, 12, 15, 16, 17, size // 2, size - 2, size - 1}
    inside |= {rng.randrange(1, size) for _ in range(4)}
    # (cut, how): "truncate" ends the file there (a crash while the file
    # grew); "zero" keeps the file's length with zeros from the cut to the
    # record's end (a crash inside preallocated space); "garbage" fills the
    # same bytes with noise (pages written partly, or reused blocks).
    cases = [(k, "truncate") for k in sorted(inside)]
    cases += [(k, "zero") for k in (1, 16, size // 2, size - 1)]
    cases += [(k, "garbage") for k in (0, 9, size // 2)]

    def edit_for(cut, how):
        def edit(seg_bytes):
            if how == "truncate":
                return bytes(seg_bytes[:cut])
            fill = bytes(end - cut) if how == "zero" else bytes(
                rng.randrange(1, 256) for _ in range(end - cut))
            seg_bytes[cut:end] = fill
            return bytes(seg_bytes)
        return edit

    for k, how in cases:
        ctx = "cut %s at byte %d of the %d-byte last record (offset %d), seed %d" % (
            how, k, size, start + k, seed)
        tmp, data = _damaged_copy(data_dir, seg, edit_for(start + k, how))
        try:
            s = harness.Server(harness.OURS, extra=SMALL_PREALLOC)
            request.addfinalizer(s.stop)
            try:
                s.start(from_data=data, timeout=30)
            except Exception as e:
                pytest.fail("%s: the server did not start: %s" % (ctx, e), pytrace=False)
            d = s.raw()
            after = dump(d, prefix)
            assert d.exists(last).err == Err.NO_NODE, (
                "%s: the torn record's node exists" % ctx)
            assert after == before, "%s: the tree differs: %r" % (
                ctx, sorted(p for p in set(after) | set(before)
                            if after.get(p) != before.get(p)))
            # The server writes after the cut: a new write survives another
            # crash (the torn bytes were cleared, not left to confuse the
            # next recovery).
            again = ok(d.create2(prefix + "/after", b"after the repair")).stat
            assert again.czxid >= zxid, "%s: zxid went backwards: %#x" % (ctx, again.czxid)
            d.close()
            s.kill9()
            s.restart(timeout=30)
            e = s.raw()
            got = ok(e.get_data(prefix + "/after"))
            assert got.data == b"after the repair" and got.stat == again, ctx
            assert dump(e, prefix + "/n000") == {k2: v for k2, v in before.items()
                                                 if k2 == prefix + "/n000"}, ctx
            e.close()
            s.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
