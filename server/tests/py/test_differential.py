"""Differential tests: the same scenario on ours and on Apache ZooKeeper.

What it is: scenarios written against the raw client (and one through
kazoo recipes), each run on both servers in the same pytest run; every
reply, stat, event and multi result is recorded, normalised (differential.py)
and compared. With ZK_TARGETS naming one target, both sides are two servers
of that target, which checks that the scenarios are deterministic.

What it is not: assertions of what the answer should be — the reference is
the oracle here; test_raw.py pins the facts.

Invariant it keeps: a difference fails the test unless KNOWN_DIFFERENCES
names the scenario and label with a written reason. Scenarios that would
crash or stop the reference (ZK-BEHAVIOURS 21) are not run here.
"""

import re

import pytest

from differential import Side, compare
from zkraw import (
    ACL, OPEN_ACL_UNSAFE, AddWatchMode, Mode, Op, Perm, WatcherType, Writer,
    body_path, op_check, op_create, op_create2, op_delete, op_get_children,
    op_get_data, op_set_data,
)
import zkraw

# scenario name -> {label: reason}. Every entry needs a reason a reviewer
# accepts; an empty dict means ours must match the reference exactly.
KNOWN_DIFFERENCES = {
    "watches": {
        "a check sees b's watch":
            "checkWatches asks whether the *calling* client holds the watch "
            "(what the API promises and what removeWatches checks); 3.8.0 "
            "answers Ok when any session watches the path.",
    },
    "session-lifecycle": {
        "owner after wrong password":
            "3.8.0 drops the session's live connection before checking the "
            "password, so anyone who knows a session id can keep disconnecting "
            "its owner; we refuse the impostor and leave the owner connected.",
    },
}


def digest(user, password):
    import base64
    import hashlib
    return "%s:%s" % (user, base64.b64encode(hashlib.sha1(
        ("%s:%s" % (user, password)).encode()).digest()).decode())


# --------------------------------------------------------------- scenarios


def scn_crud_and_stats(s):
    # Stats through create/set/delete: versions, cversion, pzxid, lengths.
    a = s.session()
    p = s.prefix
    s.r("create parent", a.create(p, b"parent"))
    s.r("create2 child", a.create2(p + "/c1", b"one"))
    s.r("create null data", a.create2(p + "/null", None))
    s.r("create empty data", a.create2(p + "/empty", b""))
    s.r("get parent", a.get_data(p))
    s.r("get null", a.get_data(p + "/null"))  # ZK-BEHAVIOURS 10
    s.r("get empty", a.get_data(p + "/empty"))
    s.r("exists", a.exists(p + "/c1"))
    s.r("exists missing", a.exists(p + "/nope"))
    s.r("set v0", a.set_data(p + "/c1", b"two", 0))
    s.r("set bad version", a.set_data(p + "/c1", b"three", 0))
    s.r("set any version", a.set_data(p + "/c1", b"three", -1))
    s.r("set null", a.set_data(p + "/c1", None))
    s.r("get after set null", a.get_data(p + "/c1"))
    s.r("set missing", a.set_data(p + "/nope", b""))
    s.r("create exists", a.create(p + "/c1"))
    s.r("create no parent", a.create(p + "/nope/x"))
    s.r("delete not empty", a.delete(p))
    s.r("delete bad version", a.delete(p + "/c1", 1))
    s.r("delete", a.delete(p + "/c1", 4))
    s.r("delete missing", a.delete(p + "/c1"))
    s.r("parent after", a.get_data(p))
    s.r("children", a.get_children(p))
    s.r("children2", a.get_children2(p))
    s.r("all children number", a.get_all_children_number(p))
    s.r("children missing", a.get_children(p + "/nope"))
    s.r("sync", a.sync(p))
    s.r("sync missing", a.sync(p + "/nope"))  # ZK-BEHAVIOURS 18
    s.r("set root", a.set_data("/", None))
    s.r("get root children count", a.get_all_children_number(p))


def scn_sequential(s):
    a = s.session()
    p = s.prefix
    s.r("parent", a.create(p))
    for i in range(3):
        s.r("seq %d" % i, a.create(p + "/s-", flags=Mode.PERSISTENT_SEQUENTIAL))
    s.r("delete s1", a.delete(p + "/s-0000000001"))
    s.r("seq after delete", a.create(p + "/s-", flags=Mode.PERSISTENT_SEQUENTIAL))
    s.r("eseq", a.create(p + "/e-", flags=Mode.EPHEMERAL_SEQUENTIAL))
    s.r("trailing slash seq", a.create(p + "/", flags=Mode.PERSISTENT_SEQUENTIAL))  # ZKB 6
    s.r("trailing slash plain", a.create(p + "/", flags=Mode.PERSISTENT))
    s.r("seq after failure", a.create(p + "/", flags=Mode.PERSISTENT_SEQUENTIAL))
    s.r("seq in multi", a.multi([op_create(p + "/m-", flags=Mode.PERSISTENT_SEQUENTIAL),
                                 op_delete(p + "/s-0000000000"),
                                 op_create(p + "/m-", flags=Mode.PERSISTENT_SEQUENTIAL),
                                 op_create(p + "/m-", flags=Mode.EPHEMERAL_SEQUENTIAL)]))
    s.r("seq after multi", a.create(p + "/z-", flags=Mode.PERSISTENT_SEQUENTIAL))
    s.r("children", a.get_children2(p))
    s.r("nested seq parent", a.create(p + "/n"))
    s.r("nested seq", a.create(p + "/n/", flags=Mode.EPHEMERAL_SEQUENTIAL))
    s.r("nested seq 2", a.create(p + "/n/x", flags=Mode.PERSISTENT_SEQUENTIAL))


def scn_ephemerals_and_close(s):
    a, b = s.session(), s.session()
    p = s.prefix
    s.r("parent", a.create(p))
    s.r("eph", a.create2(p + "/e", b"x", flags=Mode.EPHEMERAL))
    s.r("eph child", a.create(p + "/e/c"))
    s.r("eph child in multi", a.multi([op_create(p + "/e2", flags=Mode.EPHEMERAL),
                                       op_create(p + "/e2/c")]))
    s.r("eph seq", a.create(p + "/es-", flags=Mode.EPHEMERAL_SEQUENTIAL))
    s.r("b eph", b.create(p + "/be", flags=Mode.EPHEMERAL))
    s.r("a ephemerals", a.get_ephemerals(p))
    s.r("a ephemerals prefix e", a.get_ephemerals(p + "/e"))
    s.r("a ephemerals exact", a.get_ephemerals(p + "/es-0000000002"))
    s.r("b ephemerals", b.get_ephemerals(p))
    s.r("b watch exists", b.exists(p + "/e", watch=True))
    s.r("b watch children", b.get_children(p, watch=True))
    s.r("b watch data", b.get_data(p + "/es-0000000002", watch=True))
    s.r("a close", a.close_session())  # ZK-BEHAVIOURS 19
    s.closed("a closed after closeSession", a)
    # The reference deletes a closed session's ephemerals in hash-set order,
    # so the order of the events for different nodes is arbitrary.
    s.events("b events", b, unordered=True)
    s.r("children after", b.get_children2(p))
    c = s.server.raw_unconnected()
    try:
        s.record("resume closed session", tuple(c.connect(
            session_id=a.session_id, passwd=a.passwd))[:3])
        s.closed("resume closed session closed", c)
    finally:
        c.close()


def scn_containers_and_ttl(s):
    # ZK-BEHAVIOURS 9.
    a = s.session()
    p = s.prefix
    s.r("parent", a.create(p))
    for opcode in (Op.CREATE, Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        for mode in range(-1, 8):
            name = "%s/o%d-m%d" % (p, opcode, mode)
            ttl = 5000 if opcode == Op.CREATE_TTL else None
            s.r("op %d mode %d" % (opcode, mode), a.create(name, b"d", flags=mode, ttl=ttl, op=opcode))
    for ttl in (1, 2 ** 40 - 1, 2 ** 40, 0, -5):
        s.r("ttl %d" % ttl, a.create_ttl(p + "/ttl%d" % ttl, flags=Mode.PERSISTENT_WITH_TTL, ttl=ttl))
    s.r("ttl seq", a.create_ttl(p + "/tts-", flags=Mode.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=100))
    s.r("container child", a.create(p + "/o19-m4/kid"))
    s.r("ephemerals", a.get_ephemerals(p))
    s.r("children", a.get_children2(p))


def scn_multi(s):
    # ZK-BEHAVIOURS 3 and 4, DESIGN invariant 3.
    a = s.session()
    p = s.prefix
    s.r("parent", a.create(p, b"0"))
    s.r("ok mix", a.multi([op_create(p + "/a", b"1"), op_create2(p + "/b", b"22"),
                           op_set_data(p + "/a", b"x", 0), op_check(p + "/a", 1),
                           op_delete(p + "/b"), op_create(p + "/b", None)]))
    s.r("fail first", a.multi([op_create(p + "/a"), op_create(p + "/c")]))
    s.r("fail middle", a.multi([op_create(p + "/c"), op_check(p, 3), op_delete(p + "/a")]))
    s.r("fail last", a.multi([op_create(p + "/c"), op_set_data(p + "/c", b""), op_delete(p + "/zz")]))
    s.r("fail not empty", a.multi([op_create(p + "/a/x"), op_delete(p + "/a")]))
    s.r("fail bad version delete", a.multi([op_delete(p + "/a", 7)]))
    s.r("fail bad path", a.multi([op_create(p + "//x")]))
    s.r("fail bad acl", a.multi([op_create(p + "/acl", acl=[])]))
    s.r("create then delete", a.multi([op_create(p + "/t"), op_delete(p + "/t")]))
    s.r("delete then create", a.multi([op_delete(p + "/a"), op_create(p + "/a", b"new")]))
    s.r("check missing", a.multi([op_check(p + "/nope", -1)]))
    s.r("check any version", a.multi([op_check(p + "/a", -1)]))
    s.r("empty", a.multi([]))
    s.r("read in multi", a.multi([op_create(p + "/r"), op_get_data(p)]))  # ZKB 4
    s.r("children in multi", a.multi([op_get_children(p)]))
    s.r("state after", a.get_children2(p))
    s.r("a after", a.get_data(p + "/a"))
    s.r("multiRead", a.multi_read([op_get_children(p), op_get_data(p), op_get_data(p + "/nope"),
                                   op_get_children(p + "/nope"), op_get_data(p + "/b")]))
    s.r("multiRead with write", a.multi_read([op_get_data(p), op_create(p + "/w")]))
    s.r("multiRead check", a.multi_read([op_check(p, 0)]))
    s.r("multiRead empty", a.multi_read([]))
    s.r("zxid after", a.exists(p))


def scn_acl_and_auth(s):
    # ZK-BEHAVIOURS 8 and 12; NoAuth on every guarded op.
    a, b = s.session(), s.session()
    p = s.prefix
    anyone = ACL(Perm.ALL, "world", "anyone")
    s.r("parent", a.create(p))
    s.r("auth a", a.auth("digest", "alice:pw"))
    s.r("whoami a", a.who_am_i())
    s.r("whoami b", b.who_am_i())
    s.r("create auth acl", a.create(p + "/mine", b"m", acl=[ACL(Perm.ALL, "auth", "")]))
    s.r("getacl mine", a.get_acl(p + "/mine"))
    s.r("b get", b.get_data(p + "/mine"))
    s.r("b set", b.set_data(p + "/mine", b""))
    s.r("b create child", b.create(p + "/mine/c"))
    s.r("b getacl", b.get_acl(p + "/mine"))
    s.r("b setacl", b.set_acl(p + "/mine", OPEN_ACL_UNSAFE))
    s.r("b exists", b.exists(p + "/mine"))
    s.r("b children", b.get_children(p + "/mine"))
    s.r("b multi", b.multi([op_set_data(p + "/mine", b"")]))
    s.r("b multiRead", b.multi_read([op_get_data(p + "/mine"), op_get_children(p + "/mine")]))
    s.r("b auth wrong", b.auth("digest", "alice:nope"))
    s.r("b get still", b.get_data(p + "/mine"))
    s.r("b auth right", b.auth("digest", "alice:pw"))
    s.r("b get now", b.get_data(p + "/mine"))
    s.r("dup acl", a.create(p + "/dup", acl=[anyone, anyone, ACL(1, "ip", "127.0.0.1"),
                                              ACL(1, "ip", "127.0.0.1"), ACL(31, "auth", "")]))
    s.r("getacl dup", a.get_acl(p + "/dup"))
    admin = ACL(Perm.ALL, "digest", digest("alice", "pw"))
    s.r("perms 0", a.create(p + "/p0", acl=[ACL(0, "world", "anyone"), admin]))
    s.r("perms 99", a.create(p + "/p99", acl=[ACL(99, "world", "anyone"), admin]))
    s.r("getacl p0", a.get_acl(p + "/p0"))
    s.r("getacl p99", a.get_acl(p + "/p99"))
    for i, acl in enumerate([[], [ACL(31, "digest", "nocolon")], [ACL(31, "world", "nobody")],
                             [ACL(31, "bogus", "x")], [ACL(31, "ip", "300.1.1.1")],
                             [ACL(31, "ip", "10.0.0.0/33")], [ACL(31, "ip", "10.0.0.0/8")],
                             [ACL(31, "world", "anyone"), ACL(31, "world", "nobody")]]):
        s.r("acl case %d" % i, a.create(p + "/bad%d" % i, acl=acl))
        s.r("setacl case %d" % i, a.set_acl(p + "/dup", acl))
    c = s.session()
    s.r("auth acl without auth", c.create(p + "/x", acl=[ACL(31, "auth", "")]))
    s.r("setacl bad version", a.set_acl(p + "/dup", OPEN_ACL_UNSAFE, 5))
    s.r("setacl v0", a.set_acl(p + "/dup", [ACL(Perm.READ | Perm.ADMIN, "world", "anyone")], 0))
    s.r("stat after setacl", a.exists(p + "/dup"))
    s.r("c create under read-only", c.create(p + "/dup/x"))
    s.r("c delete node with no-delete parent", c.delete(p + "/mine"))
    s.r("unknown scheme auth", c.auth("nosuch", "x"))  # ZK-BEHAVIOURS 12
    s.closed("after unknown scheme", c)
    d = s.server.raw(session_id=c.session_id, passwd=c.passwd)
    s.clients.append(d)
    s.r("resumed after auth failure", d.exists(p))
    s.r("ip auth", d.auth("ip", "1.2.3.4"))
    s.r("whoami d", d.who_am_i())


def scn_watches(s):
    # One-shot, persistent and recursive watches; event order per session;
    # ZK-BEHAVIOURS 14-16; DESIGN invariant 2.
    a, b = s.session(), s.session()
    p = s.prefix
    s.r("parent", a.create(p))
    s.r("a exists missing watch", a.exists(p + "/n", watch=True))
    s.r("b create n", b.create(p + "/n", b"1"))
    s.events("a events create", a)
    s.r("a get watch", a.get_data(p + "/n", watch=True))
    s.r("a exists watch", a.exists(p + "/n", watch=True))
    s.r("a children watch", a.get_children(p, watch=True))
    s.r("a children2 watch on n", a.get_children2(p + "/n", watch=True))
    s.r("b set n", b.set_data(p + "/n", b"2"))
    s.r("b set n again", b.set_data(p + "/n", b"3"))
    s.r("b create m", b.create(p + "/m"))
    s.events("a events set+create", a)
    s.r("a get watch again", a.get_data(p + "/n", watch=True))
    s.r("a children watch n", a.get_children(p + "/n", watch=True))
    s.r("a children watch p", a.get_children(p, watch=True))
    s.r("b delete n", b.delete(p + "/n"))
    s.events("a events delete", a)
    s.r("create pw", a.create(p + "/pw"))
    s.r("a persistent", a.add_watch(p + "/pw", AddWatchMode.PERSISTENT))
    s.r("a recursive", a.add_watch(p + "/m", AddWatchMode.PERSISTENT_RECURSIVE))
    s.r("b set pw", b.set_data(p + "/pw", b"x"))
    s.r("b set pw again", b.set_data(p + "/pw", b"y"))
    s.r("b create pw/c", b.create(p + "/pw/c"))
    s.r("b delete pw/c", b.delete(p + "/pw/c"))
    s.r("b create m/x", b.create(p + "/m/x"))
    s.r("b create m/x/y", b.create(p + "/m/x/y", b""))
    s.r("b set m/x/y", b.set_data(p + "/m/x/y", b"q"))
    s.r("b delete m/x/y", b.delete(p + "/m/x/y"))
    s.events("a events persistent", a)
    s.r("a check any", a.check_watches(p + "/pw", WatcherType.ANY))
    s.r("a check data", a.check_watches(p + "/pw", WatcherType.DATA))
    s.r("a check children", a.check_watches(p + "/pw", WatcherType.CHILDREN))
    s.r("a check persistent type", a.check_watches(p + "/pw", WatcherType.PERSISTENT))
    s.r("a remove persistent type", a.remove_watches(p + "/pw", WatcherType.PERSISTENT))
    s.r("a remove recursive type", a.remove_watches(p + "/m", WatcherType.PERSISTENT_RECURSIVE))
    s.r("a remove any", a.remove_watches(p + "/pw", WatcherType.ANY))
    s.r("a remove any again", a.remove_watches(p + "/pw", WatcherType.ANY))
    s.r("a remove recursive", a.remove_watches(p + "/m", WatcherType.ANY))
    s.r("b set pw third", b.set_data(p + "/pw", b"z"))
    s.r("b create m/z", b.create(p + "/m/z"))
    s.events("a events after remove", a)
    # ZK-BEHAVIOURS 15: a one-shot and a persistent watch of one session on
    # one node fire one event for one change. (What 3.8.0 does with the
    # persistent watch afterwards is ZOOKEEPER-4466, a bug we need not copy:
    # the watches are removed unrecorded.)
    s.r("create dup", a.create(p + "/dup"))
    s.r("dup data watch", a.get_data(p + "/dup", watch=True))
    s.r("dup persistent", a.add_watch(p + "/dup", AddWatchMode.PERSISTENT))
    s.r("b set dup", b.set_data(p + "/dup", b"1"))
    s.events("a events dup", a)
    a.remove_watches(p + "/dup", WatcherType.ANY)
    a.ping()
    a.drain_events(0.05)
    s.r("b data watch", b.get_data(p, watch=True))
    s.r("a check sees b's watch", a.check_watches(p, WatcherType.DATA))
    s.r("a remove b's watch", a.remove_watches(p, WatcherType.DATA))
    s.r("type 0 check", a.check_watches(p, 0))  # ZK-BEHAVIOURS 17
    s.r("type 0 remove", a.remove_watches(p, 0))
    s.r("mode 2 add", a.add_watch(p, 2))
    s.r("type 9 check", a.check_watches(p, 9))
    # Own event before own reply (ZK-BEHAVIOURS 16).
    s.r("a watch own", a.get_data(p + "/m", watch=True))
    a.log.clear()
    s.r("a set own", a.set_data(p + "/m", b"own"))
    s.wire_order("own write order", a)
    # Another session's change, then our read (DESIGN invariant 2).
    s.r("a watch again", a.get_data(p + "/m", watch=True))
    s.r("b set m", b.set_data(p + "/m", b"theirs"))
    a.log.clear()
    s.r("a read after", a.get_data(p + "/m"))
    s.wire_order("read after change order", a)
    s.events("a leftover", a)
    s.events("b events", b)


def scn_set_watches(s):
    # setWatches (101) / setWatches2 (105) with a stale relative zxid.
    a, b = s.session(), s.session()
    p = s.prefix
    s.r("parent", a.create(p))
    for n in ("d", "gone", "kids", "same"):
        s.r("create " + n, a.create(p + "/" + n))
    seen = a.last_zxid()
    s.r("b set d", b.set_data(p + "/d", b"new"))
    s.r("b delete gone", b.delete(p + "/gone"))
    s.r("b create born", b.create(p + "/born"))
    s.r("b create kid", b.create(p + "/kids/k"))
    c = s.session()
    s.r("setWatches", c.set_watches(seen, data=[p + "/d", p + "/gone", p + "/same"],
                                    exist=[p + "/born", p + "/never", p + "/same"],
                                    child=[p + "/kids", p + "/same", p + "/none"]))
    s.events("c events", c)
    s.r("b create never", b.create(p + "/never"))
    s.r("b set same", b.set_data(p + "/same", b"s"))
    s.events("c events after", c)
    d = s.session()
    now = d.last_zxid()
    s.r("setWatches2 stale", d.set_watches2(seen, data=[p + "/d"], persistent=[p],
                                            persistent_recursive=[p + "/kids"]))
    s.events("d events", d)
    s.r("setWatches2 current", d.set_watches2(now, data=[p + "/born"], exist=[p + "/nah"]))
    s.events("d events current", d)
    s.r("b set p", b.set_data(p, b"1"))
    s.r("b create kid2", b.create(p + "/kids/k2"))
    s.r("b delete born", b.delete(p + "/born"))
    s.events("d events later", d)
    s.r("setWatches future zxid", d.set_watches(now + 1000, data=[p + "/d"]))
    s.events("d events future", d)


def scn_paths(s):
    # ZK-BEHAVIOURS 5, 6, 7.
    a = s.session()
    p = s.prefix
    s.r("parent", a.create(p))
    for path in ("", "/", p + "/", p[1:], "/" + p, p + "/.", p + "//x", p + "/..", "/zookeeper/",
                 "/zookeeper/quota", "/zookeeper/config"):
        s.r("get %r" % path, a.get_data(path))
        s.r("exists %r" % path, a.exists(path))
        s.r("children %r" % path, a.get_children(path))
    for path in (p + "/./b", p + "/../b", p + "//b", "/" + p, p + "/a\x00b", p + "/.", p + "/..",
                 p[1:], "", p + "/\x01", p + "/\u00e9t\u00e9", p + "/a b", p + "/\ud7ff",
                 p + "/\ufffe", p + "/\U0001f600", p + "/zookeeper", p + "/-"):
        s.r("create %r" % path, a.create(path))
    s.r("seq slash", a.create(p + "/", flags=Mode.PERSISTENT_SEQUENTIAL))
    s.r("plain slash", a.create(p + "/", flags=Mode.PERSISTENT))
    leaf = p.strip("/")
    s.r("zk child", a.create("/zookeeper/" + leaf))
    s.r("quota child", a.create("/zookeeper/quota/" + leaf))
    s.r("config child", a.create("/zookeeper/config/" + leaf))
    s.r("delete zk child", a.delete("/zookeeper/" + leaf))
    s.r("delete quota child", a.delete("/zookeeper/quota/" + leaf))
    s.r("set config", a.set_data("/zookeeper/config", b"x"))
    s.r("setacl config", a.set_acl("/zookeeper/config", OPEN_ACL_UNSAFE))
    for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        s.r("delete %s" % path, a.delete(path))
    s.r("getacl config", a.get_acl("/zookeeper/config"))
    s.r("getacl zookeeper", a.get_acl("/zookeeper"))
    s.r("sync bad path", a.sync("nope"))
    s.r("delete bad path", a.delete(p + "/"))
    s.r("set bad path", a.set_data("//x", b""))
    s.r("getEphemerals bad", a.get_ephemerals("nope"))
    s.r("allChildren bad", a.get_all_children_number(""))
    s.r("addWatch bad", a.add_watch("nope", 0))
    s.r("children", a.get_children(p))


def scn_zxid_accounting(s):
    # ZK-BEHAVIOURS 2: which requests consume a zxid.
    a = s.session()
    p = s.prefix
    s.r("parent", a.create(p))
    s.r("ro", a.create(p + "/ro", acl=[ACL(Perm.READ, "world", "anyone")]))
    steps = [
        ("NodeExists", lambda: a.create(p)),
        ("NoNode", lambda: a.delete(p + "/x")),
        ("BadVersion", lambda: a.set_data(p, b"", 9)),
        ("BadArguments", lambda: a.create(p + "/")),
        ("NoAuth", lambda: a.set_data(p + "/ro", b"")),
        ("InvalidACL", lambda: a.create(p + "/x", acl=[])),
        ("NotEmpty", lambda: a.delete(p)),
        ("failed multi", lambda: a.multi([op_delete(p + "/x")])),
        ("empty multi", lambda: a.multi([])),
        ("read multi", lambda: a.multi([op_get_data(p)])),
        ("write multiRead", lambda: a.multi_read([op_delete(p + "/x")])),
        ("read", lambda: a.get_data(p)),
        ("sync", lambda: a.sync(p)),
        ("auth", lambda: a.auth("digest", "u:p")),
        ("setWatches", lambda: a.set_watches(0, data=[p])),
        ("checkWatches", lambda: a.check_watches(p, WatcherType.DATA)),
        ("removeWatches", lambda: a.remove_watches(p, WatcherType.DATA)),
        ("addWatch", lambda: a.add_watch(p, 0)),
        ("getEphemerals", lambda: a.get_ephemerals(p)),
        ("whoAmI", lambda: a.who_am_i()),
        ("ping", lambda: a.ping()),
    ]
    for label, fn in steps:
        s.r(label, fn())
        s.r(label + ": zxid after", a.exists("/"))
    b = s.session()
    s.r("after session create", a.exists("/"))
    s.r("b close", b.close_session())
    s.r("after session close", a.exists("/"))


def scn_odd_opcodes(s):
    # Opcodes clients do not normally send: internal ones, disabled ones,
    # unknown ones (ZK-BEHAVIOURS 11). Each on its own connection.
    p = s.prefix
    a = s.session()
    s.r("parent", a.create(p))
    cases = [
        ("deleteContainer", Op.DELETE_CONTAINER, body_path(p)),
        ("reconfig", Op.RECONFIG, Writer().string("").string("").string("").long(-1).bytes()),
        ("createSession opcode", Op.CREATE_SESSION, b""),
        ("sasl", Op.SASL, Writer().buffer(b"").bytes()),
        ("notification opcode", Op.NOTIFICATION, b""),
        ("error opcode", Op.ERROR, b""),
        ("unknown 999", 999, b"\x00" * 8),
        ("unknown 23", 23, b""),
        ("unknown 108", 108, b""),
    ]
    for label, opcode, body in cases:
        c = s.session(timeout_ms=10000)
        xid = c.submit(opcode, body)
        s.call(label, c.wait_reply, xid, timeout=3.0)
        s.closed(label + ": connection", c, timeout=1.0)
    s.r("parent after", a.get_children2(p))


def scn_session_lifecycle(s):
    a = s.session(timeout_ms=10000)
    p = s.prefix
    s.record("negotiated", a.negotiated_timeout)
    s.r("parent", a.create(p))
    s.r("eph", a.create(p + "/e", flags=Mode.EPHEMERAL))
    b = s.server.raw(timeout_ms=12000, session_id=a.session_id, passwd=a.passwd)
    s.clients.append(b)
    s.record("moved session", (s.name_session(b.session_id), b.negotiated_timeout))
    s.closed("old connection", a)
    s.r("eph after move", b.exists(p + "/e"))
    s.r("ephemerals after move", b.get_ephemerals(p))
    bad = s.server.raw_unconnected()
    try:
        resp = bad.connect(session_id=b.session_id, passwd=b"\x02" * 16)
        s.record("wrong password", (resp.timeout, resp.session_id, resp.passwd))
        s.closed("wrong password connection", bad)
    finally:
        bad.close()
    s.closed("owner after wrong password", b, timeout=1.0)
    c = s.server.raw(timeout_ms=12000, session_id=b.session_id, passwd=b.passwd)
    s.clients.append(c)
    s.r("eph after wrong password", c.exists(p + "/e"))
    s.r("close", c.close_session())
    s.closed("after close", c)
    d = s.session()
    s.r("eph after close", d.exists(p + "/e"))
    for timeout in (1, 3999, 4001, 39999, 50000):
        e = s.session(timeout_ms=timeout)
        s.record("timeout %d" % timeout, e.negotiated_timeout)
        s.r("close %d" % timeout, e.close_session())


def scn_big_values(s):
    # ZK-BEHAVIOURS 13 and large data.
    a = s.session()
    p = s.prefix
    s.r("parent", a.create(p, b"\x00" * 1000))
    blob = bytes(range(256)) * 4000
    s.r("set 1MB", a.set_data(p, blob))
    g = a.get_data(p)
    s.record("get 1MB", (g.err, len(g.data or b""), g.data == blob))
    fixed = 8 + 4 + len(p) + 4 + 4
    ok_frame = zkraw.request_header(50, Op.SET_DATA) + Writer().string(p).buffer(
        b"q" * (1048575 - fixed)).int(-1).bytes()
    a.pending[50] = Op.SET_DATA
    a.send_frame(ok_frame)
    s.call("frame 1048575", a.wait_reply, 50, timeout=15)
    big_frame = zkraw.request_header(51, Op.SET_DATA) + Writer().string(p).buffer(
        b"q" * (1048576 - fixed)).int(-1).bytes()
    a.pending[51] = Op.SET_DATA

    def send_and_wait():
        a.send_frame(big_frame)  # the server may close while we still send
        return a.wait_reply(51, timeout=15)

    s.call("frame 1048576", send_and_wait)
    b = s.server.raw(session_id=a.session_id, passwd=a.passwd)
    s.clients.append(b)
    s.r("stat after", b.exists(p))
    s.r("create 1MB child", b.create(p + "/c", bytes(1024 * 1023)))
    s.r("multi big", b.multi([op_set_data(p + "/c", bytes(500000)), op_set_data(p, bytes(500000))]))
    s.r("stat c", b.exists(p + "/c"))


def scn_kazoo_recipes(s):
    # Lock, Counter, Queue through kazoo; then compare the whole subtree.
    from kazoo.client import KazooClient
    p = s.prefix
    a = s.session()
    s.r("parent", a.create(p))
    zk = KazooClient(hosts=s.server.addr, timeout=10)
    zk.start(timeout=15)
    try:
        s.name_session(zk.client_id[0])
        lock = zk.Lock(p + "/lock", "me")
        assert lock.acquire(timeout=10)
        held = a.get_children(p + "/lock")
        # kazoo prefixes lock nodes with a random uuid.
        s.record("lock tree while held", [re.sub(r"^[0-9a-f]{32}__", "<uuid>__", k)
                                          for k in held.children or []])
        lock.release()
        counter = zk.Counter(p + "/counter")
        for _ in range(5):
            counter += 1
        counter -= 2
        q = zk.Queue(p + "/queue")
        for item in (b"a", b"b", b"c"):
            q.put(item)
        s.record("queue get", q.get())
        t = zk.transaction()
        t.create(p + "/tx", b"1")
        t.set_data(p + "/counter", b"100")
        s.record("kazoo tx", [type(r).__name__ if isinstance(r, Exception) else
                              s.stat(zkraw.Stat(*r)) if isinstance(r, tuple) else r
                              for r in t.commit()])
        zk.ensure_path(p + "/deep/path/here")
    finally:
        zk.stop()
        zk.close()
    s.tree("tree", a, p)


def scn_acl_filtered_watches(s):
    # Watch events honour READ: a watcher whose identities may not read the
    # changed node (for NodeChildrenChanged, the parent) is not sent the
    # event, and its one-shot watch is consumed all the same. A recursive
    # watch is checked against the node that changed, not the one it was
    # set on (CVE-2024-23944).
    a, b = s.session(), s.session()
    p = s.prefix
    s.r("auth a", a.auth("digest", "alice:pw"))
    alice = ACL(Perm.ALL, "digest", digest("alice", "pw"))
    s.r("parent", a.create(p))
    s.r("b exists watch", b.exists(p + "/secret", watch=True))
    s.r("b children watch", b.get_children(p, watch=True))
    s.r("b recursive watch", b.add_watch(p, AddWatchMode.PERSISTENT_RECURSIVE))
    s.r("create secret", a.create(p + "/secret", b"s", acl=[alice]))
    s.events("b after create", b)
    s.r("b exists secret with watch", b.exists(p + "/secret", watch=True))
    s.r("b get secret", b.get_data(p + "/secret"))
    s.r("set secret", a.set_data(p + "/secret", b"t"))
    s.events("b after set", b)
    s.r("create open", a.create(p + "/open", b"o"))
    s.events("b after create open", b)
    s.r("b children watch again", b.get_children(p, watch=True))
    s.r("delete secret", a.delete(p + "/secret"))
    s.events("b after delete", b)
    s.r("vault", a.create(p + "/vault", acl=[alice]))
    s.events("b after vault", b)
    s.r("b children of vault", b.get_children(p + "/vault", watch=True))
    s.r("open child of vault", a.create(p + "/vault/x", b"x"))
    s.events("b after vault child", b)
    s.r("set open", a.set_data(p + "/open", b"p"))
    s.events("b after set open", b)


SCENARIOS = [
    scn_acl_filtered_watches, scn_crud_and_stats, scn_sequential, scn_ephemerals_and_close, scn_containers_and_ttl,
    scn_multi, scn_acl_and_auth, scn_watches, scn_set_watches, scn_paths, scn_zxid_accounting,
    scn_odd_opcodes, scn_session_lifecycle, scn_big_values, scn_kazoo_recipes,
]


def run_side(server, scenario):
    side = Side(server, scenario.__name__[4:].replace("_", "-"))
    try:
        scenario(side)
    except Exception as e:
        side.record("EXCEPTION", "%s: %s" % (type(e).__name__, e))
        side.error = e
    else:
        side.error = None
    finally:
        side.close_all()
    return side


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f.__name__[4:] for f in SCENARIOS])
def test_differential(servers, scenario):
    # The reference (right) runs first: a scenario that fails there is a bug
    # in the scenario, reported as such.
    right = run_side(servers["right"], scenario)
    if right.error is not None:
        raise right.error
    left = run_side(servers["left"], scenario)
    compare(scenario.__name__, left, right,
            KNOWN_DIFFERENCES.get(scenario.__name__[4:].replace("_", "-"), {}))
