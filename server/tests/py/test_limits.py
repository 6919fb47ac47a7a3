"""Server-side housekeeping and limits, on both servers: the container and
TTL reaper, and maxClientCnxns; on ours only, the per-request bounds
(maxResponseBytes, maxMultiOps), which Apache ZooKeeper 3.8 does not have.

What it is: tests that need a server started with non-default settings (a
short container check interval passed as a Java system property, a small
maxClientCnxns), so each test starts its own.

Invariant it keeps: every loop is bounded in time; servers are stopped by
their fixtures.
"""

import socket
import time

import pytest

import harness
import zkraw
from conftest import start_server
from zkraw import Err, Mode, ok


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture(scope="module", params=harness.targets())
def reaping(request):
    # The reference's container manager reads znode.container.checkIntervalMs
    # (a JVM property); ours honours the same in SERVER_JVMFLAGS.
    return start_server(request, request.param, jvm_flags=["-Dznode.container.checkIntervalMs=300"])


def test_empty_container_is_reaped(reaping, raw, prefix):
    # A container that had a child and lost it is deleted by the reaper; one
    # that never had a child is left alone (the reference's rule).
    c = raw(reaping)
    ok(c.create(prefix))
    ok(c.create_container(prefix + "/used"))
    ok(c.create_container(prefix + "/never"))
    ok(c.create(prefix + "/used/child"))
    ok(c.exists(prefix + "/used", watch=True))
    ok(c.delete(prefix + "/used/child", -1))
    assert wait_until(lambda: c.exists(prefix + "/used").err == Err.NO_NODE, 10.0)
    events = c.drain_events(0.3)
    assert [(e.type, e.path) for e in events] == [(2, prefix + "/used")], events
    ok(c.exists(prefix + "/never"))


def test_expired_ttl_node_is_reaped(reaping, raw, prefix):
    # A TTL node unchanged for longer than its ttl and without children is
    # deleted; one with a long ttl stays.
    c = raw(reaping)
    ok(c.create(prefix))
    ok(c.create_ttl(prefix + "/short", b"x", ttl=500))
    ok(c.create_ttl(prefix + "/long", b"x", ttl=600000))
    assert wait_until(lambda: c.exists(prefix + "/short").err == Err.NO_NODE, 10.0)
    ok(c.exists(prefix + "/long"))


@pytest.fixture(scope="module", params=harness.targets())
def few_connections(request):
    return start_server(request, request.param, max_client_cnxns=3)


def test_max_client_cnxns_per_ip(few_connections, raw):
    # maxClientCnxns bounds connections from one address: the one over the
    # limit is closed at once, while those within it keep being served.
    kept = [_connect_retrying(raw, few_connections) for _ in range(3)]
    assert _refused(few_connections), "the connection over maxClientCnxns was not closed"
    for client in kept:
        ok(client.exists("/"))
    # A slot frees when a connection closes.
    kept[0].close()
    assert wait_until(lambda: _can_connect(few_connections), 5.0)


def _refused(server):
    """True if the server closes a new connection at once, before any
    handshake (the connect itself may already fail when it is that quick)."""
    try:
        extra = socket.create_connection((server.host, server.port), timeout=5)
    except OSError:
        return True
    try:
        extra.settimeout(5)
        try:
            return extra.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
    finally:
        extra.close()


def _connect_retrying(raw, server):
    # The reference frees the slot of a just-closed connection (the harness's
    # readiness probe) asynchronously: retry briefly instead of racing it.
    deadline = time.monotonic() + 5.0
    while True:
        try:
            return raw(server)
        except (OSError, zkraw.Closed, zkraw.Timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _can_connect(server):
    try:
        client = zkraw.Client(server.host, server.port, timeout=2.0)
    except OSError:
        return False
    try:
        client.connect(timeout_ms=4000)
        client.close_session(timeout=2.0)
        return True
    except Exception:
        return False
    finally:
        client.close()


# A node near the largest a default client may write (jute.maxbuffer is
# 0xfffff), and a budget of three of its replies less a little.
BIG_NODE_BYTES = 1000000
RESPONSE_BUDGET = 3000000


@pytest.fixture(scope="module")
def bounded(request):
    if harness.OURS not in harness.targets():
        pytest.skip("ZK_TARGETS excludes ours (the reference has no response budget)")
    return start_server(request, harness.OURS, extra={"maxResponseBytes": RESPONSE_BUDGET})


def test_amplified_multi_read_is_refused_and_others_are_served(bounded, raw, prefix):
    # Review 1.4: a multiRead asking for the same 1 MB node many times is
    # small on the wire and huge as a reply. It is answered BadArguments
    # before the reply is built (Apache's later multiRead.maxResponseBytes
    # code); the connection stays usable and every other client is served.
    c = raw(bounded)
    big = prefix + "/big"
    data = b"z" * BIG_NODE_BYTES
    ok(c.create(prefix))
    ok(c.create(big, data))
    within = ok(c.multi_read([zkraw.op_get_data(big)] * 2))
    assert [r.data for r in within.results] == [data, data]
    # Three copies pass the configured budget by a few hundred bytes.
    assert c.multi_read([zkraw.op_get_data(big)] * 3).err == Err.BAD_ARGUMENTS
    assert c.multi_read([zkraw.op_get_data(big)] * 64).err == Err.BAD_ARGUMENTS
    ok(c.exists(big))
    other = raw(bounded)
    assert ok(other.get_data(big)).data == data
    assert bounded.four("ruok") == "imok"
    bounded.assert_serving()


def test_multi_read_of_more_ops_than_the_cap_is_refused(bounded, raw, prefix):
    # Review 1.5: a frame's worth of getData ops (the review's ~65k
    # amplification, here 10001 with this longer path) is refused by the op
    # cap, maxMultiOps (default 10000), before any op runs.
    c = raw(bounded)
    big = prefix + "/big"
    ok(c.create(prefix))
    ok(c.create(big, b"y" * BIG_NODE_BYTES))
    assert c.multi_read([zkraw.op_get_data(big)] * 10001).err == Err.BAD_ARGUMENTS
    ok(c.multi_read([zkraw.op_get_data(prefix)] * 10000))
    assert bounded.four("ruok") == "imok"
    bounded.assert_serving()
