"""Raw-protocol checks of the reference behaviours in ZK-BEHAVIOURS.md.

What it is: one test (or a few) per numbered item of
/work/shared/ZK-BEHAVIOURS.md, plus the opcodes kazoo cannot send
(checkWatches 17, removeWatches 18, multiRead 22, getEphemerals 103,
getAllChildrenNumber 104, setWatches 101, setWatches2 105, whoAmI 107),
each run against every target in ZK_TARGETS through the raw jute client, so
error codes, reply zxids, null data and wire order are seen exactly.

What it is not: the differential comparison (test_differential.py) or the
bad-input checks (test_badinput.py).

Invariant it keeps: every assertion here holds on Apache ZooKeeper 3.8.0; a
test that only holds on ours says why (ZK-BEHAVIOURS 21).
"""

import base64
import hashlib

import pytest

import harness
import zkraw
from zkraw import ok  # noqa: F401
from zkraw import (
    ACL, Closed, Timeout, OPEN_ACL_UNSAFE, AddWatchMode, Err, EventType, Mode, Op, Perm, WatcherType,
    op_check, op_create, op_delete, op_get_children, op_get_data, op_set_data,
    body_path_watch, body_set_data,
)


def digest_hash(user_password):
    """The digest scheme's stored id: base64(sha1("user:password"))."""
    return base64.b64encode(hashlib.sha1(user_password.encode()).digest()).decode()


@pytest.fixture(scope="module", params=harness.targets())
def fresh_kind(request):
    """The target kind, for tests that start their own fresh server."""
    harness.require(request.param)
    return request.param


# ------------------------------------------------------------- ZK-BEHAVIOURS 1


def test_zkb01_fresh_tree_stats(request, fresh_kind, raw):
    # ZK-BEHAVIOURS 1: a fresh tree's system nodes have zxids and times 0,
    # `/` cversion -1, `/zookeeper` cversion -2, `/zookeeper/config`
    # aversion -1; the first sequential child of `/` is 0000000000, after
    # which `/` reports cversion 0.
    server = harness.Server(fresh_kind)
    request.addfinalizer(server.stop)
    server.start()
    c = raw(server)
    stats = {p: ok(c.exists(p)).stat for p in
             ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")}
    for path, st in stats.items():
        assert (st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime) == (0, 0, 0, 0, 0), (path, st)
        assert st.version == 0 and st.ephemeralOwner == 0 and st.dataLength == 0, (path, st)
    assert stats["/"].cversion == -1 and stats["/"].numChildren == 1
    assert stats["/zookeeper"].cversion == -2 and stats["/zookeeper"].numChildren == 2
    assert stats["/zookeeper/quota"].cversion == 0 and stats["/zookeeper/quota"].aversion == 0
    assert stats["/zookeeper/config"].aversion == -1
    assert ok(c.get_data("/zookeeper/config")).data == b""
    first = ok(c.create("/", b"", flags=Mode.PERSISTENT_SEQUENTIAL))
    assert first.path == "/0000000000"
    assert ok(c.exists("/")).stat.cversion == 0
    assert ok(c.create("/", b"", flags=Mode.PERSISTENT_SEQUENTIAL)).path == "/0000000001"
    assert sorted(ok(c.get_children("/")).children) == ["0000000000", "0000000001", "zookeeper"]


# ------------------------------------------------------------- ZK-BEHAVIOURS 2


def test_zkb02_failed_writes_consume_a_zxid(server, raw, prefix):
    # ZK-BEHAVIOURS 2: NodeExists, NoNode, BadVersion, BadArguments, NoAuth
    # and InvalidACL failures each consume one zxid, and the failed reply
    # carries it.
    c = raw(server)
    ok(c.create(prefix, b"d"))
    ok(c.create(prefix + "/ro", b"", acl=[ACL(Perm.READ, "world", "anyone")]))
    failing = [
        ("NodeExists", lambda: c.create(prefix), Err.NODE_EXISTS),
        ("NoNode create", lambda: c.create(prefix + "/none/x"), Err.NO_NODE),
        ("NoNode delete", lambda: c.delete(prefix + "/none"), Err.NO_NODE),
        ("NoNode setData", lambda: c.set_data(prefix + "/none", b""), Err.NO_NODE),
        ("BadVersion", lambda: c.set_data(prefix, b"x", version=7), Err.BAD_VERSION),
        ("BadVersion delete", lambda: c.delete(prefix + "/ro", version=3), Err.BAD_VERSION),
        ("NotEmpty", lambda: c.delete(prefix), Err.NOT_EMPTY),
        ("BadArguments", lambda: c.create(prefix + "/"), Err.BAD_ARGUMENTS),
        ("NoAuth", lambda: c.set_data(prefix + "/ro", b"x"), Err.NO_AUTH),
        ("InvalidACL", lambda: c.create(prefix + "/bad", acl=[]), Err.INVALID_ACL),
    ]
    for name, call, code in failing:
        before = c.last_zxid()
        reply = call()
        assert reply.err == code, (name, reply)
        assert reply.zxid == before + 1, (name, "failed write must consume a zxid", before, reply)
        assert c.last_zxid() == before + 1, name


def test_zkb02_multis_consume_a_zxid(server, raw, prefix):
    # ZK-BEHAVIOURS 2 (and 4): every multi consumes a zxid — successful,
    # failed, empty, or rejected for containing a read.
    c = raw(server)
    ok(c.create(prefix))
    cases = [
        ("ok", [op_create(prefix + "/a")]),
        ("failed", [op_create(prefix + "/b"), op_create(prefix + "/a")]),
        ("empty", []),
    ]
    for name, ops in cases:
        before = c.last_zxid()
        reply = ok(c.multi(ops))
        assert reply.zxid == before + 1, (name, before, reply)
    before = c.last_zxid()
    reply = c.multi([op_create(prefix + "/c"), op_get_data(prefix)])
    assert reply.err == Err.MARSHALLING_ERROR, reply
    assert reply.zxid == before + 1 and c.last_zxid() == before + 1
    assert c.exists(prefix + "/c").err == Err.NO_NODE


def test_zkb02_reads_sync_auth_setwatches_do_not(server, raw, prefix):
    # ZK-BEHAVIOURS 2: reads, sync, auth and setWatches consume no zxid;
    # session create and close do.
    c = raw(server)
    ok(c.create(prefix, b"x"))
    before = c.last_zxid()
    r = c.auth("digest", "someone:pw")
    assert (r.err, r.zxid) == (Err.OK, 0), r  # ZK-BEHAVIOURS 12: auth replies carry zxid 0
    for reply in (
        c.get_data(prefix), c.exists(prefix + "/none"), c.get_children(prefix),
        c.get_children2(prefix), c.get_acl(prefix), c.sync(prefix),
        c.set_watches(before, data=[prefix]),
        c.get_all_children_number(prefix), c.get_ephemerals(prefix),
        c.multi_read([op_get_data(prefix)]), c.who_am_i(), c.ping(),
        c.check_watches(prefix, WatcherType.DATA),
    ):
        assert reply.zxid == before, reply
    assert c.last_zxid() == before
    other = raw(server)  # session create
    assert c.last_zxid() == before + 1
    ok(other.close_session())  # session close
    assert c.last_zxid() == before + 2


def test_zkb02_reply_zxids_of_writes(server, raw, prefix):
    # Each successful write's reply header carries the zxid it committed,
    # which is also the czxid/mzxid of the stat it changed.
    c = raw(server)
    z0 = c.last_zxid()
    r = ok(c.create2(prefix, b"v"))
    assert r.zxid == z0 + 1 and r.stat.czxid == r.stat.mzxid == r.stat.pzxid == z0 + 1
    r = ok(c.set_data(prefix, b"w"))
    assert r.zxid == z0 + 2 and r.stat.mzxid == z0 + 2 and r.stat.czxid == z0 + 1
    r = ok(c.create(prefix + "/k"))
    assert r.zxid == z0 + 3
    st = ok(c.exists(prefix)).stat
    assert st.pzxid == z0 + 3 and st.cversion == 1 and st.numChildren == 1
    r = ok(c.set_acl(prefix, OPEN_ACL_UNSAFE))
    assert r.zxid == z0 + 4 and r.stat.aversion == 1 and r.stat.mzxid == z0 + 2
    r = ok(c.delete(prefix + "/k"))
    assert r.zxid == z0 + 5
    st = ok(c.exists(prefix)).stat
    assert st.pzxid == z0 + 5 and st.cversion == 2 and st.numChildren == 0


# ------------------------------------------------------------- ZK-BEHAVIOURS 3


def test_zkb03_failed_multi_per_op_results(server, raw, prefix):
    # ZK-BEHAVIOURS 3: header err 0; ops before the failing one report 0,
    # the failing op its code, the ops after it RuntimeInconsistency (-2);
    # nothing is applied (DESIGN invariant 3).
    c = raw(server)
    ok(c.create(prefix, b"d"))
    reply = ok(c.multi([
        op_create(prefix + "/a"),
        op_set_data(prefix, b"x"),
        op_check(prefix, 5),
        op_delete(prefix + "/a"),
        op_create(prefix + "/b"),
    ]))
    assert [(r.op, r.err) for r in reply.results] == [
        (-1, Err.OK), (-1, Err.OK), (-1, Err.BAD_VERSION),
        (-1, Err.RUNTIME_INCONSISTENCY), (-1, Err.RUNTIME_INCONSISTENCY)]
    assert c.exists(prefix + "/a").err == Err.NO_NODE
    st = ok(c.get_data(prefix))
    assert st.data == b"d" and st.stat.version == 0


def test_multi_success_results(server, raw, prefix):
    # A successful multi reports one typed result per op, in order. In 3.8.0
    # a create2 op inside a multi reports like a plain create (type 1, path
    # only), while container and TTL creates report type 15 with a stat.
    c = raw(server)
    ok(c.create(prefix))
    reply = ok(c.multi([
        op_create(prefix + "/a", b"1"),
        (Op.CREATE2, op_create(prefix + "/b", b"22")[1]),
        op_create(prefix + "/c", flags=Mode.CONTAINER, op=Op.CREATE_CONTAINER),
        op_create(prefix + "/t", flags=Mode.PERSISTENT_WITH_TTL, ttl=60000),
        op_set_data(prefix + "/a", b"333"),
        op_check(prefix + "/a", 1),
        op_delete(prefix + "/b"),
        op_create(prefix + "/s-", flags=Mode.PERSISTENT_SEQUENTIAL),
    ]))
    z = reply.zxid
    kinds = [(r.op, r.err) for r in reply.results]
    assert kinds == [(Op.CREATE, 0), (Op.CREATE, 0), (Op.CREATE2, 0), (Op.CREATE2, 0),
                     (Op.SET_DATA, 0), (Op.CHECK, 0), (Op.DELETE, 0), (Op.CREATE, 0)], reply
    assert reply.results[0].path == prefix + "/a"
    assert reply.results[1].path == prefix + "/b" and reply.results[1].stat is None
    assert reply.results[2].stat.ephemeralOwner == 0
    assert reply.results[3].stat.ephemeralOwner == 0  # ZK-BEHAVIOURS 9
    st = reply.results[4].stat
    assert st.version == 1 and st.dataLength == 3 and st.czxid == st.mzxid == z
    # The sequential suffix comes from the parent's cversion as prep sees
    # it: the reference's prep counts the 4 earlier creates of this multi
    # but not the delete (only apply bumps cversion for a delete), hence 4.
    assert reply.results[7].path == prefix + "/s-0000000004"
    assert ok(c.exists(prefix)).stat.cversion == 6
    assert sorted(ok(c.get_children(prefix)).children) == ["a", "c", "s-0000000004", "t"]


# ------------------------------------------------------------- ZK-BEHAVIOURS 4


def test_zkb04_multi_read(server, raw, prefix):
    # multiRead (22) answers each read in order, a failing read reporting its
    # error without failing the others; it consumes no zxid. A write inside
    # multiRead gets MarshallingError without a zxid (ZK-BEHAVIOURS 4).
    c = raw(server)
    ok(c.create(prefix, b"top"))
    ok(c.create(prefix + "/x", None))
    before = c.last_zxid()
    reply = ok(c.multi_read([
        op_get_children(prefix), op_get_data(prefix), op_get_data(prefix + "/none"),
        op_get_children(prefix + "/none"), op_get_data(prefix + "/x"),
    ]))
    assert reply.zxid == before
    res = reply.results
    assert [(r.op, r.err) for r in res] == [
        (Op.GET_CHILDREN, 0), (Op.GET_DATA, 0), (-1, Err.NO_NODE), (-1, Err.NO_NODE),
        (Op.GET_DATA, 0)]
    assert res[0].children == ["x"]
    assert res[1].data == b"top" and res[1].stat.numChildren == 1
    assert res[4].data is None  # ZK-BEHAVIOURS 10 inside multiRead too
    reply = c.multi_read([op_get_data(prefix), op_create(prefix + "/y")])
    assert reply.err == Err.MARSHALLING_ERROR and reply.zxid == before, reply
    assert c.last_zxid() == before and c.exists(prefix + "/y").err == Err.NO_NODE
    assert ok(c.multi_read([])).results == []


# ------------------------------------------------------------- ZK-BEHAVIOURS 5


def test_zkb05_reads_do_not_validate_paths(server, raw, prefix):
    # ZK-BEHAVIOURS 5: getData("") returns the root; `/a/`, `a`, `//a`
    # answer NoNode rather than BadArguments.
    c = raw(server)
    ok(c.create(prefix))
    root = ok(c.get_data("/"))
    empty = ok(c.get_data(""))
    assert empty.stat == root.stat
    for path in (prefix + "/", prefix[1:], "/" + prefix, prefix + "/.", prefix + "//x"):
        assert c.get_data(path).err == Err.NO_NODE, path
        assert c.exists(path).err == Err.NO_NODE, path
        assert c.get_children(path).err == Err.NO_NODE, path


def test_zkb05_create_path_validation(server, raw, prefix):
    # ZK-BEHAVIOURS 5: creates look the parent up before validating, so
    # `/a/./b` gives NoNode while `//a` and a NUL give BadArguments.
    c = raw(server)
    ok(c.create(prefix))
    cases = [
        (prefix + "/./b", Err.NO_NODE),
        (prefix + "/../b", Err.NO_NODE),
        (prefix + "//b", Err.NO_NODE),
        ("/" + prefix, Err.BAD_ARGUMENTS),
        (prefix + "/a\x00b", Err.BAD_ARGUMENTS),
        (prefix + "/.", Err.BAD_ARGUMENTS),
        (prefix + "/..", Err.BAD_ARGUMENTS),
        (prefix[1:], Err.BAD_ARGUMENTS),
        ("", Err.BAD_ARGUMENTS),
        (prefix + "/\x01", Err.BAD_ARGUMENTS),
    ]
    for path, code in cases:
        before = c.last_zxid()
        r = c.create(path)
        assert r.err == code, (repr(path), r)
        assert r.zxid == before + 1, (repr(path), r)


# ------------------------------------------------------------- ZK-BEHAVIOURS 6


def test_zkb06_trailing_slash_sequential(server, raw, prefix):
    # ZK-BEHAVIOURS 6: `create("/a/", sequential)` yields `/a/0000000000`;
    # without the sequential flag it is BadArguments.
    c = raw(server)
    ok(c.create(prefix))
    assert ok(c.create(prefix + "/", flags=Mode.PERSISTENT_SEQUENTIAL)).path == prefix + "/0000000000"
    assert c.create(prefix + "/", flags=Mode.PERSISTENT).err == Err.BAD_ARGUMENTS
    # The failed create changed nothing, so the parent's cversion is 1.
    assert ok(c.create(prefix + "/", flags=Mode.EPHEMERAL_SEQUENTIAL)).path == prefix + "/0000000001"


# ------------------------------------------------------------- ZK-BEHAVIOURS 7


def test_zkb07_system_nodes(server, raw, prefix):
    # ZK-BEHAVIOURS 7: /zookeeper and /zookeeper/quota accept children and
    # setData on / and /zookeeper works; deleting /, /zookeeper or
    # /zookeeper/quota is BadArguments; /zookeeper/config is read-only
    # (writes get NoAuth; its delete is BadArguments as it sits under
    # /zookeeper's protected names).
    c = raw(server)
    leaf = prefix.strip("/")
    ok(c.create("/zookeeper/" + leaf))
    ok(c.create("/zookeeper/quota/" + leaf))
    ok(c.delete("/zookeeper/" + leaf))
    ok(c.delete("/zookeeper/quota/" + leaf))
    root = ok(c.get_data("/"))
    ok(c.set_data("/", root.data or b""))
    zk = ok(c.get_data("/zookeeper"))
    ok(c.set_data("/zookeeper", zk.data or b""))
    for path in ("/", "/zookeeper", "/zookeeper/quota"):
        assert c.delete(path).err == Err.BAD_ARGUMENTS, path
    assert c.set_data("/zookeeper/config", b"x").err == Err.NO_AUTH
    assert c.create("/zookeeper/config/x").err == Err.NO_AUTH
    assert c.set_acl("/zookeeper/config", OPEN_ACL_UNSAFE).err == Err.NO_AUTH
    assert c.delete("/zookeeper/config").err == Err.BAD_ARGUMENTS


# ------------------------------------------------------------- ZK-BEHAVIOURS 8


def test_zkb08_acl_rules(server, raw, prefix):
    # ZK-BEHAVIOURS 8: duplicates are removed, permissions 0 and 99 stored as
    # given; InvalidACL for an empty list, `auth` without an authenticated
    # identity, a digest id without `:`, world:nobody, an unknown scheme, an
    # unparsable ip.
    c = raw(server)
    ok(c.create(prefix))
    anyone = ACL(Perm.ALL, "world", "anyone")
    ok(c.create(prefix + "/dup", acl=[anyone, anyone, ACL(Perm.READ, "ip", "127.0.0.1"),
                                       ACL(Perm.READ, "ip", "127.0.0.1")]))
    assert ok(c.get_acl(prefix + "/dup")).acl == [anyone, ACL(Perm.READ, "ip", "127.0.0.1")]
    invalid = [
        [],
        [ACL(Perm.ALL, "auth", "")],
        [ACL(Perm.ALL, "digest", "nocolon")],
        [ACL(Perm.ALL, "world", "nobody")],
        [ACL(Perm.ALL, "nosuchscheme", "x")],
        [ACL(Perm.ALL, "ip", "300.1.1.1")],
        [ACL(Perm.ALL, "ip", "not-an-ip")],
    ]
    for acl in invalid:
        assert c.create(prefix + "/bad", acl=acl).err == Err.INVALID_ACL, acl
        assert c.set_acl(prefix + "/dup", acl).err == Err.INVALID_ACL, acl
    # getACL itself needs READ or ADMIN, so pair the odd entry with a digest
    # entry this session can authenticate as.
    ok(c.auth("digest", "acl-admin:pw"))
    admin = ACL(Perm.ALL, "digest", "acl-admin:" + digest_hash("acl-admin:pw"))
    ok(c.create(prefix + "/p0", acl=[ACL(0, "world", "anyone"), admin]))
    assert ok(c.get_acl(prefix + "/p0")).acl == [ACL(0, "world", "anyone"), admin]
    ok(c.create(prefix + "/p99", acl=[ACL(99, "world", "anyone")]))
    assert ok(c.get_acl(prefix + "/p99")).acl == [ACL(99, "world", "anyone")]
    # With perms 0 nobody else may read it.
    other = raw(server)
    assert other.get_data(prefix + "/p0").err == Err.NO_AUTH
    ok(c.create(prefix + "/ipnet", acl=[ACL(Perm.ALL, "ip", "10.0.0.0/8"), anyone]))
    assert ok(c.get_acl(prefix + "/dup")).stat.aversion == 0


def test_acl_auth_and_noauth(server, raw, prefix):
    # add_auth (digest) then `auth` ACL: the creator's digest identity is
    # stored hashed; another session gets NoAuth on every guarded op and
    # passes once it authenticates as the same user.
    a = raw(server)
    ok(a.create(prefix))
    r = a.auth("digest", "alice:secret")
    assert (r.xid, r.zxid, r.err) == (-4, 0, Err.OK)  # ZK-BEHAVIOURS 12
    ok(a.create(prefix + "/mine", b"s", acl=[ACL(Perm.ALL, "auth", "")]))
    acl = ok(a.get_acl(prefix + "/mine")).acl
    assert acl == [ACL(Perm.ALL, "digest", "alice:" + digest_hash("alice:secret"))], acl
    assert digest_hash("alice:secret") == "aYXlLOpEooaV1cRAvUL1fp9Qt7E="
    b = raw(server)
    assert b.get_data(prefix + "/mine").err == Err.NO_AUTH
    assert b.set_data(prefix + "/mine", b"x").err == Err.NO_AUTH
    assert b.create(prefix + "/mine/c").err == Err.NO_AUTH
    assert b.set_acl(prefix + "/mine", OPEN_ACL_UNSAFE).err == Err.NO_AUTH
    assert b.get_acl(prefix + "/mine").err == Err.NO_AUTH  # needs READ or ADMIN
    assert ok(b.exists(prefix + "/mine")).stat.dataLength == 1  # exists needs none
    ok(b.auth("digest", "alice:wrong"))
    assert b.get_data(prefix + "/mine").err == Err.NO_AUTH
    ok(b.auth("digest", "alice:secret"))
    assert ok(b.get_data(prefix + "/mine")).data == b"s"
    ok(b.set_data(prefix + "/mine", b"t"))
    # Permissions are per bit: read-only for world.
    ok(a.create(prefix + "/ro", b"r", acl=[ACL(Perm.READ, "world", "anyone")]))
    assert ok(b.get_data(prefix + "/ro")).data == b"r"
    assert b.set_data(prefix + "/ro", b"w").err == Err.NO_AUTH
    assert b.create(prefix + "/ro/c").err == Err.NO_AUTH
    # Delete permission is checked on the parent.
    ok(a.create(prefix + "/nodel", b"", acl=[ACL(Perm.ALL & ~Perm.DELETE, "world", "anyone")]))
    ok(a.create(prefix + "/nodel/c"))
    assert a.delete(prefix + "/nodel/c").err == Err.NO_AUTH
    # ... and the node's own ACL does not matter for its delete.
    ok(b.delete(prefix + "/ro"))


# ------------------------------------------------------------- ZK-BEHAVIOURS 9


def test_zkb09_ttl_and_container_modes(server, raw, prefix):
    # ZK-BEHAVIOURS 9: TTL nodes need mode 5 or 6 and 0 < ttl <= 2^40-1;
    # the createContainer opcode with mode 0 still makes a container;
    # containers and TTL nodes report ephemeralOwner 0.
    c = raw(server)
    ok(c.create(prefix))
    r = ok(c.create_ttl(prefix + "/t", flags=Mode.PERSISTENT_WITH_TTL, ttl=1))
    assert r.stat.ephemeralOwner == 0 and r.path == prefix + "/t"
    r = ok(c.create_ttl(prefix + "/ts-", flags=Mode.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=2 ** 40 - 1))
    assert r.path == prefix + "/ts-0000000001" and r.stat.ephemeralOwner == 0
    for mode, ttl in [(5, 0), (5, -5), (5, 2 ** 40), (6, 0), (0, 100), (1, 100), (2, 100),
                      (3, 100), (4, 100)]:
        before = c.last_zxid()
        r = c.create_ttl(prefix + "/bad", flags=mode, ttl=ttl)
        assert r.err == Err.BAD_ARGUMENTS, (mode, ttl, r)
        assert r.zxid == before + 1
    for mode in (5, 6, 7, -1):
        assert c.create(prefix + "/m", flags=mode).err == Err.BAD_ARGUMENTS, mode
        assert c.create2(prefix + "/m", flags=mode).err == Err.BAD_ARGUMENTS, mode
    r = ok(c.create_container(prefix + "/c0", flags=Mode.PERSISTENT))
    assert r.path == prefix + "/c0" and r.stat.ephemeralOwner == 0
    r = ok(c.create_container(prefix + "/c4", flags=Mode.CONTAINER))
    assert r.stat.ephemeralOwner == 0
    r = ok(c.create(prefix + "/cc", flags=Mode.CONTAINER))  # plain create, container mode
    assert r.path == prefix + "/cc"
    assert c.create_container(prefix + "/c5", flags=Mode.PERSISTENT_WITH_TTL).err == Err.BAD_ARGUMENTS
    # Neither shows up as an ephemeral of this session.
    assert ok(c.get_ephemerals(prefix)).children == []


# ------------------------------------------------------------- ZK-BEHAVIOURS 10


def test_zkb10_null_data_stays_null(server, raw, prefix):
    # ZK-BEHAVIOURS 10: data sent as a null buffer comes back as a null
    # buffer (length -1), not an empty one; an empty buffer stays empty.
    c = raw(server)
    r = ok(c.create2(prefix, None))
    assert r.stat.dataLength == 0
    g = ok(c.get_data(prefix))
    assert g.data is None and g.body[:4] == b"\xff\xff\xff\xff"
    ok(c.set_data(prefix, b""))
    g = ok(c.get_data(prefix))
    assert g.data == b"" and g.body[:4] == b"\x00\x00\x00\x00"
    ok(c.set_data(prefix, None))
    assert ok(c.get_data(prefix)).data is None
    ok(c.multi([op_create(prefix + "/m", None), op_set_data(prefix, None)]))
    assert ok(c.get_data(prefix + "/m")).data is None


# ------------------------------------------------------------- ZK-BEHAVIOURS 11


@pytest.mark.parametrize("opcode", [999, 50, 10, 0, -100])
def test_zkb11_unknown_opcode(server, raw, opcode):
    # ZK-BEHAVIOURS 11: an unknown opcode gets an Unimplemented reply with
    # zxid -1, then the connection is closed; other clients are unaffected.
    c = raw(server)
    other = raw(server)
    xid = c.submit(opcode, b"\x00" * 8)
    r = c.wait_reply(xid)
    assert (r.err, r.zxid) == (Err.UNIMPLEMENTED, -1), r
    assert c.wait_closed(5.0), "connection must be closed after an unknown opcode"
    assert other.exists("/").err == Err.OK
    server.assert_serving()


# ------------------------------------------------------------- ZK-BEHAVIOURS 12


def test_zkb12_auth_reply_and_unknown_scheme(server, raw):
    # ZK-BEHAVIOURS 12: an auth reply carries zxid 0; an unknown scheme gives
    # AuthFailed and closes the connection but the session survives and can
    # be resumed; whoAmI always includes the client's ip identity.
    c = raw(server)
    r = c.auth("digest", "bob:pw")
    assert (r.xid, r.zxid, r.err) == (-4, 0, Err.OK)
    ids = ok(c.who_am_i()).ids
    assert ("ip", "127.0.0.1") in [(i.scheme, i.user) for i in ids]
    assert ("digest", "bob") in [(i.scheme, i.user) for i in ids]
    plain = raw(server)
    assert [(i.scheme, i.user) for i in ok(plain.who_am_i()).ids] == [("ip", "127.0.0.1")]
    r = plain.auth("nosuchscheme", "x")
    assert (r.xid, r.zxid, r.err) == (-4, 0, Err.AUTH_FAILED), r
    assert plain.wait_closed(5.0)
    again = raw(server, session_id=plain.session_id, passwd=plain.passwd)
    assert again.session_id == plain.session_id
    assert ok(again.exists("/")).err == Err.OK


# ------------------------------------------------------------- ZK-BEHAVIOURS 14-16


def test_zkb14_event_header_zxid(server, raw, prefix):
    # ZK-BEHAVIOURS 14: watch events carry xid -1 and zxid -1 in their
    # reply header, state SyncConnected (3).
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    ok(a.get_data(prefix, watch=True))
    ok(b.set_data(prefix, b"x"))
    ev = a.wait_event()
    assert ev == (EventType.NODE_DATA_CHANGED, 3, prefix, -1)


def test_zkb15_one_event_per_change_per_session(server, raw, prefix):
    # ZK-BEHAVIOURS 15: a data watch and a persistent watch on the same node
    # fire one event for one change; also a data watch set twice.
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    ok(a.get_data(prefix, watch=True))
    ok(a.exists(prefix, watch=True))
    ok(a.add_watch(prefix, AddWatchMode.PERSISTENT))
    ok(a.add_watch("/", AddWatchMode.PERSISTENT_RECURSIVE))
    ok(b.set_data(prefix, b"1"))
    assert a.drain_events(0.5) == [(EventType.NODE_DATA_CHANGED, 3, prefix, -1)]
    ok(a.remove_watches("/", WatcherType.ANY))


def test_zkb16_own_event_before_own_reply(server, raw, prefix):
    # ZK-BEHAVIOURS 16 / DESIGN invariant 2: a session's own watch event
    # arrives before the reply to its own write.
    a = raw(server)
    ok(a.create(prefix))
    ok(a.get_data(prefix, watch=True))
    ok(a.get_children(prefix, watch=True))
    a.log.clear()
    ok(a.set_data(prefix, b"v"))
    assert [kind for kind, _ in a.log] == ["event", "reply"], a.log
    a.log.clear()
    ok(a.create(prefix + "/c"))
    assert [kind for kind, _ in a.log] == ["event", "reply"], a.log
    assert a.log[0][1].type == EventType.NODE_CHILDREN_CHANGED


def test_invariant2_event_before_read_reflecting_change(server, raw, prefix):
    # DESIGN invariant 2: another session's change fires our watch; any read
    # of ours that sees the change is preceded by the event on the wire. A's
    # reads are pipelined while B's write is in flight (nobody waits for B's
    # reply), so some reads race the change and land on either side of it.
    a, b = raw(server), raw(server)
    ok(a.create(prefix, b"0"))
    for i in range(1, 26):
        new = b"%d" % i
        ok(a.get_data(prefix, watch=True))
        a.log.clear()
        write = b.submit(Op.SET_DATA, body_set_data(prefix, new))
        reads = [a.submit(Op.GET_DATA, body_path_watch(prefix, False)) for _ in range(30)]
        for xid in reads:
            a.wait_reply(xid)
        ok(b.wait_reply(write))
        if not any(k == "event" for k, _ in a.log):
            # Every read came before the change: read once more, after it.
            assert ok(a.get_data(prefix)).data == new
        seen_event = False
        for kind, item in a.log:
            if kind == "event":
                assert item.path == prefix, (i, a.log)
                seen_event = True
            elif item.data == new:
                assert seen_event, ("a read saw the change before its event", i, a.log)
            else:
                assert not seen_event, ("a read after the event missed the change", i, a.log)


# ------------------------------------------------------------- ZK-BEHAVIOURS 17


def test_zkb17_watch_type_zero_and_mode_two(server, raw, prefix):
    # ZK-BEHAVIOURS 17: removeWatches/checkWatches with type 0 and addWatch
    # with mode 2 give MarshallingError.
    c = raw(server)
    ok(c.create(prefix))
    assert c.remove_watches(prefix, 0).err == Err.MARSHALLING_ERROR
    assert c.check_watches(prefix, 0).err == Err.MARSHALLING_ERROR
    assert c.add_watch(prefix, 2).err == Err.MARSHALLING_ERROR
    assert ok(c.exists("/")).err == Err.OK  # connection still usable


def test_check_and_remove_watches(server, raw, prefix):
    # checkWatches (17) / removeWatches (18): NoWatcher when nothing
    # matches; a removed watch no longer fires; the server sends no
    # "watch removed" event (the client library makes those).
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    assert a.check_watches(prefix, WatcherType.DATA).err == Err.NO_WATCHER
    assert a.check_watches(prefix, WatcherType.CHILDREN).err == Err.NO_WATCHER
    assert a.check_watches(prefix, WatcherType.ANY).err == Err.NO_WATCHER
    assert a.remove_watches(prefix, WatcherType.ANY).err == Err.NO_WATCHER
    ok(a.get_data(prefix, watch=True))
    ok(a.check_watches(prefix, WatcherType.DATA))
    ok(a.check_watches(prefix, WatcherType.ANY))
    assert a.check_watches(prefix, WatcherType.CHILDREN).err == Err.NO_WATCHER
    ok(a.get_children(prefix, watch=True))
    ok(a.check_watches(prefix, WatcherType.CHILDREN))
    ok(a.remove_watches(prefix, WatcherType.DATA))
    assert a.check_watches(prefix, WatcherType.DATA).err == Err.NO_WATCHER
    ok(a.check_watches(prefix, WatcherType.CHILDREN))
    ok(b.set_data(prefix, b"x"))
    assert a.drain_events(0.3) == []
    ok(a.remove_watches(prefix, WatcherType.ANY))
    assert a.check_watches(prefix, WatcherType.ANY).err == Err.NO_WATCHER
    ok(b.create(prefix + "/c"))
    assert a.drain_events(0.3) == []
    # An exists watch on a missing node counts as a data watch.
    assert a.exists(prefix + "/none", watch=True).err == Err.NO_NODE
    ok(a.check_watches(prefix + "/none", WatcherType.DATA))
    ok(a.remove_watches(prefix + "/none", WatcherType.DATA))
    ok(b.create(prefix + "/none"))
    assert a.drain_events(0.3) == []
    # A persistent watch is removed with type ANY (3.8 rejects types 4/5).
    ok(a.add_watch(prefix, AddWatchMode.PERSISTENT))
    ok(a.check_watches(prefix, WatcherType.ANY))
    ok(a.remove_watches(prefix, WatcherType.ANY))
    ok(b.set_data(prefix, b"y"))
    assert a.drain_events(0.3) == []
    # Reference quirk, pinned because it is what 3.8.0 does: checkWatches
    # answers Ok when *any* session holds a watch of that type on the path,
    # while removeWatches only removes (and only finds) the caller's own.
    ok(b.get_data(prefix, watch=True))
    if server.kind == "reference":
        ok(a.check_watches(prefix, WatcherType.DATA))
    else:
        # Known difference (KNOWN_DIFFERENCES in test_differential.py): ours
        # answers for the caller's own watches, as removeWatches does.
        assert a.check_watches(prefix, WatcherType.DATA).err == Err.NO_WATCHER
        ok(b.check_watches(prefix, WatcherType.DATA))
    assert a.remove_watches(prefix, WatcherType.DATA).err == Err.NO_WATCHER
    ok(b.remove_watches(prefix, WatcherType.DATA))
    assert a.check_watches(prefix, WatcherType.DATA).err == Err.NO_WATCHER


# ------------------------------------------------------------- ZK-BEHAVIOURS 18-20


def test_zkb18_sync_missing_path(server, raw, prefix):
    # ZK-BEHAVIOURS 18: sync on a path that does not exist succeeds and
    # echoes the path.
    c = raw(server)
    r = ok(c.sync(prefix + "/nowhere"))
    assert r.path == prefix + "/nowhere"
    assert ok(c.sync("/")).path == "/"


def test_zkb19_close_session(server, raw, prefix):
    # ZK-BEHAVIOURS 19: closeSession sends its reply, then the server closes
    # the socket; the session's ephemerals are gone and its watchers'
    # watches fire.
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    ok(a.create(prefix + "/e", flags=Mode.EPHEMERAL))
    ok(b.exists(prefix + "/e", watch=True))
    before = b.last_zxid()
    r = a.close_session()
    assert (r.err, r.zxid) == (Err.OK, before + 1), r
    assert a.wait_closed(5.0)
    assert b.wait_event() == (EventType.NODE_DELETED, 3, prefix + "/e", -1)
    assert b.exists(prefix + "/e").err == Err.NO_NODE
    # The closed session cannot be resumed.
    c = server.raw_unconnected()
    resp = c.connect(session_id=a.session_id, passwd=a.passwd)
    assert (resp.timeout, resp.session_id) == (0, 0), resp
    assert c.wait_closed(5.0)


def test_zkb20_children_any_order(server, raw, prefix):
    # ZK-BEHAVIOURS 20: children come back in no particular order (sorted
    # here); getChildren2 adds the parent's stat; getAllChildrenNumber (104)
    # counts every descendant.
    c = raw(server)
    ok(c.create(prefix))
    names = ["b", "a", "c", "zz", "m0"]
    for n in names:
        ok(c.create(prefix + "/" + n))
    ok(c.create(prefix + "/a/x"))
    ok(c.create(prefix + "/a/x/y"))
    assert sorted(ok(c.get_children(prefix)).children) == sorted(names)
    r = ok(c.get_children2(prefix))
    assert sorted(r.children) == sorted(names) and r.stat.numChildren == 5
    assert r.stat.cversion == 5
    assert ok(c.get_all_children_number(prefix)).total == 7
    assert ok(c.get_all_children_number(prefix + "/zz")).total == 0
    assert c.get_all_children_number(prefix + "/none").err == Err.NO_NODE


# ------------------------------------------------------------- ZK-BEHAVIOURS 21


def test_zkb21_top_level_check_ours(request, raw, prefix):
    # ZK-BEHAVIOURS 21: a top-level check makes 3.8.0 throw (checked on a
    # throwaway reference in the next test) and createTTL with a non-TTL
    # mode and ttl -1 stops it; ours must answer with an error code and keep
    # serving.
    if harness.OURS not in harness.targets():
        pytest.skip("ours not selected in ZK_TARGETS")
    server = harness.Server(harness.OURS)
    request.addfinalizer(server.stop)
    server.start()
    c = raw(server)
    ok(c.create(prefix))
    r = c.check(prefix, 0)
    assert r.err in (Err.BAD_ARGUMENTS, Err.UNIMPLEMENTED), r
    server.assert_serving()
    r = c.create_ttl(prefix + "/t", flags=Mode.PERSISTENT, ttl=-1)
    assert r.err in (Err.BAD_ARGUMENTS, Err.UNIMPLEMENTED), r
    server.assert_serving()


def test_zkb21_reference_falls_over(request, raw):
    # ZK-BEHAVIOURS 21, reference half: pins the fact that makes us differ
    # on purpose. A top-level check whose version matches throws inside
    # 3.8.0: no reply ever comes back for it.
    if harness.REFERENCE not in harness.targets():
        pytest.skip("reference not selected in ZK_TARGETS")
    server = harness.Server(harness.REFERENCE)
    request.addfinalizer(server.stop)
    server.start()
    c = raw(server)
    ok(c.create("/chk"))
    xid = c.submit(Op.CHECK, b"\x00\x00\x00\x04/chk\x00\x00\x00\x00")
    with pytest.raises((Timeout, Closed)):
        c.wait_reply(xid, timeout=3.0)


# ------------------------------------------------------------- other opcodes


def test_get_ephemerals(server, raw, prefix):
    # getEphemerals (103): the calling session's ephemerals whose path starts
    # with the prefix (a string prefix, not a path prefix); "/" gives all.
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    ok(a.create(prefix + "/e1", flags=Mode.EPHEMERAL))
    ok(a.create(prefix + "/e2", flags=Mode.EPHEMERAL))
    ok(a.create(prefix + "/es-", flags=Mode.EPHEMERAL_SEQUENTIAL))
    ok(a.create(prefix + "/p"))
    ok(b.create(prefix + "/other", flags=Mode.EPHEMERAL))
    assert sorted(ok(a.get_ephemerals(prefix)).children) == sorted(
        [prefix + "/e1", prefix + "/e2", prefix + "/es-0000000002"])
    assert sorted(ok(a.get_ephemerals(prefix + "/e")).children) == sorted(
        [prefix + "/e1", prefix + "/e2", prefix + "/es-0000000002"])
    assert ok(a.get_ephemerals(prefix + "/e1")).children == [prefix + "/e1"]
    assert prefix + "/e1" in ok(a.get_ephemerals("/")).children
    assert ok(b.get_ephemerals(prefix)).children == [prefix + "/other"]
    assert ok(a.get_ephemerals(prefix + "/zzz")).children == []


def test_who_am_i(server, raw):
    # whoAmI (107): the ip identity plus each authenticated identity (in no
    # promised order).
    c = raw(server)
    assert [(i.scheme, i.user) for i in ok(c.who_am_i()).ids] == [("ip", "127.0.0.1")]
    ok(c.auth("digest", "carol:x"))
    ok(c.auth("digest", "dave:y"))
    got = [(i.scheme, i.user) for i in ok(c.who_am_i()).ids]
    assert sorted(got) == [("digest", "carol"), ("digest", "dave"), ("ip", "127.0.0.1")]


def test_set_watches_fires_for_stale_zxid(server, raw, prefix):
    # setWatches (101): watches re-registered after a "reconnect" with an old
    # relative zxid fire at once for changes the client missed: data changed
    # -> NodeDataChanged, node gone -> NodeDeleted, node appeared for an
    # exist watch -> NodeCreated, children changed -> NodeChildrenChanged.
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    for n in ("d", "gone", "kids"):
        ok(a.create(prefix + "/" + n))
    seen = a.last_zxid()
    ok(b.set_data(prefix + "/d", b"new"))
    ok(b.delete(prefix + "/gone"))
    ok(b.create(prefix + "/born"))
    ok(b.create(prefix + "/kids/k"))
    c = raw(server)
    r = c.set_watches(seen, data=[prefix + "/d", prefix + "/gone"],
                      exist=[prefix + "/born", prefix + "/never"],
                      child=[prefix + "/kids"])
    assert (r.xid, r.err) == (-8, Err.OK)
    events = sorted((e.type, e.path) for e in c.drain_events(0.5))
    assert events == sorted([
        (EventType.NODE_DATA_CHANGED, prefix + "/d"),
        (EventType.NODE_DELETED, prefix + "/gone"),
        (EventType.NODE_CREATED, prefix + "/born"),
        (EventType.NODE_CHILDREN_CHANGED, prefix + "/kids"),
    ])
    # The exist watch on the missing node is now armed.
    ok(b.create(prefix + "/never"))
    assert c.wait_event() == (EventType.NODE_CREATED, 3, prefix + "/never", -1)
    # Up-to-date relative zxid: nothing fires, but the watches are armed.
    now = c.last_zxid()
    ok(c.set_watches(now, data=[prefix + "/d"], child=[prefix + "/kids"]))
    assert c.drain_events(0.3) == []
    ok(b.set_data(prefix + "/d", b"newer"))
    assert c.wait_event() == (EventType.NODE_DATA_CHANGED, 3, prefix + "/d", -1)


def test_set_watches2_persistent(server, raw, prefix):
    # setWatches2 (105): like setWatches plus persistent and
    # persistent-recursive lists; the stale data watch fires at once, the
    # persistent ones stay armed across several changes.
    a, b = raw(server), raw(server)
    ok(a.create(prefix, b"0"))
    ok(a.create(prefix + "/sub"))
    seen = a.last_zxid()
    ok(b.set_data(prefix, b"1"))
    c = raw(server)
    r = c.set_watches2(seen, data=[prefix], persistent=[prefix],
                       persistent_recursive=[prefix + "/sub"])
    assert (r.xid, r.err) == (-8, Err.OK)
    assert c.drain_events(0.5) == [(EventType.NODE_DATA_CHANGED, 3, prefix, -1)]
    for i in range(3):
        ok(b.set_data(prefix, b"x%d" % i))
        assert c.wait_event() == (EventType.NODE_DATA_CHANGED, 3, prefix, -1)
    ok(b.create(prefix + "/sub/a"))
    ok(b.create(prefix + "/sub/a/b"))
    evs = c.drain_events(0.5)
    # The persistent watch on prefix sees the child change of /sub? No: only
    # prefix's own children. /sub's subtree reports creates recursively.
    assert evs == [(EventType.NODE_CREATED, 3, prefix + "/sub/a", -1),
                   (EventType.NODE_CREATED, 3, prefix + "/sub/a/b", -1)], evs


def test_add_watch_persistent_and_recursive(server, raw, prefix):
    # addWatch (106): a persistent watch fires on every change of the node
    # (data, children, delete, re-create) and is not consumed; a recursive
    # one fires for the whole subtree and sends no child events. The reply
    # body is an ErrorResponse(0) in 3.8.
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    r = ok(a.add_watch(prefix, AddWatchMode.PERSISTENT))
    assert r.body == b"\x00\x00\x00\x00"
    ok(b.set_data(prefix, b"1"))
    ok(b.create(prefix + "/c"))
    ok(b.set_data(prefix + "/c", b"2"))  # not prefix itself: no event
    ok(b.delete(prefix + "/c"))
    assert a.drain_events(0.4) == [
        (EventType.NODE_DATA_CHANGED, 3, prefix, -1),
        (EventType.NODE_CHILDREN_CHANGED, 3, prefix, -1),
        (EventType.NODE_CHILDREN_CHANGED, 3, prefix, -1),
    ]
    ok(a.remove_watches(prefix, WatcherType.ANY))
    ok(a.add_watch(prefix, AddWatchMode.PERSISTENT_RECURSIVE))
    ok(b.create(prefix + "/x"))
    ok(b.create(prefix + "/x/y"))
    ok(b.set_data(prefix + "/x/y", b"v"))
    ok(b.delete(prefix + "/x/y"))
    ok(b.set_data(prefix, b"top"))
    assert a.drain_events(0.4) == [
        (EventType.NODE_CREATED, 3, prefix + "/x", -1),
        (EventType.NODE_CREATED, 3, prefix + "/x/y", -1),
        (EventType.NODE_DATA_CHANGED, 3, prefix + "/x/y", -1),
        (EventType.NODE_DELETED, 3, prefix + "/x/y", -1),
        (EventType.NODE_DATA_CHANGED, 3, prefix, -1),
    ]
    ok(a.remove_watches(prefix, WatcherType.ANY))


def test_one_shot_watches(server, raw, prefix):
    # Standard watches are one-shot: data/exists/child watches fire once,
    # with the right type, and not again until re-armed.
    a, b = raw(server), raw(server)
    ok(a.create(prefix))
    assert a.exists(prefix + "/n", watch=True).err == Err.NO_NODE
    ok(b.create(prefix + "/n"))
    assert a.wait_event() == (EventType.NODE_CREATED, 3, prefix + "/n", -1)
    ok(b.set_data(prefix + "/n", b"1"))
    assert a.drain_events(0.3) == []
    ok(a.get_data(prefix + "/n", watch=True))
    ok(a.get_children(prefix, watch=True))
    ok(b.set_data(prefix + "/n", b"2"))
    ok(b.set_data(prefix + "/n", b"3"))
    assert a.drain_events(0.3) == [(EventType.NODE_DATA_CHANGED, 3, prefix + "/n", -1)]
    ok(a.get_data(prefix + "/n", watch=True))
    ok(a.get_children(prefix + "/n", watch=True))
    ok(b.delete(prefix + "/n"))
    evs = a.drain_events(0.3)
    # Delete fires the node's data and child watches (one NodeDeleted) and
    # the parent's child watch.
    assert sorted(evs) == sorted([
        (EventType.NODE_DELETED, 3, prefix + "/n", -1),
        (EventType.NODE_CHILDREN_CHANGED, 3, prefix, -1),
    ]), evs
    # A child watch does not fire on a child's data change.
    ok(b.create(prefix + "/m"))
    ok(a.get_children(prefix, watch=True))
    ok(b.set_data(prefix + "/m", b"q"))
    assert a.drain_events(0.3) == []
    # setData with exists watch fires NodeDataChanged; a failed write fires nothing.
    ok(a.exists(prefix + "/m", watch=True))
    assert b.set_data(prefix + "/m", b"z", version=99).err == Err.BAD_VERSION
    assert a.drain_events(0.3) == []
    ok(b.set_data(prefix + "/m", b"z"))
    assert a.wait_event() == (EventType.NODE_DATA_CHANGED, 3, prefix + "/m", -1)


def test_connect_without_readonly_byte(server):
    # The handshake works with and without the trailing readOnly byte (old
    # clients omit it); the reply's readOnly byte is present exactly when
    # the request carried one, and a rw server reports false.
    c = server.raw_unconnected()
    try:
        resp = c.connect(timeout_ms=10000, read_only=None)
        assert resp.session_id != 0 and resp.timeout == 10000 and len(resp.passwd) == 16
        assert resp.read_only is None, resp
        assert c.exists("/").err == Err.OK
        c.close_session()
    finally:
        c.close()
    c = server.raw_unconnected()
    try:
        resp = c.connect(timeout_ms=10000, read_only=True)
        assert resp.read_only is False, resp
        c.close_session()
    finally:
        c.close()


def test_session_timeout_negotiation(server):
    # Negotiated timeouts are clamped to [2, 20] ticks (tickTime 2000 here).
    for asked, got in ((1, 4000), (4000, 4000), (10000, 10000), (40000, 40000), (10 ** 6, 40000)):
        c = server.raw_unconnected()
        try:
            resp = c.connect(timeout_ms=asked)
            assert resp.timeout == got, (asked, resp)
            c.close_session()
        finally:
            c.close()


def test_pipelined_requests_fifo(server, raw, prefix):
    # DESIGN invariant 1: a session's requests are answered in the order
    # sent, and a read after a write in the same session sees the write.
    c = raw(server)
    ok(c.create(prefix))
    c.log.clear()
    xids = []
    for i in range(50):
        xids.append(c.submit(Op.CREATE, op_create(prefix + "/n%02d" % i)[1]))
        xids.append(c.submit(Op.GET_CHILDREN, op_get_children(prefix)[1]))
        xids.append(c.submit(Op.SET_DATA, op_set_data(prefix, b"%d" % i)[1]))
        xids.append(c.submit(Op.GET_DATA, op_get_data(prefix)[1]))
    for x in xids:
        c.wait_reply(x)
    order = [r.xid for kind, r in c.log if kind == "reply"]
    assert order == xids
    by_xid = {r.xid: r for kind, r in c.log if kind == "reply"}
    for i in range(50):
        kids = by_xid[xids[4 * i + 1]].children
        assert len(kids) == i + 1, (i, kids)
        assert by_xid[xids[4 * i + 3]].data == b"%d" % i
    zx = [by_xid[x].zxid for x in xids[0::4]]
    assert zx == sorted(zx) and len(set(zx)) == 50


def test_big_data_roundtrip(server, raw, prefix):
    # Values up to about 1 MB round-trip; the stat reports the length.
    c = raw(server)
    blob = bytes(range(256)) * 4000  # 1,024,000 bytes
    ok(c.create(prefix, blob))
    g = ok(c.get_data(prefix))
    assert g.data == blob and g.stat.dataLength == len(blob)


def test_pipelined_large_reads_are_all_answered(server, raw, prefix):
    """Reads pipelined on one connection whose replies pass the reactor's
    output limit: those held back must be answered once the output drains,
    without the client sending anything more (it waits for them). They
    once stalled from depth 4 of 900 KB values until the client gave up."""
    c = raw(server)
    zkraw.ok(c.create(prefix, b""))
    blob = b"u" * 900_000
    for k in range(8):
        zkraw.ok(c.create("%s/b%d" % (prefix, k), blob))
    reader = raw(server)
    xids = [
        reader.submit(zkraw.Op.GET_DATA, zkraw.body_path_watch("%s/b%d" % (prefix, k), False))
        for k in range(8)
    ]
    for xid in xids:
        reply = reader.wait_reply(xid, timeout=10)
        assert reply.err == 0, reply
