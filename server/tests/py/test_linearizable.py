"""Linearizable reads (`readConsistency=linearizable`) against ZooKeeper's
sequential reads, on a 3-node ensemble of ours with one lagging follower.

What it is: a register workload through kazoo. One writer on the leader
sets /reg to 1, 2, 3, ... one at a time; readers on both followers read it
in a loop. Every operation is recorded with its invocation and completion
times, and the history is checked by a small Wing-Gong style
linearizability checker (`check_register`). The lagging follower applies
commits late (test-only failpoint `applier-delay`: its log and ACKs keep
up, its tree does not), the way a slow or paused replica does.

- `sequential` (the default, ZooKeeper's semantics): the checker must find
  the stale reads a lagging follower serves. This shows the workload and
  the checker can see what the other mode prevents.
- `linearizable`: no stale read, the history is linearizable.

What it is not: a timing test. The read latencies are printed, not
asserted; the cost of linearizable reads is measured by `zk-bench`.

Invariant it keeps: every process and client it starts is stopped.
"""

import os
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, SessionExpiredError

import harness
from ensemble import OURS, Ensemble

pytestmark = pytest.mark.skipif(harness.OURS not in harness.targets(), reason="ours not targeted")

LAG_MS = 150
WRITES = 40


class Undecided(Exception):
    pass


def check_register(history, initial, limit=2_000_000):
    """True if the register history is linearizable: some order of the
    operations that respects real time (an operation that completed before
    another began comes first) in which every read returns the last value
    written. `history`: dicts with kind 'r' or 'w', value, start, end.
    A depth-first search over linearization prefixes (Wing and Gong), with
    visited (prefix, value) states remembered (Lowe); `limit` bounds it."""
    # A write whose outcome is unknown (its connection was lost) may take
    # effect at any time after it began, or never: it has no end, and the
    # search need not place it.
    ops = sorted(history, key=lambda o: o["start"])
    n = len(ops)
    inf = float("inf")
    end = [inf if o.get("unknown") else o["end"] for o in ops]
    required = sum(1 << i for i, o in enumerate(ops) if not o.get("unknown"))
    seen = set()
    stack = [(0, initial)]
    while stack:
        mask, value = stack.pop()
        if mask & required == required:
            return True
        if (mask, value) in seen:
            continue
        seen.add((mask, value))
        if len(seen) > limit:
            raise Undecided("more than %d states" % limit)
        pending = [i for i in range(n) if not (mask >> i) & 1]
        # Only an operation that began before every pending one ended can
        # come next.
        first_end = min(end[i] for i in pending)
        for i in pending:
            op = ops[i]
            if op["start"] > first_end:
                break
            if op["kind"] == "w":
                stack.append((mask | (1 << i), op["value"]))
            elif op["value"] == value:
                stack.append((mask | (1 << i), value))
    return False


def stale_reads(history):
    """Reads that returned a value older than one whose write had completed
    before the read began (the writer is one client, so values grow)."""
    writes = sorted((o for o in history if o["kind"] == "w" and not o.get("unknown")),
                    key=lambda o: o["end"])
    stale = []
    for r in (o for o in history if o["kind"] == "r"):
        done = [w["value"] for w in writes if w["end"] < r["start"]]
        if done and r["value"] < max(done):
            stale.append((r, max(done)))
    return stale


def test_checker_finds_a_stale_read_and_accepts_overlap():
    w = lambda v, s, e: {"kind": "w", "value": v, "start": s, "end": e}
    r = lambda v, s, e: {"kind": "r", "value": v, "start": s, "end": e}
    # A read overlapping a write may see either value.
    assert check_register([w(1, 0, 10), r(0, 1, 2), r(1, 3, 4)], 0)
    assert check_register([w(1, 0, 10), r(1, 1, 2), w(2, 11, 12), r(2, 13, 14)], 0)
    # Once it saw the new value, an overlapping read may not see the old.
    assert not check_register([w(1, 0, 10), r(1, 1, 2), r(0, 3, 4)], 0)
    # After the write completed, the old value is stale.
    assert not check_register([w(1, 0, 1), r(0, 2, 3)], 0)
    assert stale_reads([w(1, 0, 1), r(0, 2, 3)])
    # A write of unknown outcome may have happened, late, or not at all.
    lost = dict(w(2, 5, 6), unknown=True)
    assert check_register([w(1, 0, 1), lost, r(1, 7, 8), r(2, 9, 10)], 0)
    assert check_register([w(1, 0, 1), lost, r(1, 7, 8)], 0)
    assert not check_register([w(1, 0, 1), lost, r(2, 7, 8), r(1, 9, 10)], 0)


def run_register(mode, kill_leader=False):
    """The register workload; with `kill_leader`, the leader is killed -9
    half-way: the clients reconnect to the others and go on, and the one
    write caught by the kill has an unknown outcome."""
    ens = Ensemble(OURS, extra={"readConsistency": mode})
    clients = []
    try:
        ens.start()
        leader = ens.wait_leader()
        followers = [i for i in range(len(ens)) if i != leader]
        lagging = followers[0]
        saved = os.environ.get("ZK_FAILPOINTS")
        os.environ["ZK_FAILPOINTS"] = "applier-delay=%d" % LAG_MS
        try:
            ens.restart(lagging)
        finally:
            if saved is None:
                del os.environ["ZK_FAILPOINTS"]
            else:
                os.environ["ZK_FAILPOINTS"] = saved
        if "failpoints armed" not in ens[lagging].log_text():
            harness.missing("a zk-server built with --features failpoints")
        assert ens.wait_leader() == leader

        def client(i):
            # This member first; the others if it fails.
            hosts = ",".join([ens[i].addr] + [ens[j].addr for j in range(len(ens)) if j != i])
            c = KazooClient(hosts=hosts, timeout=15, randomize_hosts=False)
            c.start(timeout=15)
            clients.append(c)
            return c

        writer = client(leader)
        writer.ensure_path("/reg")
        writer.set("/reg", b"0")
        readers = [client(i) for i in followers]
        history = []
        lock = threading.Lock()
        done = threading.Event()
        errors = []

        def read_loop(c):
            try:
                while not done.is_set():
                    start = time.monotonic()
                    try:
                        data, _ = c.get("/reg")
                    except (ConnectionLoss, SessionExpiredError):
                        # No answer, no effect: not part of the history.
                        time.sleep(0.05)
                        continue
                    end = time.monotonic()
                    with lock:
                        history.append({"kind": "r", "value": int(data), "start": start,
                                        "end": end, "lagging": c is readers[0]})
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=read_loop, args=(c,)) for c in readers]
        for t in threads:
            t.start()
        try:
            for v in range(1, WRITES + 1):
                if kill_leader and v == WRITES // 2:
                    ens.kill9(leader)
                start = time.monotonic()
                try:
                    writer.set("/reg", str(v).encode())
                    unknown = False
                except (ConnectionLoss, SessionExpiredError):
                    unknown = True
                end = time.monotonic()
                with lock:
                    history.append({"kind": "w", "value": v, "start": start, "end": end,
                                    "unknown": unknown})
                deadline = time.monotonic() + 30
                while not writer.connected and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.02)
        finally:
            done.set()
            for t in threads:
                t.join(timeout=30)
        assert not errors, errors
        # The register held 0 before the first recorded write.
        return history
    finally:
        for c in clients:
            try:
                c.stop()
                c.close()
            except Exception:  # noqa: BLE001
                pass
        ens.stop()


def summary(mode, history):
    reads = [o for o in history if o["kind"] == "r"]
    lag = sorted(o["end"] - o["start"] for o in reads if o["lagging"])
    other = sorted(o["end"] - o["start"] for o in reads if not o["lagging"])
    median = lambda xs: xs[len(xs) // 2] * 1000 if xs else float("nan")
    print("%s: %d reads (%d on the lagging follower), median read %.1f ms lagging, %.1f ms other,"
          " %d stale" % (mode, len(reads), len(lag), median(lag), median(other),
                         len(stale_reads(history))))


def test_sequential_reads_on_a_lagging_follower_are_stale():
    history = run_register("sequential")
    summary("sequential", history)
    stale = stale_reads(history)
    assert stale, "the lagging follower served no stale read: the workload shows nothing"
    assert not check_register(history, 0)


def test_linearizable_reads_are_never_stale():
    history = run_register("linearizable")
    summary("linearizable", history)
    stale = stale_reads(history)
    assert not stale, "stale reads: %r" % stale[:3]
    assert check_register(history, 0)


def test_linearizable_reads_across_a_leader_kill():
    history = run_register("linearizable", kill_leader=True)
    summary("linearizable, leader killed", history)
    stale = stale_reads(history)
    assert not stale, "stale reads: %r" % stale[:3]
    assert check_register(history, 0)
