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
The crash loop, snapshots under load and sessions run once per storage
backend of ours (ZK_STORAGE_BACKENDS); torn tails, bit flips, zk-snaprepair
and zk-logdump are about the WAL's file format, so they run on the native
backend only.

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
import hashlib
import json
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



def tools_dir():
    """Where zk-snaprepair and zk-logdump are: ZK_TOOLS_DIR, else beside the
    server binary (target/debug by default)."""
    return os.environ.get("ZK_TOOLS_DIR") or os.path.dirname(harness.ours_bin())


SEGMENT_HEADER = 32
FRAME_HEADER = 16
# The commit marker closing each batch: "CMIT" as a little-endian u32, 24 bytes.
COMMIT_MARKER_TAG = 0x54494D43
COMMIT_MARKER = 24


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


# `ours` and `ours_small` serve the WAL-format tests (torn tail, bit flips,
# the tools), which parse and damage log segments: native backend only.


@pytest.fixture
def ours(request):
    """A fresh server of ours per test (crash tests own their data dir),
    with the default preallocation, on the native backend."""
    _require_ours()
    return start_server(request, harness.OURS, backend="native")


@pytest.fixture
def ours_small(request):
    """A fresh server of ours with SMALL_PREALLOC, on the native backend."""
    _require_ours()
    return start_server(request, harness.OURS, extra=SMALL_PREALLOC, backend="native")


def tool(name):
    """Path of one of the `tools` crate's binaries; a missing one skips
    (fails with CI=true)."""
    path = os.path.join(tools_dir(), name)
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
    per wal/FORMAT.md (version 2: each batch closed by a commit marker,
    skipped here) up to the first zero word (or short frame)."""
    with open(path, "rb") as f:
        b = f.read()
    out = []
    off = SEGMENT_HEADER
    while off + 4 <= len(b):
        (word,) = struct.unpack_from("<I", b, off)
        if word == COMMIT_MARKER_TAG:
            off += COMMIT_MARKER
            continue
        if word == 0 or off + FRAME_HEADER > len(b) or off + 8 + word > len(b):
            break
        _length, _crc, zxid = struct.unpack_from("<IIQ", b, off)
        out.append((off, 8 + word, zxid))
        off += 8 + word
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


@pytest.mark.parametrize("backend", harness.storage_backends())
def test_crash_loop_keeps_every_acknowledged_write(request, raw, prefix, backend):
    _require_ours()
    # Snapshots (checkpoints on rocksdb) every few hundred txns: some kills
    # land while one is being written, and recovery then starts from one
    # plus the log.
    ours = start_server(request, harness.OURS, extra=dict(SMALL_PREALLOC, snapCount="300"),
                        backend=backend)
    seed = _seed("crash loop on %s" % backend)
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
    assert _snapshot_zxids(ours, backend), "no snapshot was taken during the crash loop"


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
            # kill -9 first: a clean stop (SIGTERM) takes longer, and this
            # data dir is thrown away anyway.
            s.kill9()
            s.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- 3. bit flip


def dir_digest(path):
    """name -> sha256 of every file under `path` (relative names)."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            h = hashlib.sha256()
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[os.path.relpath(full, path)] = h.hexdigest()
    return out


def _writes_then_flip(server, c, prefix, rng, field):
    """Acknowledged writes (creates, and setData on every third node) with
    the zxid of each; kill -9; flip one bit of `field` ("len", "crc",
    "zxid" or "payload") of the record in the middle of the newest segment.
    Returns (writes, segment name, damaged record's (offset, size, zxid),
    every record of the segment)."""
    writes = []  # (zxid, path, data, version) in zxid order
    r = ok(c.create2(prefix, b"root"))
    writes.append((r.stat.czxid, prefix, b"root", 0))
    for i in range(40):
        path = "%s/n%03d" % (prefix, i)
        r = ok(c.create2(path, b"data-%03d" % i))
        writes.append((r.stat.czxid, path, b"data-%03d" % i, 0))
        if i % 3 == 0:
            r = ok(c.set_data(path, b"set-%03d" % i, 0))
            writes.append((r.stat.mzxid, path, b"set-%03d" % i, 1))
    c.close()
    server.kill9()
    seg = segments(server.data_dir)[-1]
    seg_path = os.path.join(server.data_dir, seg)
    recs = records(seg_path)
    assert len(recs) > 40, recs
    # Damage one of the create/setData records, well away from both ends.
    target = recs[len(recs) // 2]
    start, size, _zxid = target
    span = {"len": (0, 4), "crc": (4, 8), "zxid": (8, 16), "payload": (16, size)}[field]
    at = start + rng.randrange(*span)
    # In the length field, flip a low bit: the frame still looks plausible
    # and only its checksum gives it away.
    bit = rng.randrange(0, 4) if field == "len" else rng.randrange(0, 8)
    with open(seg_path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ (1 << bit)]))
    print("flipped bit %d of byte %d (%s of the record at offset %d, zxid %#x) in %s" % (
        bit, at, field, start, target[2], seg))
    return writes, seg, target, recs


def _refused(server, seg, offset, ctx):
    """Start-up on the damaged dir fails, names the file, the offset and
    zk-snaprepair, and changes nothing on disk."""
    before = dir_digest(server.data_dir)
    code, out = server.restart_expecting_failure()
    assert code != 0, "%s: the server started on a corrupt log:\n%s" % (ctx, out)
    assert seg in out, "%s: the message does not name %s:\n%s" % (ctx, seg, out)
    assert re.search(r"\boffset %d\b" % offset, out), (
        "%s: the message does not name offset %d:\n%s" % (ctx, offset, out))
    assert "zk-snaprepair" in out, "%s: no hint to zk-snaprepair:\n%s" % (ctx, out)
    assert dir_digest(server.data_dir) == before, "%s: a refused start changed the data dir" % ctx
    return out


@pytest.mark.parametrize("field", ["len", "crc", "zxid", "payload"])
def test_bit_flip_mid_log_refuses_to_start(ours, raw, prefix, field):
    seed = _seed("bit flip in %s" % field)
    rng = random.Random(seed)
    c = raw(ours)
    _writes, seg, target, _recs = _writes_then_flip(ours, c, prefix, rng, field)
    ctx = "bit flip in %s, seed %d" % (field, seed)
    _refused(ours, seg, target[0], ctx)
    # Refusing again is the same refusal (nothing was half-repaired).
    _refused(ours, seg, target[0], ctx)


LOST_RE = re.compile(r"lost zxids (0x[0-9a-fA-F]+)\s*[\u2013\u2014-]+\s*(0x[0-9a-fA-F]+) "
                     r"\((\d+) txns?\)")


def test_bit_flip_then_snaprepair_recovers_what_it_reports(ours, raw, prefix):
    seed = _seed("bit flip + zk-snaprepair")
    rng = random.Random(seed)
    c = raw(ours)
    writes, seg, target, recs = _writes_then_flip(ours, c, prefix, rng, "payload")
    ctx = "seed %d" % seed
    _refused(ours, seg, target[0], ctx)
    snaprepair = tool("zk-snaprepair")
    logdump = tool("zk-logdump")
    data_dir = ours.data_dir

    # zk-logdump --verify finds the same record.
    code, out = run_tool([logdump, "--verify", os.path.join(data_dir, seg)])
    assert code == 1, "%s: zk-logdump --verify exit %d:\n%s" % (ctx, code, out)
    assert re.search(r"\b%d\b" % target[0], out), (
        "%s: zk-logdump --verify does not name offset %d:\n%s" % (ctx, target[0], out))

    code, out = run_tool([snaprepair, "check", data_dir])
    assert code == 1, "%s: check on a corrupt dir exit %d:\n%s" % (ctx, code, out)

    # A dry run reports the loss and changes nothing.
    before = dir_digest(data_dir)
    code, dry = run_tool([snaprepair, "repair", data_dir])
    assert code in (0, 1), "%s: repair (dry run) exit %d:\n%s" % (ctx, code, dry)
    assert dir_digest(data_dir) == before, "%s: a dry run changed the data dir" % ctx
    m = LOST_RE.search(dry)
    assert m, "%s: the dry run does not say what is lost:\n%s" % (ctx, dry)

    code, out = run_tool([snaprepair, "repair", "--apply", data_dir])
    assert code in (0, 1), "%s: repair --apply exit %d:\n%s" % (ctx, code, out)
    m2 = LOST_RE.search(out)
    assert m2, "%s: repair --apply does not say what is lost:\n%s" % (ctx, out)
    assert m2.groups() == m.groups(), "%s: dry run and --apply disagree:\n%s\n%s" % (
        ctx, dry, out)
    low, high, count = int(m2.group(1), 16), int(m2.group(2), 16), int(m2.group(3))
    # What is lost is the damaged record and everything after it (those
    # follow a hole, so replaying them would build a state that never was).
    after = [z for _off, _size, z in recs if z >= target[2]]
    assert (low, high, count) == (target[2], recs[-1][2], len(after)), (
        "%s: reported lost %#x-%#x (%d), the log held %#x-%#x (%d) from the damage on:\n%s" % (
            ctx, low, high, count, target[2], recs[-1][2], len(after), out))
    quarantine = [n for n in os.listdir(data_dir) if n.startswith("quarantine-")]
    assert len(quarantine) == 1, "%s: %r" % (ctx, os.listdir(data_dir))
    assert seg in os.listdir(os.path.join(data_dir, quarantine[0])), (
        "%s: the original segment is not in %s" % (ctx, quarantine[0]))
    code, out = run_tool([snaprepair, "check", data_dir])
    assert code == 0, "%s: check after repair exit %d:\n%s" % (ctx, code, out)

    # The server starts, and holds exactly the writes below the lost range.
    ours.restart()
    expected = {}
    for zxid, path, data, version in writes:
        if zxid < low:
            expected[path] = (data, version)
    d = raw(ours)
    got = dump(d, prefix) if prefix in expected else {}
    assert {p: (v[0], v[1].version) for p, v in got.items()} == expected, (
        "%s: after repair (lost %#x-%#x) the tree is not the writes below %#x" % (
            ctx, low, high, low))
    # New writes go on, and survive a crash.
    new = ok(d.create2(prefix + "-after", b"new")).stat
    d.close()
    ours.kill9()
    ours.restart()
    e = raw(ours)
    assert ok(e.get_data(prefix + "-after")).stat == new
    ok(e.delete(prefix + "-after", 0))


def test_logdump_json_matches_the_segment_format(ours_small, raw, prefix):
    """zk-logdump --json (which the tools' users script against) lists the
    same records, at the same offsets, as wal/FORMAT.md's framing gives;
    --verify passes on an intact log."""
    logdump = tool("zk-logdump")
    c = raw(ours_small)
    created = {}
    ok(c.create(prefix, b""))
    for i in range(12):
        path = "%s/n%02d" % (prefix, i)
        created[ok(c.create2(path, b"x" * i)).stat.czxid] = path
    c.close()
    ours_small.kill9()
    data_dir = ours_small.data_dir
    want = []
    for seg in segments(data_dir):
        want += [(seg, off, zxid) for off, _size, zxid in records(os.path.join(data_dir, seg))]
    code, out = run_tool([logdump, "--json", data_dir])
    assert code == 0, "zk-logdump --json exit %d:\n%s" % (code, out)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    got = [(os.path.basename(r["file"]), r["offset"], r["zxid"]) for r in rows]
    assert got == want
    by_zxid = {r["zxid"]: r for r in rows}
    for zxid, path in created.items():
        row = by_zxid[zxid]
        assert row["op"].startswith("create") and row["path"] == path, (row["op"], row["path"])
    code, out = run_tool([logdump, "--verify", data_dir])
    assert code == 0, "zk-logdump --verify on an intact log exit %d:\n%s" % (code, out)


# ---------------------------------------------------------------- 4. snapshots under load


CHECKPOINT_RE = re.compile(r"snapshot written start=(0x[0-9a-f]+)")


def _snapshot_zxids(server, backend):
    """Start zxids of the snapshots (native: snapshot.<zxid> files) or
    checkpoints (rocksdb: the server logs each one; the database keeps only
    the newest) written so far."""
    if backend == "rocksdb":
        with open(server.log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return sorted(int(z, 16) for z in CHECKPOINT_RE.findall(text))
    return sorted(int(n.split(".", 1)[1], 16) for n in os.listdir(server.data_dir)
                  if re.fullmatch(r"snapshot\.[0-9a-f]{16}", n))


@pytest.mark.parametrize("backend", harness.storage_backends())
def test_snapshots_under_load_restore_the_same_tree(request, raw, prefix, backend):
    _require_ours()
    seed = _seed("snapshot under load on %s" % backend)
    rng = random.Random(seed)
    s = start_server(request, harness.OURS, extra=dict(SMALL_PREALLOC, snapCount="200"),
                     backend=backend)
    c = raw(s)
    ok(c.create(prefix, b""))
    # A session that stays open, with an ephemeral and a sequential node:
    # sessions and sequence counters go through snapshots too.
    owner = raw(s, timeout_ms=30000)
    ok(owner.create(prefix + "/eph", b"mine", flags=Mode.EPHEMERAL))
    ok(owner.create(prefix + "/seq-", b"", flags=Mode.PERSISTENT_SEQUENTIAL))
    first = c.last_zxid()
    homes = []
    for t in range(4):
        homes.append(child(prefix, "w%d" % t))
        ok(c.create(homes[-1], b""))
    writers = [Writer(s, home, {}, random.Random(rng.random()), max_ops=200,
                      tag=b"w%d" % t) for t, home in enumerate(homes)]
    for w in writers:
        w.start()
    for w in writers:
        w.go.set()
    for w in writers:
        w.join(120)
        assert not w.is_alive()
        assert w.failure is None and not w.errors, (w.failure, w.errors[:5])
    last = c.last_zxid()
    assert last - first >= 800, "only %d txns of load" % (last - first)

    # Snapshots are written in the background: wait for one that began
    # while the load ran.
    def snaps():
        return _snapshot_zxids(s, backend)
    harness.wait_until(lambda: any(first < z < last for z in snaps()), timeout=20,
                       what="a snapshot started during the load (have %r)" % snaps())
    ok(c.sync("/"))
    before = dump(c, "/")
    assert prefix in before and "/zookeeper" in before
    owner.close()  # the socket only: the session and its ephemeral live on
    c.close()
    s.kill9()
    s.restart()
    d = raw(s)
    after = dump(d, "/")
    diff = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert after == before, "seed %d: %d nodes differ after the restart, e.g. %r" % (
        seed, len(diff), [(p, before.get(p), after.get(p)) for p in diff[:3]])
    # The restored sequence counter goes on from where it was.
    r = ok(d.create(prefix + "/seq-", b"", flags=Mode.PERSISTENT_SEQUENTIAL))
    assert r.path == prefix + "/seq-%010d" % before[prefix][1].cversion, r
    print("%d snapshots, %d txns of load, %d nodes compared" % (
        len(snaps()), last - first, len(before)))


# ---------------------------------------------------------------- 5. sessions


@pytest.fixture(params=harness.durable_targets())
def short_ticks(request):
    """A server of each target (ours on each backend) with tickTime 200
    (sessions of 2 s expire within a test)."""
    kind, backend = request.param
    return start_server(request, kind, tick_time=200, backend=backend)


def test_sessions_survive_a_restart_and_still_expire(short_ticks, raw, prefix):
    s = short_ticks
    c = raw(s)
    ok(c.create(prefix, b""))
    lapsed = raw(s, timeout_ms=2000)
    assert lapsed.negotiated_timeout == 2000
    ok(lapsed.create(prefix + "/lapsed", b"", flags=Mode.EPHEMERAL))
    kept = raw(s, timeout_ms=4000)
    ok(kept.create(prefix + "/kept", b"", flags=Mode.EPHEMERAL))
    kept_id, kept_pw = kept.session_id, kept.passwd
    for x in (c, lapsed, kept):
        x.close()  # sockets only: no closeSession
    s.crash_and_restart()

    d = raw(s)
    # Both sessions came back with the restart: their ephemerals are there
    # (each session's clock starts again when the server is back).
    eph = ok(d.exists(prefix + "/lapsed")).stat
    assert eph.ephemeralOwner == lapsed.session_id
    resumed = raw(s, timeout_ms=4000, session_id=kept_id, passwd=kept_pw)
    assert resumed.session_id == kept_id, "the session did not survive the restart"
    assert ok(resumed.exists(prefix + "/kept")).stat.ephemeralOwner == kept_id

    # The session nobody resumed expires after its timeout; the resumed one
    # (pinged) does not.
    deadline = time.monotonic() + 15
    while d.exists(prefix + "/lapsed").err == Err.OK:
        assert time.monotonic() < deadline, "the unresumed session never expired"
        resumed.keep_alive(0.3, interval=0.1)
        d.ping()
    assert ok(resumed.exists(prefix + "/kept")).stat.ephemeralOwner == kept_id
    # Expired for good: resuming it is refused.
    gone = s.raw_unconnected()
    try:
        r = gone.connect(timeout_ms=2000, session_id=lapsed.session_id, passwd=lapsed.passwd)
        assert r.timeout <= 0 or r.session_id != lapsed.session_id, r
    except zkraw.Closed:
        pass
    finally:
        gone.close()
