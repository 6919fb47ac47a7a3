"""pytest fixtures shared by the real-client suite.

What it is: module-scoped server fixtures (one server per target per test
module, parametrised over ZK_TARGETS), a differential fixture that holds one
server of each target at once, unique path prefixes, and client factories
that always close what they open.

What it is not: a place for assertions about the protocol.

Invariant it keeps: every server and client a fixture hands out is stopped
in its finalizer, whether the test passed, failed or was interrupted.
"""

import itertools
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

_counter = itertools.count(1)


def pytest_report_header(config):
    return [
        "zk targets: %s (ZK_TARGETS)" % ",".join(harness.targets()),
        "zk-server binary: %s (ZK_SERVER_BIN)" % harness.ours_bin(),
        "CI mode: %s" % harness.in_ci(),
    ]


def start_server(request, kind, **kw):
    server = harness.Server(kind, **kw)
    request.addfinalizer(server.stop)
    server.start()
    return server


@pytest.fixture(scope="module", params=harness.targets())
def server(request):
    """One server of the parametrised target, shared by a test module."""
    return start_server(request, request.param)


@pytest.fixture(scope="module")
def servers(request):
    """Every selected target at once (for differential tests): a dict
    kind -> Server. With a single target, both sides are that target (two
    separate servers), which still checks that the scenarios and their
    normalisation are deterministic."""
    kinds = harness.targets()
    if len(kinds) == 1:
        left, right = kinds[0], kinds[0]
    else:
        left, right = harness.OURS, harness.REFERENCE
    # Start the reference first: if ours is missing locally, the skip still
    # happens before any JVM is started.
    right_server = start_server(request, right)
    left_server = start_server(request, left)
    return {"left": left_server, "right": right_server}


@pytest.fixture
def prefix(request):
    """A unique path prefix (not yet created) for one test."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
    return "/%s-%d-%d" % (name, os.getpid(), next(_counter))


@pytest.fixture
def raw(request):
    """Factory: raw(server, **connect_kwargs) -> connected zkraw.Client,
    closed (closeSession + socket) after the test."""
    opened = []

    def make(server, timeout_ms=30000, **kw):
        c = server.raw(timeout_ms=timeout_ms, **kw)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.shutdown()


def _kazoo_clients(hosts_of, connection_retry, start_timeout):
    """A factory of started KazooClients (no command retries) and the list
    of those it opened, for a fixture to stop and close."""
    from kazoo.client import KazooClient

    opened = []

    def make(target, timeout=10.0, **kw):
        kw.setdefault("connection_retry", dict(connection_retry))
        kw.setdefault("command_retry", None)
        c = KazooClient(hosts=hosts_of(target), timeout=timeout, **kw)
        opened.append(c)
        c.start(timeout=start_timeout)
        return c

    return make, opened


def _close_all(clients):
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def kazoo(request):
    """Factory: kazoo(server, **KazooClient kwargs) -> started KazooClient,
    stopped and closed after the test."""
    make, opened = _kazoo_clients(lambda server: server.addr,
                                  {"max_tries": 3, "delay": 0.1, "max_delay": 1}, 15)
    yield make
    _close_all(opened)


def pytest_terminal_summary(terminalreporter):
    """A banner when tests were skipped because a program is missing, so a
    local run that did not test the reference (or ours) cannot pass unseen."""
    missing = set()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "MISSING:" in reason:
            missing.add(reason.split("MISSING:", 1)[1].strip())
    if missing:
        terminalreporter.write_sep("!", "TESTS SKIPPED: MISSING PROGRAMS", red=True, bold=True)
        for m in sorted(missing):
            terminalreporter.write_line("  " + m, red=True)
        terminalreporter.write_line("  (with CI=true these are failures)", red=True)


@pytest.fixture
def kz(request):
    """Factory for ensemble tests: kz(hosts, timeout=10, **KazooClient
    kwargs) -> started client; `hosts` a Node, an Ensemble (every member)
    or a string. Retries connecting, never a command."""

    def hosts_of(hosts):
        if hasattr(hosts, "connect_string"):
            return hosts.connect_string()
        if hasattr(hosts, "addr"):
            return hosts.addr
        return hosts

    make, opened = _kazoo_clients(hosts_of, {"max_tries": -1, "delay": 0.05, "max_delay": 0.5},
                                  20)
    yield make
    _close_all(opened)


@pytest.fixture
def ensembles(request):
    """Factory: ensembles(target, **Ensemble kwargs) -> started Ensemble,
    stopped after the test."""
    from ensemble import Ensemble

    def make(target, **kw):
        kind, backend = target
        e = Ensemble(kind, backend=backend, **kw)
        request.addfinalizer(e.stop)
        e.start()
        return e
    return make
