"""Dynamic reconfiguration (ZooKeeper 3.5+ `reconfig`, opcode 16) on real
ensembles: the version the first leader gives the static list, removing
and re-adding a follower and an observer, a brand new
server joining, the leader removing itself, a restart on the files an
activated change leaves (`zoo.cfg.dynamic.<version>`, the rewritten
zoo.cfg and its `.bak`), the refusals and their error codes, zkCli's
`reconfig`, and the leader killed in the middle of a change.

What it is: end-to-end checks with kazoo and zkCli against
`ensemble.Ensemble` with `reconfigEnabled=true` and the super user
(super:test) set by the Java property
`zookeeper.DigestAuthenticationProvider.superDigest`; ours on one storage
backend, Apache ZooKeeper 3.8 too with ZK_ENSEMBLE_TARGETS=ours,reference.
After a change, every member of the new list must show the same
/zookeeper/config text (server lines and `version=<hex zxid of the
change>`) once it has synced, and writes must still commit.

What it is not: a timing test. Waits are bounded (a test fails when a
bounded wait runs out) but no duration is asserted.

Invariant it keeps: every process and client a test starts is stopped by a
finalizer, whatever the outcome.
"""

import os
import socket
import subprocess

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, BadVersionError, ConnectionLoss, KazooException,
                              NewConfigNoQuorumError, NoAuthError, ReconfigDisabledError)
from kazoo.handlers.threading import KazooTimeoutError

import harness
from ensemble import Ensemble, _free_ports, ensemble_params

TARGETS = ensemble_params(one_per_kind=True)

# The digest of super:test, as the reference's docs give it.
SUPER_DIGEST = ("-Dzookeeper.DigestAuthenticationProvider.superDigest="
                "super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
SUPER_AUTH = [("digest", "super:test")]
RECONFIG = {"reconfigEnabled": "true"}
CONFIG = "/zookeeper/config"


# -- fixtures and helpers -------------------------------------------------------------


def start_reconfigurable(ensembles, target, **kw):
    """An ensemble with reconfig enabled and the super user set."""
    kw.setdefault("extra", dict(RECONFIG))
    kw.setdefault("properties", [SUPER_DIGEST])
    return wait_synced(ensembles(target, **kw))


def prepared(request, target, voters=3, observers=0, extra=RECONFIG):
    """An ensemble like `start_reconfigurable`'s, its nodes' directories
    and configs written but no process started (stopped after the test)."""
    kind, backend = target
    ens = Ensemble(kind, backend=backend, voters=voters, observers=observers,
                   extra=dict(extra), properties=[SUPER_DIGEST])
    request.addfinalizer(ens.stop)
    harness.require(kind)
    for n in ens.nodes:
        n.prepare()
    return ens


def launch(ens, indices=None):
    """Starts the nodes `indices` (default all) of a `prepared` ensemble
    and waits until they serve."""
    if indices is None:
        indices = range(len(ens))
    for i in indices:
        ens[i].spawn()
    ens.wait_serving(list(indices))
    return ens


def wait_synced(ens, timeout=20.0):
    """Waits until the leader counts every running voter but itself as a
    synced follower: a change is refused (NewConfigNoQuorum) until enough
    of its voters are, on the reference as on ours."""
    voters = [n for n in ens.nodes if not n.observer and n.alive()]
    harness.wait_until(
        lambda: ens[ens.wait_leader()].mntr().get("zk_synced_followers") == str(len(voters) - 1),
        timeout=timeout, what="%d synced followers on the leader" % (len(voters) - 1))
    return ens


def spec(node, role=None):
    """`node`'s server line for a reconfig, with its client address."""
    role = role or ("observer" if node.observer else "participant")
    return "server.%d=%s:%d:%d:%s;%s:%d" % (node.myid, node.host, node.quorum_port,
                                            node.election_port, role, node.host, node.port)


def parse_config(text):
    """/zookeeper/config text -> ({id: server spec}, version hex string)."""
    servers, version = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        key, value = line.split("=", 1)
        if key == "version":
            version = value
        else:
            assert key.startswith("server."), text
            servers[int(key[len("server."):])] = value
    return servers, version


def index_of(ens, myid):
    return [n.myid for n in ens.nodes].index(myid)


def config_on(node, timeout=5.0):
    """(text, stat) of /zookeeper/config as `node` has it after a sync,
    through a client on that node only; None when it does not answer."""
    c = KazooClient(hosts=node.addr, timeout=timeout, command_retry=None,
                    connection_retry={"max_tries": 3, "delay": 0.1, "max_delay": 0.5})
    try:
        c.start(timeout=timeout)
        c.sync(CONFIG)
        data, stat = c.get(CONFIG)
        return data.decode(), stat
    except (KazooException, KazooTimeoutError):
        return None
    finally:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def wait_config(ens, text, indices=None, timeout=30.0):
    """Waits until every member in `indices` (default: those `text` lists)
    shows `text` as /zookeeper/config after a sync; returns `text`."""
    if indices is None:
        listed = parse_config(text)[0]
        indices = [index_of(ens, myid) for myid in sorted(listed)]
    seen = {}

    def agree():
        for i in indices:
            got = config_on(ens[i])
            seen[ens[i].myid] = got[0] if got else None
            if got is None or got[0] != text:
                return False
        return True

    try:
        harness.wait_until(agree, timeout=timeout, interval=0.2,
                           what="members %r to show the config" % [ens[i].myid for i in indices])
    except AssertionError as e:
        raise AssertionError("%s\nwanted:\n%s\nseen: %r\n%s" % (e, text, seen,
                                                                ens.log_tails(25))) from None
    return text


def check_writes(ens, kz, path, indices):
    """A create through the members `indices` commits and every one of them
    reads it after a sync."""
    c = kz(ens.connect_string(indices))
    c.ensure_path(os.path.dirname(path) or "/")
    c.create(path, b"committed")
    for i in indices:
        r = kz(ens[i])
        r.sync(path)
        assert r.get(path)[0] == b"committed", ens[i]


def check_change(ens, data, stat, want_ids):
    """The answer to an accepted reconfig: the new list names `want_ids`,
    and its version is the zxid of the change (the config node's mzxid)."""
    text = data.decode()
    servers, version = parse_config(text)
    assert sorted(servers) == sorted(want_ids), text
    assert version is not None and version != "0", text
    assert int(version, 16) == stat.mzxid, (text, stat)
    return text


def a_follower(ens):
    """(index of a follower, indices of the other members) of a voters-only
    ensemble: the member a test removes without also changing the leader."""
    out = ens.followers()[-1]
    return out, [i for i in range(len(ens)) if i != out]


def ids(ens, indices):
    return [ens[i].myid for i in indices]


def read(path):
    with open(path) as f:
        return f.read()


def check_files(node, servers, version, original, timeout=10.0):
    """`node` has written the list `servers` of `version` (hex) as
    zoo.cfg.dynamic.<version>, rewritten zoo.cfg without server lines and
    naming that file in dynamicConfigFile=, and kept `original` (the
    zoo.cfg it was started on) as zoo.cfg.bak."""
    cfg = os.path.join(node.dir, "zoo.cfg")
    name = "zoo.cfg.dynamic.%s" % version

    def pointers():
        return [l.split("=", 1)[1].strip() for l in read(cfg).splitlines()
                if l.startswith("dynamicConfigFile=")]

    harness.wait_until(lambda: [os.path.basename(p) for p in pointers()] == [name],
                       timeout=timeout, what="node %d's zoo.cfg to name %s" % (node.myid, name))
    static = read(cfg)
    assert not [l for l in static.splitlines() if l.startswith("server.")], static
    dynamic = pointers()[0]
    if not os.path.isabs(dynamic):
        dynamic = os.path.join(node.dir, dynamic)
    assert os.path.isfile(dynamic), dynamic
    listed = parse_config(read(dynamic))[0]
    assert listed == servers, (dynamic, listed, servers)
    assert read(cfg + ".bak") == original, node


def wait_quorum_size(ens, leader, size, timeout=20.0):
    harness.wait_until(lambda: ens[leader].mntr().get("zk_quorum_size") == str(size),
                       timeout=timeout, what="zk_quorum_size %d on the leader" % size)


# -- 0. the list in force at the start ---------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_the_first_leader_versions_the_static_list(request, target):
    """With reconfigEnabled, the list an ensemble first establishes gets a
    version, as the reference gives it (ZOOKEEPER-1783), on every member
    (also /zookeeper/config's mzxid) instead of the static file's 0, so
    that it outranks the unversioned list a joining server starts on. Each
    member writes it to zoo.cfg.dynamic.<version>, points zoo.cfg at it and
    keeps the original as zoo.cfg.bak. The reference's version is its first
    NEWLEADER's zxid (0x100000000); ours is the zxid of the txn that
    versions it, the first of epoch 1 (0x100000001), since our versions are
    always the zxid of the txn that made the list."""
    ens = prepared(request, target)
    originals = {n.myid: read(os.path.join(n.dir, "zoo.cfg")) for n in ens.nodes}
    wait_synced(launch(ens))
    version = "100000000" if target[0] == harness.REFERENCE else "100000001"
    want = "\n".join(n.server_line() + ":participant" for n in ens.nodes) + "\nversion=" + version
    wait_config(ens, want, timeout=10)
    servers = parse_config(want)[0]
    for n in ens.nodes:
        assert config_on(n)[1].mzxid == int(version, 16), n
        check_files(n, servers, version, originals[n.myid])


# -- 1. a follower leaves and comes back ------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_remove_a_follower_then_add_it_back(ensembles, kz, prefix, target):
    """reconfig(leaving=<a follower>) as super: the answer and every
    remaining member's /zookeeper/config (after sync) lack its server line
    and carry the change's zxid as version; the leader stays and counts 2
    voters; writes still commit. Re-adding it (joining, as a participant
    with its client address) makes it serve again: it reads a znode
    written while it was out, and all three show the same 3-member list."""
    ens = start_reconfigurable(ensembles, target)
    leader = ens.wait_leader()
    out, rest = a_follower(ens)
    admin = kz(ens.connect_string(rest), auth_data=SUPER_AUTH)
    admin.ensure_path(prefix)
    data, stat = admin.reconfig(joining=None, leaving=str(ens[out].myid), new_members=None)
    text = check_change(ens, data, stat, ids(ens, rest))
    wait_config(ens, text)
    check_writes(ens, kz, prefix + "/after-remove", rest)
    assert ens.wait_leader(exclude=(out,)) == leader
    wait_quorum_size(ens, leader, 2)

    admin.create(prefix + "/while-out", b"written while it was out")
    # The removed server goes on serving, as a learner that does not vote
    # (the reference keeps it a non-voting follower): it reads what the
    # ensemble commits.
    ens.wait_serving([out], timeout=20)
    removed = kz(ens[out])
    removed.sync(prefix + "/while-out")
    assert removed.get(prefix + "/while-out")[0] == b"written while it was out"
    line = spec(ens[out])
    data, stat = admin.reconfig(joining=line, leaving=None, new_members=None)
    text = check_change(ens, data, stat, [1, 2, 3])
    assert line in text.splitlines(), text
    ens.wait_serving([out])
    wait_config(ens, text)
    back = kz(ens[out])
    back.sync(prefix + "/while-out")
    assert back.get(prefix + "/while-out")[0] == b"written while it was out"
    wait_quorum_size(ens, ens.wait_leader(), 3)
    check_writes(ens, kz, prefix + "/after-add", [0, 1, 2])


@pytest.mark.parametrize("target", TARGETS)
def test_a_follower_becomes_an_observer_and_back(ensembles, kz, prefix, target):
    """Joining again with another role changes a member's role: a follower
    turned observer serves as an observer and no longer counts toward the
    quorum (size 2); turned participant again it is a follower of 3."""
    ens = start_reconfigurable(ensembles, target)
    leader = ens.wait_leader()
    out, rest = a_follower(ens)
    admin = kz(ens.connect_string(rest), auth_data=SUPER_AUTH)
    data, stat = admin.reconfig(joining=spec(ens[out], "observer"), leaving=None,
                                new_members=None)
    text = check_change(ens, data, stat, [1, 2, 3])
    assert spec(ens[out], "observer") in text.splitlines(), text
    wait_config(ens, text)
    harness.wait_until(lambda: ens[out].mode() == "observer", timeout=20,
                       what="node %d serving as an observer" % ens[out].myid)
    wait_quorum_size(ens, leader, 2)
    check_writes(ens, kz, prefix + "/as-observer", [0, 1, 2])

    data, stat = admin.reconfig(joining=spec(ens[out], "participant"), leaving=None,
                                new_members=None)
    text = check_change(ens, data, stat, [1, 2, 3])
    wait_config(ens, text)
    harness.wait_until(lambda: ens[out].mode() == "follower", timeout=20,
                       what="node %d serving as a follower" % ens[out].myid)
    wait_quorum_size(ens, ens.wait_leader(), 3)
    check_writes(ens, kz, prefix + "/as-follower", [0, 1, 2])


@pytest.mark.parametrize("target", TARGETS)
def test_a_follower_moves_its_ports(ensembles, kz, prefix, target):
    """Joining again with other quorum, election and client ports moves a
    member: it listens on the new election and client ports and no longer
    on the old ones (a reference follower does not listen on its quorum
    port at all), clients reach it on the new one, the ensemble keeps
    committing with it (the other follower killed, so it is needed for the
    quorum), and it comes back on the new ports from its dynamic file
    after a restart."""
    ens = start_reconfigurable(ensembles, target)
    out, rest = a_follower(ens)
    node = ens[out]
    old_election, old_client = node.election_port, node.port
    node.quorum_port, node.election_port, node.port = _free_ports(3)
    admin = kz(ens.connect_string(rest), auth_data=SUPER_AUTH)
    data, stat = admin.reconfig(joining=spec(node), leaving=None, new_members=None)
    text = check_change(ens, data, stat, [1, 2, 3])
    assert spec(node) in text.splitlines(), text
    wait_config(ens, text)

    def listening(port):
        try:
            socket.create_connection((node.host, port), timeout=1).close()
            return True
        except OSError:
            return False

    def moved():
        return (listening(node.election_port) and listening(node.port)
                and not listening(old_election) and not listening(old_client))

    harness.wait_until(moved, timeout=20, what="node %d on its new ports" % node.myid)
    other = [i for i in rest if i != ens.wait_leader()][0]
    ens.kill9(other)
    alive = [i for i in range(len(ens)) if i != other]
    check_writes(ens, kz, prefix + "/moved", alive)
    ens.restart(out)
    harness.wait_until(moved, timeout=20, what="node %d back on its new ports" % node.myid)
    check_writes(ens, kz, prefix + "/moved-restarted", alive)


@pytest.mark.parametrize("target", TARGETS)
def test_a_whole_new_member_list(ensembles, kz, prefix, target):
    """Non-incremental reconfig (new_members, comma-separated): the list
    given replaces the one in force, here dropping the observer and then
    bringing it back, each time on every member and with writes
    committing."""
    ens = start_reconfigurable(ensembles, target, voters=3, observers=1)
    admin = kz(ens.connect_string([0, 1, 2]), auth_data=SUPER_AUTH)
    voters = [spec(ens[i]) for i in range(3)]
    data, stat = admin.reconfig(joining=None, leaving=None, new_members=",".join(voters))
    text = check_change(ens, data, stat, [1, 2, 3])
    wait_config(ens, text)
    check_writes(ens, kz, prefix + "/three", [0, 1, 2])
    data, stat = admin.reconfig(joining=None, leaving=None,
                                new_members=",".join(voters + [spec(ens[3])]))
    text = check_change(ens, data, stat, [1, 2, 3, 4])
    assert spec(ens[3]) in text.splitlines(), text
    wait_config(ens, text)
    harness.wait_until(lambda: ens[3].mode() == "observer", timeout=20,
                       what="node 4 serving as an observer again")
    check_writes(ens, kz, prefix + "/four", [0, 1, 2, 3])


# -- 2. an observer leaves and comes back -----------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_remove_an_observer_then_add_it_back(ensembles, kz, prefix, target):
    """3 voters and observer 4: removing the observer leaves the 3 voters
    (quorum size 3 all along); re-adding it as an observer makes it serve
    as an observer again, reading what was written meanwhile."""
    ens = start_reconfigurable(ensembles, target, voters=3, observers=1)
    obs = 3
    assert ens.modes()[obs] == "observer", ens.modes()
    admin = kz(ens.connect_string([0, 1, 2]), auth_data=SUPER_AUTH)
    admin.ensure_path(prefix)
    data, stat = admin.reconfig(joining=None, leaving="4", new_members=None)
    text = check_change(ens, data, stat, [1, 2, 3])
    wait_config(ens, text)
    leader = ens.wait_leader()
    wait_quorum_size(ens, leader, 3)
    check_writes(ens, kz, prefix + "/after-remove", [0, 1, 2])

    admin.create(prefix + "/while-out", b"o")
    line = spec(ens[obs], "observer")
    data, stat = admin.reconfig(joining=line, leaving=None, new_members=None)
    text = check_change(ens, data, stat, [1, 2, 3, 4])
    assert line in text.splitlines(), text
    ens.wait_serving([obs])
    wait_config(ens, text)
    harness.wait_until(lambda: ens[obs].mode() == "observer", timeout=20,
                       what="node 4 serving as an observer")
    on_obs = kz(ens[obs])
    on_obs.sync(prefix + "/while-out")
    assert on_obs.get(prefix + "/while-out")[0] == b"o"
    assert ens[ens.wait_leader()].mntr()["zk_quorum_size"] == "3"
    check_writes(ens, kz, prefix + "/via-all", [0, 1, 2, 3])


# -- 3. a brand new server joins --------------------------------------------------------

def write_config_listing(node, members):
    """Rewrites `node`'s zoo.cfg (as `Node.write_config` writes it) with
    the server lines of `members` only."""
    cfg = node.write_config()
    keep = {"server.%d=" % m.myid for m in members}
    with open(cfg) as f:
        lines = [l for l in f.read().splitlines()
                 if not l.startswith("server.") or any(l.startswith(k) for k in keep)]
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")


@pytest.mark.parametrize("target", TARGETS)
def test_a_new_server_joins(request, kz, prefix, target):
    """Nodes 1-3 start on a list of 1-3; node 4 starts on a list of 1-4
    (itself a participant) and syncs with them as a non-voter.
    reconfig(joining=node 4) makes all four show the 4-member list, with
    4 voters; node 4 reads what was written before it joined, and writes
    through node 4 commit."""
    ens = prepared(request, target, voters=4)
    for n in ens.nodes[:3]:
        write_config_listing(n, ens.nodes[:3])
    launch(ens, [0, 1, 2])
    wait_synced(ens)
    old = config_on(ens[0])
    assert old is not None and sorted(parse_config(old[0])[0]) == [1, 2, 3], old
    admin = kz(ens.connect_string([0, 1, 2]), auth_data=SUPER_AUTH)
    admin.ensure_path(prefix)
    admin.create(prefix + "/before", b"written before 4 joined")

    ens[3].spawn()
    ens.wait_serving([3])
    data, stat = admin.reconfig(joining=spec(ens[3]), leaving=None, new_members=None)
    text = check_change(ens, data, stat, [1, 2, 3, 4])
    wait_config(ens, text)
    wait_quorum_size(ens, ens.wait_leader(), 4)
    four = kz(ens[3])
    four.sync(prefix + "/before")
    assert four.get(prefix + "/before")[0] == b"written before 4 joined"
    four.create(prefix + "/via-4", b"4")
    for i in range(3):
        c = kz(ens[i])
        c.sync(prefix + "/via-4")
        assert c.get(prefix + "/via-4")[0] == b"4", ens[i]


# -- 4. the leader removes itself -------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_the_leader_removes_itself(ensembles, kz, prefix, target):
    """reconfig(leaving=<leader>) through a follower: a new leader is
    elected among the other two, the old leader's id is gone from their
    /zookeeper/config, and writes keep committing."""
    ens = start_reconfigurable(ensembles, target)
    leader = ens.wait_leader()
    rest = [i for i in range(len(ens)) if i != leader]
    admin = kz(ens.connect_string(rest), auth_data=SUPER_AUTH)
    admin.ensure_path(prefix)
    try:
        data, stat = admin.reconfig(joining=None, leaving=str(ens[leader].myid),
                                    new_members=None)
    except ConnectionLoss:
        # The reference's follower moves to the new leader as it applies
        # the change, dropping its clients before it answers.
        data = stat = None
    new = ens.wait_leader(exclude=(leader,))
    assert new in rest
    got = config_on(ens[new])
    assert got is not None
    text = check_change(ens, got[0].encode(), got[1], ids(ens, rest))
    if data is not None:
        assert data.decode() == text
    wait_config(ens, text)
    wait_quorum_size(ens, new, 2)
    check_writes(ens, kz, prefix + "/after", rest)


# -- 5. a restart reads the changed list ------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_restart_after_a_change_reads_the_dynamic_file(request, kz, prefix, target):
    """After reconfig(leaving=<a follower>) each remaining member has
    written the list to zoo.cfg.dynamic.<version>, rewritten zoo.cfg
    without server lines and with dynamicConfigFile= naming it, and kept
    the original as zoo.cfg.bak. With the removed node stopped, both
    restart on those files and serve the same /zookeeper/config (text and
    version), with 2 voters, and the data written before."""
    ens = prepared(request, target)
    originals = {}
    for n in ens.nodes:
        with open(os.path.join(n.dir, "zoo.cfg")) as f:
            originals[n.myid] = f.read()
    wait_synced(launch(ens))
    out, rest = a_follower(ens)
    admin = kz(ens.connect_string(rest), auth_data=SUPER_AUTH)
    admin.create(prefix, b"before the restart")
    data, stat = admin.reconfig(joining=None, leaving=str(ens[out].myid), new_members=None)
    text = check_change(ens, data, stat, ids(ens, rest))
    servers, version = parse_config(text)
    wait_config(ens, text)
    admin.stop()

    for i in rest:
        check_files(ens[i], servers, version, originals[ens[i].myid])

    ens.terminate(out)
    for i in rest:
        ens.terminate(i)
    for i in rest:
        ens.restart(i, wait=False)
    ens.wait_serving(rest)
    leader = ens.wait_leader()
    assert wait_config(ens, text) == text
    got = config_on(ens[rest[0]])
    assert got is not None and got[1].mzxid == stat.mzxid, (got, stat)
    wait_quorum_size(ens, leader, 2)
    c = kz(ens.connect_string(rest))
    c.sync(prefix)
    assert c.get(prefix)[0] == b"before the restart"
    check_writes(ens, kz, prefix + "/after-restart", rest)


# -- 6. refusals ------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_refusals(ensembles, kz, target):
    """The errors the reference answers with: NoAuth for a client that is
    not super, BadVersion for a from_config that is not the current
    version, BadArguments for a spec that does not parse and for a list
    without voters, NewConfigNoQuorum when a majority of the new voters is
    not synced (3 joining participants that do not run: 3 of 6). None of
    them changes the config."""
    ens = start_reconfigurable(ensembles, target)
    before = config_on(ens[0])
    assert before is not None
    anyone = kz(ens)
    with pytest.raises(NoAuthError):
        anyone.reconfig(joining=None, leaving="3", new_members=None)
    admin = kz(ens, auth_data=SUPER_AUTH)
    with pytest.raises(BadVersionError):
        admin.reconfig(joining=None, leaving="3", new_members=None, from_config=0x12345)
    with pytest.raises(BadArgumentsError):
        admin.reconfig(joining="some thing", leaving=None, new_members=None)
    with pytest.raises(BadArgumentsError):
        admin.reconfig(joining=None, leaving="1,2,3", new_members=None)
    ports = _free_ports(9)
    absent = ",".join("server.%d=127.0.0.1:%d:%d:participant;127.0.0.1:%d"
                      % (4 + k, ports[3 * k], ports[3 * k + 1], ports[3 * k + 2])
                      for k in range(3))
    with pytest.raises(NewConfigNoQuorumError):
        admin.reconfig(joining=absent, leaving=None, new_members=None)
    wait_config(ens, before[0], indices=range(3))
    # Still open to a change from the version in force.
    out, rest = a_follower(ens)
    data, stat = admin.reconfig(joining=None, leaving=str(ens[out].myid), new_members=None,
                                from_config=int(parse_config(before[0])[1], 16))
    wait_config(ens, check_change(ens, data, stat, ids(ens, rest)))


@pytest.mark.parametrize("target", TARGETS)
def test_reconfig_disabled(ensembles, kz, target):
    """Without reconfigEnabled, even the super user gets ReconfigDisabled,
    and the list stays as it was."""
    ens = ensembles(target, properties=[SUPER_DIGEST])
    before = config_on(ens[0])
    admin = kz(ens, auth_data=SUPER_AUTH)
    with pytest.raises(ReconfigDisabledError):
        admin.reconfig(joining=None, leaving="3", new_members=None)
    wait_config(ens, before[0], indices=range(3))


# -- 7. zkCli ---------------------------------------------------------------------------

def zkcli_env():
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    env["ZOO_LOG_DIR"] = "/tmp"
    return env


@pytest.mark.parametrize("target", TARGETS)
def test_zkcli_reconfig_remove_and_add(ensembles, kz, target):
    """zkCli, after `addauth digest super:test`: `reconfig -remove N` (a
    follower) prints the committed 2-member list, `reconfig -add
    server.N=...` the 3-member one with N's new line; the members then
    show that list."""
    harness.require_file(harness.ZK_CLI, "zookeeper")
    ens = start_reconfigurable(ensembles, target)
    out_node, rest = a_follower(ens)
    line = spec(ens[out_node])
    script = "\n".join([
        "addauth digest super:test",
        "reconfig -remove %d" % ens[out_node].myid,
        "reconfig -add %s" % line,
        "quit",
    ]) + "\n"
    p = subprocess.run([harness.ZK_CLI, "-server", ens.connect_string(rest)],
                       input=script.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=90, env=zkcli_env())
    out = p.stdout.decode("utf-8", "replace")
    lines = [l.strip() for l in out.splitlines() if not l.startswith("SLF4J:")]
    starts = [k for k, l in enumerate(lines) if l == "Committed new configuration:"]
    assert len(starts) == 2, out

    def block(k):
        got = []
        for l in lines[k + 1:]:
            got.append(l)
            if l.startswith("version="):
                break
        return got

    removed, added = block(starts[0]), block(starts[1])
    assert sorted(parse_config("\n".join(removed))[0]) == ids(ens, rest), out
    assert sorted(parse_config("\n".join(added))[0]) == [1, 2, 3], out
    assert line in added, out
    ens.wait_serving([out_node])
    wait_config(ens, "\n".join(added))


# -- 8. the leader dies in the middle of a change ---------------------------------------

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("moment", ["right-after-sending", "with-the-change-logged"])
def test_leader_killed_during_a_change(ensembles, kz, prefix, target, moment):
    """reconfig(leaving=<follower A>) sent asynchronously, and the leader
    killed -9: right after sending it (through follower B), or (through A)
    while B is paused, so that the change can be logged on the leader and A
    but not committed, since B's ack is needed for the new list (leader
    and B); B is continued once the leader is dead. Once the killed node
    is back, the members agree on one /zookeeper/config, the old list or
    the new one (the new one if the client was answered OK), writes
    commit, and a further change (undoing or doing the removal) is
    accepted."""
    ens = start_reconfigurable(ensembles, target)
    leader = ens.wait_leader()
    leaving, stay = [i for i in range(len(ens)) if i != leader]
    old = config_on(ens[stay])[0]
    paused = moment == "with-the-change-logged"
    admin = kz(ens[leaving if paused else stay], auth_data=SUPER_AUTH)
    admin.ensure_path(prefix)
    if paused:
        ens.sigstop(stay)
    pending = admin.reconfig_async(joining=None, leaving=str(ens[leaving].myid),
                                   new_members=None, from_config=-1)
    if paused:
        # Bounded: the change cannot commit while B is paused.
        try:
            pending.get(timeout=1.0)
        except (KazooException, KazooTimeoutError):
            pass
    ens.kill9(leader)
    if paused:
        ens.sigcont(stay)
    try:
        answered = pending.get(timeout=20)[0].decode()
    except (KazooException, KazooTimeoutError):
        answered = None
    ens.restart(leader, wait=False)
    ens.wait_serving([leader, stay])
    ens.wait_leader(timeout=60)

    def settled():
        got = config_on(ens[stay])
        return got and got[0]

    text = harness.wait_until(settled, timeout=30, what="node %d's config" % ens[stay].myid)
    servers, _ = parse_config(text)
    if answered is not None:
        assert text == answered, "the change was answered OK and is lost:\n%s\nvs\n%s" % (
            answered, text)
    else:
        assert text == old or sorted(servers) == sorted(
            [ens[leader].myid, ens[stay].myid]), (text, old)
    removed = ens[leaving].myid not in servers
    # Which way it went, for the record (-s, or the report of a failure).
    print("answered: %s; node %d removed: %s" % (answered is not None, ens[leaving].myid,
                                                 removed))
    if not removed:
        assert text == old, (text, old)
        ens.wait_serving([leaving])
    wait_config(ens, text)
    members = [index_of(ens, myid) for myid in sorted(servers)]
    check_writes(ens, kz, prefix + "/after", members)

    again = kz(ens.connect_string([leader, stay]), auth_data=SUPER_AUTH)
    if removed:
        data, stat = again.reconfig(joining=spec(ens[leaving]), leaving=None, new_members=None)
        want = [1, 2, 3]
    else:
        data, stat = again.reconfig(joining=None, leaving=str(ens[leaving].myid),
                                    new_members=None)
        want = [ens[leader].myid, ens[stay].myid]
    final = check_change(ens, data, stat, want)
    if removed:
        ens.wait_serving([leaving])
    wait_config(ens, final)
    check_writes(ens, kz, prefix + "/after-again", [index_of(ens, m) for m in want])
