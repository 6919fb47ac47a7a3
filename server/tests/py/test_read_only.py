"""Read-only mode (`readonlymode.enabled`): a member cut off from its quorum
keeps serving clients that asked for read-only sessions, from the state it
has, and refuses their writes with NotReadOnly; when the quorum is back it
closes those connections and the clients move to a read-write server.

Run on ours by default; with ZK_ENSEMBLE_TARGETS=ours,reference the same
scenarios run on Apache ZooKeeper 3.8 too, which is where every expectation
below was checked.
"""
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState

import harness
import zkraw
from ensemble import ensemble_params
from zkraw import Err, Op

FAULT_TARGETS = ensemble_params(one_per_kind=True)

READ_ONLY = ["-Dreadonlymode.enabled=true"]
# The reference creates a new session on a read-only server only with local
# sessions on (otherwise it answers the ConnectRequest with a NotReadOnly
# reply header); deployments that use read-only mode set these, as kazoo's
# harness does. Ours creates read-only sessions either way.
LOCAL_SESSIONS = {"localSessionsEnabled": "true", "localSessionsUpgradingEnabled": "true"}


def cut_off(ens, keep):
    """Stops every member but `keep` and waits until it serves read-only."""
    for i in range(len(ens)):
        if i != keep:
            ens.terminate(i)
    harness.wait_until(lambda: ens[keep].mode() == "read-only", timeout=30,
                       what="node %d serving read-only (modes %r)" % (keep, ens.modes()))


def raw_client(node, read_only):
    c = zkraw.Client(node.host, node.port, timeout=5.0)
    c.connect(timeout_ms=10000, read_only=read_only)
    return c


@pytest.mark.parametrize("target", FAULT_TARGETS)
def test_cut_off_member_serves_read_only_clients(ensembles, prefix, target):
    ens = ensembles(target, properties=READ_ONLY, extra=LOCAL_SESSIONS)
    k = KazooClient(hosts=ens.connect_string(), timeout=10.0)
    k.start(timeout=20)
    k.create(prefix + "/a", b"before", makepath=True)
    k.stop()
    k.close()
    keep = ens.followers()[0]
    harness.wait_until(lambda: ens[keep].mode() == "follower", what="a follower")
    node = ens[keep]
    cut_off(ens, keep)

    four = node.four("isro")
    assert (four.decode() if isinstance(four, bytes) else four) == "ro"
    assert node.mntr()["zk_server_state"] == "read-only"

    # A client that did not ask for read-only is refused.
    plain = zkraw.Client(node.host, node.port, timeout=5.0)
    try:
        with pytest.raises((zkraw.Closed, OSError)):
            plain.connect(timeout_ms=10000, read_only=False)
    finally:
        plain.close()

    c = raw_client(node, read_only=True)
    try:
        assert c.connect_response.read_only is True
        assert c.session_id != 0
        r = c.call(Op.GET_DATA, zkraw.body_path_watch(prefix + "/a", False))
        assert r.ok and r.data == b"before", r
        r = c.call(Op.GET_CHILDREN, zkraw.body_path_watch(prefix, False))
        assert r.ok and r.children == ["a"], r
        writes = [
            (Op.CREATE, zkraw.body_create(prefix + "/b")),
            (Op.SET_DATA, zkraw.body_set_data(prefix + "/a", b"x")),
            (Op.DELETE, zkraw.body_path_version(prefix + "/a", -1)),
            (Op.CHECK, zkraw.body_path_version(prefix + "/a", 0)),
            (Op.SYNC, zkraw.body_path(prefix)),
            (Op.MULTI, zkraw.multi_body([zkraw.op_create(prefix + "/c")])),
            # Refused by opcode before the path is looked at.
            (Op.CREATE, zkraw.body_create("no-slash")),
        ]
        for op, body in writes:
            r = c.call(op, body)
            assert r.err == Err.NOT_READ_ONLY, (op, r)
        # Pings keep the session; reads still answer after them.
        c.keep_alive(2.0)
        r = c.call(Op.EXISTS, zkraw.body_path_watch(prefix + "/a", False))
        assert r.ok, r
        # The quorum comes back: the read-only connection is closed.
        for i in range(len(ens)):
            if i != keep:
                ens.restart(i, wait=False)
        ens.wait_serving()
        assert c.wait_closed(timeout=30), "read-only connection still open"
    finally:
        c.close()
    assert node.four("isro") in ("rw", b"rw")


@pytest.mark.parametrize("target", FAULT_TARGETS)
def test_kazoo_read_only_client_moves_to_a_read_write_server(ensembles, prefix, target):
    ens = ensembles(target, properties=READ_ONLY, extra=LOCAL_SESSIONS)
    keep = ens.followers()[0]
    cut_off(ens, keep)
    states = []
    connected_ro = threading.Event()
    k = KazooClient(hosts=ens.connect_string(), timeout=10.0, read_only=True,
                    connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1})

    def listen(state):
        states.append((state, k.client_state))
        if k.client_state == KeeperState.CONNECTED_RO:
            connected_ro.set()

    k.add_listener(listen)
    k.start(timeout=30)
    try:
        harness.wait_until(lambda: k.client_state == KeeperState.CONNECTED_RO, timeout=20,
                           what="a read-only kazoo session (states %r)" % states)
        assert k.get_children("/") == ["zookeeper"]
        with pytest.raises(NotReadOnlyCallError):
            k.create(prefix + "/fred", makepath=True)
        for i in range(len(ens)):
            if i != keep:
                ens.restart(i, wait=False)
        ens.wait_serving()
        # kazoo finds a read-write server (its own search, or the close).
        harness.wait_until(lambda: k.client_state == KeeperState.CONNECTED, timeout=60,
                           what="a read-write kazoo session (states %r)" % states)
        k.create(prefix + "/after", b"x", makepath=True)
        assert k.get(prefix + "/after")[0] == b"x"
    finally:
        k.stop()
        k.close()
