"""kazoo (the Python client, unchanged) against each target.

What it is: everyday client scenarios through kazoo's public API — every
opcode the server supports that kazoo can send, plus containers, TTL nodes
and addWatch through kazoo's own connection (kazoo_ext.py) — and a few
kazoo recipes (Lock, Counter, Queue, Election) that combine them the way
applications do.

What it is not: a check of exact wire values (test_raw.py) or of
equality with the reference (test_differential.py).

Invariant it keeps: each test uses its own path prefix and closes every
client it opens (the `kazoo` fixture does).
"""

import threading
import time

import pytest
from kazoo.exceptions import (
    BadArgumentsError, BadVersionError, NoAuthError, NoChildrenForEphemeralsError, NodeExistsError,
    NoNodeError, NotEmptyError, RolledBackError, InvalidACLError, RuntimeInconsistency,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import ACL, Id, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, make_digest_acl, Permissions

import harness
import kazoo_ext


def wait_for(pred, what, timeout=10.0):
    return harness.wait_until(pred, timeout=timeout, what=what)


def test_crud_and_versions(server, kazoo, prefix):
    zk = kazoo(server)
    assert zk.create(prefix, b"root") == prefix
    assert zk.create(prefix + "/a", b"v0") == prefix + "/a"
    data, st = zk.get(prefix + "/a")
    assert data == b"v0" and st.version == 0 and st.dataLength == 2 and st.numChildren == 0
    st2 = zk.set(prefix + "/a", b"v1", version=0)
    assert st2.version == 1 and st2.mzxid > st.mzxid and st2.czxid == st.czxid
    with pytest.raises(BadVersionError):
        zk.set(prefix + "/a", b"v2", version=0)
    with pytest.raises(NodeExistsError):
        zk.create(prefix + "/a")
    with pytest.raises(NoNodeError):
        zk.create(prefix + "/missing/child")
    with pytest.raises(NoNodeError):
        zk.get(prefix + "/missing")
    with pytest.raises(NoNodeError):
        zk.set(prefix + "/missing", b"")
    assert zk.exists(prefix + "/missing") is None
    assert zk.exists(prefix + "/a").version == 1
    with pytest.raises(NotEmptyError):
        zk.delete(prefix)
    with pytest.raises(BadVersionError):
        zk.delete(prefix + "/a", version=0)
    zk.delete(prefix + "/a", version=1)
    assert zk.exists(prefix + "/a") is None
    zk.create(prefix + "/deep/er/path", b"x", makepath=True)
    assert zk.get(prefix + "/deep/er/path")[0] == b"x"
    zk.delete(prefix, recursive=True)
    assert zk.exists(prefix) is None


def test_create2_include_data(server, kazoo, prefix):
    # create2 (15): kazoo's include_data returns the new node's stat.
    zk = kazoo(server)
    zk.create(prefix)
    path, st = zk.create(prefix + "/n", b"12345", include_data=True)
    assert path == prefix + "/n"
    assert st.dataLength == 5 and st.version == 0 and st.czxid == st.mzxid == st.pzxid
    assert st.ephemeralOwner == 0
    parent = zk.exists(prefix)
    assert parent.pzxid == st.czxid and parent.cversion == 1 and parent.numChildren == 1


def test_ephemeral_and_sequential(server, kazoo, prefix):
    zk = kazoo(server)
    zk.create(prefix)
    e = zk.create(prefix + "/eph", b"", ephemeral=True)
    st = zk.exists(e)
    assert st.ephemeralOwner == zk.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(e + "/child")
    s1 = zk.create(prefix + "/seq-", sequence=True)
    s2 = zk.create(prefix + "/seq-", sequence=True)
    es = zk.create(prefix + "/eseq-", ephemeral=True, sequence=True)
    # The suffix is the parent's cversion: eph was child 0.
    assert (s1, s2, es) == (prefix + "/seq-0000000001", prefix + "/seq-0000000002",
                            prefix + "/eseq-0000000003")
    assert zk.exists(es).ephemeralOwner == zk.client_id[0]
    assert zk.exists(s1).ephemeralOwner == 0
    other = kazoo(server)
    assert other.exists(e).ephemeralOwner == zk.client_id[0]
    zk.stop()
    # closeSession removes the ephemerals (and only them).
    assert other.exists(e) is None and other.exists(es) is None
    assert other.exists(s1) is not None


def test_container_and_ttl(server, kazoo, prefix):
    # createContainer (19) and createTTL (21) through kazoo's connection:
    # both report ephemeralOwner 0 (ZK-BEHAVIOURS 9); a TTL sequential node
    # gets a suffix; a bad ttl is BadArguments.
    zk = kazoo(server)
    zk.create(prefix)
    path, st = kazoo_ext.create_container(zk, prefix + "/box", b"c")
    assert path == prefix + "/box" and st.ephemeralOwner == 0 and st.dataLength == 1
    zk.create(prefix + "/box/item")
    assert zk.get_children(prefix + "/box") == ["item"]
    path, st = kazoo_ext.create_ttl(zk, prefix + "/ttl", 60000, b"t")
    assert path == prefix + "/ttl" and st.ephemeralOwner == 0
    path, st = kazoo_ext.create_ttl(zk, prefix + "/ttls-", 60000, sequence=True)
    assert path == prefix + "/ttls-0000000002"
    with pytest.raises(BadArgumentsError):
        kazoo_ext.create_ttl(zk, prefix + "/ttl0", 0)
    with pytest.raises(NodeExistsError):
        kazoo_ext.create_container(zk, prefix + "/box")


def test_get_children_with_and_without_data(server, kazoo, prefix):
    # getChildren (8) and getChildren2 (12, include_data).
    zk = kazoo(server)
    zk.create(prefix)
    for n in ("c", "a", "b"):
        zk.create(prefix + "/" + n)
    assert sorted(zk.get_children(prefix)) == ["a", "b", "c"]  # ZK-BEHAVIOURS 20
    kids, st = zk.get_children(prefix, include_data=True)
    assert sorted(kids) == ["a", "b", "c"]
    assert st.numChildren == 3 and st.cversion == 3
    with pytest.raises(NoNodeError):
        zk.get_children(prefix + "/none")


def test_acls_and_auth(server, kazoo, prefix):
    # getACL (6), setACL (7) with versions, add_auth (digest), NoAuth.
    owner = kazoo(server)
    owner.add_auth("digest", "owner:pw")
    owner.create(prefix)
    acl = make_digest_acl("owner", "pw", all=True)
    owner.create(prefix + "/secret", b"s", acl=[acl])
    acls, st = owner.get_acls(prefix + "/secret")
    assert acls == [acl] and st.aversion == 0
    stranger = kazoo(server)
    with pytest.raises(NoAuthError):
        stranger.get(prefix + "/secret")
    with pytest.raises(NoAuthError):
        stranger.set(prefix + "/secret", b"x")
    with pytest.raises(NoAuthError):
        stranger.set_acls(prefix + "/secret", OPEN_ACL_UNSAFE)
    assert stranger.exists(prefix + "/secret") is not None
    # Read for everyone, all for the owner; with a version check.
    new_acl = [acl, ACL(Permissions.READ, Id("world", "anyone"))]
    with pytest.raises(BadVersionError):
        owner.set_acls(prefix + "/secret", new_acl, version=5)
    st = owner.set_acls(prefix + "/secret", new_acl, version=0)
    assert st.aversion == 1
    assert stranger.get(prefix + "/secret")[0] == b"s"
    with pytest.raises(NoAuthError):
        stranger.set(prefix + "/secret", b"x")
    stranger.add_auth("digest", "owner:pw")
    stranger.set(prefix + "/secret", b"x")
    with pytest.raises(InvalidACLError):
        owner.create(prefix + "/bad", acl=[ACL(Permissions.ALL, Id("world", "nobody"))])
    owner.create(prefix + "/ro", b"", acl=READ_ACL_UNSAFE)
    with pytest.raises(NoAuthError):
        stranger.create(prefix + "/ro/x")


def test_sync(server, kazoo, prefix):
    # sync (9) echoes the path, also for a missing one (ZK-BEHAVIOURS 18).
    zk = kazoo(server)
    assert zk.sync("/") == "/"
    assert zk.sync(prefix + "/nowhere") == prefix + "/nowhere"


def test_transactions(server, kazoo, prefix):
    # multi (14) through kazoo: success returns each op's result; a failing
    # transaction returns the failing op's exception and RolledBackError for
    # the others, and changes nothing (DESIGN invariant 3, ZK-BEHAVIOURS 3).
    zk = kazoo(server)
    zk.create(prefix, b"0")
    t = zk.transaction()
    t.create(prefix + "/a", b"1")
    t.create(prefix + "/s-", b"", sequence=True)
    t.set_data(prefix, b"1", version=0)
    t.check(prefix + "/a", 0)
    t.delete(prefix + "/a")
    res = t.commit()
    assert res[0] == prefix + "/a" and res[1] == prefix + "/s-0000000001"
    assert res[2].version == 1 and res[3] is True and res[4] is True
    assert zk.exists(prefix + "/a") is None
    t = zk.transaction()
    t.create(prefix + "/b")
    t.check(prefix, 0)  # stale version
    t.set_data(prefix, b"2")
    res = t.commit()
    # Ops before the failing one report 0 (kazoo: RolledBackError), ops
    # after it RuntimeInconsistency (ZK-BEHAVIOURS 3).
    assert isinstance(res[0], RolledBackError)
    assert isinstance(res[1], BadVersionError)
    assert isinstance(res[2], RuntimeInconsistency)
    assert zk.exists(prefix + "/b") is None
    assert zk.get(prefix)[0] == b"1"
    t = zk.transaction()
    t.delete(prefix + "/nonexistent")
    res = t.commit()
    assert len(res) == 1 and isinstance(res[0], NoNodeError)


def test_one_shot_watches(server, kazoo, prefix):
    # get/exists/get_children watches fire once each with the right event.
    zk, writer = kazoo(server), kazoo(server)
    zk.create(prefix)
    events = []
    lock = threading.Lock()

    def record(ev):
        with lock:
            events.append((ev.type, ev.path))

    assert zk.exists(prefix + "/n", watch=record) is None
    writer.create(prefix + "/n", b"1")
    wait_for(lambda: events, "exists watch")
    zk.get(prefix + "/n", watch=record)
    zk.get_children(prefix, watch=record)
    writer.set(prefix + "/n", b"2")
    writer.set(prefix + "/n", b"3")  # watch already consumed
    wait_for(lambda: len(events) >= 2, "data watch")
    writer.create(prefix + "/m")
    wait_for(lambda: len(events) >= 3, "child watch")
    time.sleep(0.3)
    assert events == [(EventType.CREATED, prefix + "/n"), (EventType.CHANGED, prefix + "/n"),
                      (EventType.CHILD, prefix)]
    del events[:]
    zk.get(prefix + "/n", watch=record)
    writer.delete(prefix + "/n")
    wait_for(lambda: events, "delete watch")
    assert events == [(EventType.DELETED, prefix + "/n")]


def test_datawatch_and_childrenwatch_recipes(server, kazoo, prefix):
    zk, writer = kazoo(server), kazoo(server)
    zk.create(prefix, b"v0")
    seen_data, seen_kids = [], []
    zk.DataWatch(prefix, lambda data, stat: seen_data.append(data))
    zk.ChildrenWatch(prefix, lambda kids: seen_kids.append(sorted(kids)))
    wait_for(lambda: seen_data and seen_kids, "initial callbacks")
    for i in range(1, 4):
        writer.set(prefix, b"v%d" % i)
        wait_for(lambda: seen_data[-1] == b"v%d" % i, "data v%d" % i)
    writer.create(prefix + "/x")
    wait_for(lambda: seen_kids[-1] == ["x"], "child x")
    writer.create(prefix + "/y")
    wait_for(lambda: seen_kids[-1] == ["x", "y"], "child y")
    writer.delete(prefix + "/x")
    wait_for(lambda: seen_kids[-1] == ["y"], "child x gone")


def test_persistent_and_recursive_watches(server, kazoo, prefix):
    # addWatch (106) persistent and persistent-recursive through kazoo's
    # connection: not consumed by firing.
    zk, writer = kazoo(server), kazoo(server)
    tap = kazoo_ext.EventTap(zk)
    zk.create(prefix)
    zk.create(prefix + "/sub")
    persistent, recursive = [], []
    tap.add_watch(prefix, lambda ev: persistent.append((ev.type, ev.path)), kazoo_ext.PERSISTENT)
    tap.add_watch(prefix + "/sub", lambda ev: recursive.append((ev.type, ev.path)),
                  kazoo_ext.PERSISTENT_RECURSIVE)
    writer.set(prefix, b"1")
    writer.set(prefix, b"2")
    writer.create(prefix + "/sub/a")
    writer.create(prefix + "/sub/a/b")
    writer.set(prefix + "/sub/a/b", b"x")
    writer.delete(prefix + "/sub/a/b")
    wait_for(lambda: len(persistent) >= 2 and len(recursive) >= 4, "persistent events")
    time.sleep(0.3)
    assert persistent == [(EventType.CHANGED, prefix), (EventType.CHANGED, prefix)]
    assert recursive == [(EventType.CREATED, prefix + "/sub/a"),
                         (EventType.CREATED, prefix + "/sub/a/b"),
                         (EventType.CHANGED, prefix + "/sub/a/b"),
                         (EventType.DELETED, prefix + "/sub/a/b")]
    tap.remove_watches(prefix)
    tap.remove_watches(prefix + "/sub")
    writer.set(prefix, b"3")
    writer.create(prefix + "/sub/c")
    time.sleep(0.3)
    assert len(persistent) == 2 and len(recursive) == 4


def test_watch_event_before_read_reply(server, kazoo, prefix):
    # DESIGN invariant 2, seen through kazoo's reader: after another client
    # changes a watched node, the event is read off the socket before the
    # reply to a read that returns the new value.
    zk, writer = kazoo(server), kazoo(server)
    tap = kazoo_ext.EventTap(zk)
    zk.create(prefix, b"0")
    for i in range(1, 11):
        fired = threading.Event()
        zk.get(prefix, watch=lambda ev: fired.set())
        writer.set(prefix, b"%d" % i)
        with tap.lock:
            del tap.log[:]
        data, _ = zk.get(prefix)
        if data != b"%d" % i:
            continue  # read overtook the write from another session: allowed
        with tap.lock:
            log = list(tap.log)
        kinds = [entry[0] for entry in log]
        assert "event" in kinds or fired.is_set(), (i, log)
        if "event" in kinds:
            assert kinds.index("event") < kinds.index("reply"), (i, log)
        fired.wait(5)


def test_own_event_before_own_reply(server, kazoo, prefix):
    # ZK-BEHAVIOURS 16: a session's own watch event arrives before the reply
    # to its own write.
    zk = kazoo(server)
    tap = kazoo_ext.EventTap(zk)
    zk.create(prefix, b"0")
    zk.get(prefix, watch=lambda ev: None)
    with tap.lock:
        del tap.log[:]
    zk.set(prefix, b"1")
    with tap.lock:
        log = list(tap.log)
    assert [e[0] for e in log] == ["event", "reply"], log


def test_close_session_fires_watches_elsewhere(server, kazoo, prefix):
    # closeSession (-11): the closed session's ephemerals are deleted and
    # other sessions' watches on them fire.
    owner, watcher = kazoo(server), kazoo(server)
    owner.create(prefix)
    owner.create(prefix + "/e", ephemeral=True)
    got = []
    watcher.exists(prefix + "/e", watch=lambda ev: got.append((ev.type, ev.path)))
    watcher.get_children(prefix, watch=lambda ev: got.append((ev.type, ev.path)))
    owner.stop()
    wait_for(lambda: len(got) >= 2, "watches after close")
    assert sorted(got) == sorted([(EventType.DELETED, prefix + "/e"), (EventType.CHILD, prefix)])


def test_lock_recipe(server, kazoo, prefix):
    # kazoo's Lock: ephemeral-sequential nodes plus exists watches on the
    # predecessor; two clients take turns.
    a, b = kazoo(server), kazoo(server)
    order = []
    lock_a = a.Lock(prefix + "/lock", "a")
    lock_b = b.Lock(prefix + "/lock", "b")
    assert lock_a.acquire(timeout=10)
    t = threading.Thread(target=lambda: (lock_b.acquire(timeout=10), order.append("b"),
                                         lock_b.release()))
    t.start()
    time.sleep(0.3)
    assert order == []
    assert lock_b.contenders() == ["a", "b"]
    order.append("a")
    lock_a.release()
    t.join(15)
    assert order == ["a", "b"]


def test_counter_and_queue_recipes(server, kazoo, prefix):
    # Counter uses versioned setData retries; Queue uses sequential nodes
    # and multi-free deletes; LockingQueue uses a transaction.
    a, b = kazoo(server), kazoo(server)
    ca, cb = a.Counter(prefix + "/counter"), b.Counter(prefix + "/counter")

    def bump(counter, n):
        for _ in range(n):
            counter += 1

    ts = [threading.Thread(target=bump, args=(ca, 20)), threading.Thread(target=bump, args=(cb, 20))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert ca.value == 40
    q = a.Queue(prefix + "/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    qb = b.Queue(prefix + "/queue")
    assert [qb.get(), qb.get(), qb.get(), qb.get()] == [b"one", b"two", b"three", None]
    lq = a.LockingQueue(prefix + "/lq")
    lq.put(b"job")
    assert lq.get(timeout=5) == b"job"
    assert lq.consume() is True


def test_election_recipe(server, kazoo, prefix):
    a, b = kazoo(server), kazoo(server)
    ea, eb = a.Election(prefix + "/elect", "a"), b.Election(prefix + "/elect", "b")
    leaders = []
    started = threading.Event()
    release = threading.Event()

    def lead_a():
        leaders.append("a")
        started.set()
        release.wait(10)

    ta = threading.Thread(target=ea.run, args=(lead_a,))
    ta.start()
    assert started.wait(10)
    tb = threading.Thread(target=eb.run, args=(lambda: leaders.append("b"),))
    tb.start()
    wait_for(lambda: len(eb.contenders()) == 2, "two contenders")
    assert eb.contenders() == ["a", "b"]
    release.set()
    ta.join(10)
    tb.join(10)
    assert leaders == ["a", "b"]


def test_connection_state_and_session(server, kazoo):
    zk = kazoo(server)
    assert zk.state == KazooState.CONNECTED and zk.connected
    sid, pw = zk.client_id
    assert sid != 0 and len(pw) == 16
    other = kazoo(server)
    assert other.client_id[0] != sid


def test_creator_all_acl_and_makepath(server, kazoo, prefix):
    # kazoo's CREATOR_ALL_ACL sends the `auth` scheme's unused id as a null
    # string: the create must succeed and store one entry per identity the
    # session authenticated, with makepath too, inside a transaction and for
    # setACL; without an identity it is InvalidACL. (kazoo's own
    # test_create_makepath_incompatible_acls.)
    from kazoo.security import CREATOR_ALL_ACL, make_digest_acl_credential
    credential = make_digest_acl_credential("username", "password")
    owner = kazoo(server, auth_data=[("digest", credential)])
    other = kazoo(server)
    owner.create(prefix, b"")
    owner.create(prefix + "/1/2", b"val2", makepath=True, acl=CREATOR_ALL_ACL)
    acl, _ = owner.get_acls(prefix + "/1/2")
    # The auth sent is "username:<hash>", so the stored id digests that.
    stored = make_digest_acl_credential("username", credential.split(":", 1)[1])
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(31, "digest", stored)]
    with pytest.raises(NoAuthError):
        other.create(prefix + "/1/2/3/4/5", b"val2", makepath=True)
    owner.set_acls(prefix + "/1/2", CREATOR_ALL_ACL)
    tx = owner.transaction()
    tx.create(prefix + "/tx", b"", acl=CREATOR_ALL_ACL)
    assert tx.commit() == [prefix + "/tx"]
    with pytest.raises(InvalidACLError):
        other.create(prefix + "/anon", b"", acl=CREATOR_ALL_ACL)
