"""Apache ZooKeeper's C client against each target.

What it is: `cli_mt` (Debian's zookeeper-bin) in scripted sessions — an
interactive one fed command by command, and batch mode (`-c cmd`) — with its
output checked; and cclient/zk_smoke.c, compiled at test time with gcc
against libzookeeper-mt-dev, which drives zoo_create/zoo_get/zoo_wget with a
watcher/zoo_set/zoo_multi/zoo_delete on two handles and prints its results.

What it is not: a test of the C client. Expected outputs are what the C
client prints against Apache ZooKeeper 3.8.0.

Invariant it keeps: every process is bounded by a timeout.
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

import harness
from zkraw import Err

HERE = os.path.dirname(os.path.abspath(__file__))
SMOKE_SRC = os.path.join(HERE, "cclient", "zk_smoke.c")


@pytest.fixture(scope="module")
def smoke_binary(request):
    harness.require_file(harness.ZK_HEADER, "libzookeeper-mt-dev")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        harness.missing("a C compiler (apt-get install gcc)")
    out_dir = tempfile.mkdtemp(prefix="zk-smoke-")
    request.addfinalizer(lambda: shutil.rmtree(out_dir, ignore_errors=True))
    binary = os.path.join(out_dir, "zk_smoke")
    # THREADED exposes the synchronous API of libzookeeper_mt.
    p = subprocess.run([gcc, "-Wall", "-Werror", "-O1", "-DTHREADED", "-o", binary, SMOKE_SRC,
                        "-lzookeeper_mt", "-lpthread"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    assert p.returncode == 0, p.stdout.decode()
    return binary


@pytest.fixture(scope="module")
def cli_mt():
    harness.require_file(harness.CLI_MT, "zookeeper-bin")
    return harness.CLI_MT


def test_c_program(server, smoke_binary, prefix):
    p = subprocess.run([smoke_binary, server.addr, prefix], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 0, (out, p.stderr.decode()[-2000:])
    got = {}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        got[key] = rest
    expected = {
        "connected": "2",
        "create": "0 " + prefix,
        "create_null": "0",
        "get_null": "0 len -1 dataLength 0",  # ZK-BEHAVIOURS 10 through the C client
        "create_seq": "0 /seq-0000000001",
        "create_eph": "0",
        "exists_eph": "0 owner_is_a 1",
        "create_again": "-110",
        "wget": "0 root version 0",
        "set": "0",
        "watch": "1 changed prefix",
        "set_stale": "-103",
        "watch_count": "1",  # one-shot
        "multi_ok": "0 0 0 0 version 1",
        "multi_fail": "-103 0 -103 -2",  # ZK-BEHAVIOURS 3
        "exists_after_fail": "-101",
        "children": "0 count 5",
        "delete_nonempty": "-111",
        "delete_badversion": "-103",
        "delete": "0",
        "exists_deleted": "-101",
        "eph_after_close": "-101",
        "done": "",
    }
    assert got == expected, out


def cli_env():
    env = dict(os.environ)
    env.pop("ZOO_LOG_LEVEL", None)
    return env


def test_cli_mt_session(server, raw, cli_mt, prefix):
    p = prefix
    other = raw(server)
    cli = harness.Interactive([cli_mt, "-h", server.addr], env=cli_env())
    try:
        cli.expect("Watcher SESSION_EVENT state = CONNECTED_STATE")
        sid = int(cli.expect(re.compile(r"^Got a new session id: 0x[0-9a-f]+$")).split("0x")[1], 16)
        cli.send("create %s" % p)
        cli.expect("Creating [%s] node (mode: 0)" % p)
        cli.expect("[%s]: rc = 0" % p)
        cli.expect("\tname = %s" % p)
        # cli_mt creates nodes with the data "new".
        assert other.get_data(p).data == b"new"
        cli.send("get %s" % p)
        cli.expect("%s: rc = 0" % p)
        cli.expect(" value_len = 3")
        cli.expect("new")
        cli.expect("\tversion=0\taversion=0")
        # cli_mt's get leaves a watch: our own set fires it, and the event is
        # printed before the set's completion (ZK-BEHAVIOURS 16).
        cli.send("set %s hello" % p)
        cli.expect("Watcher CHANGED_EVENT state = CONNECTED_STATE for path %s" % p)
        cli.expect("%s: rc = 0 Stat:" % p)
        cli.expect("\tversion=1\taversion=0")
        assert other.get_data(p).data == b"hello"
        cli.send("create +e %s/e" % p)
        cli.expect("Creating [%s/e] node (mode: 1)" % p)
        cli.expect("\tname = %s/e" % p)
        assert other.exists(p + "/e").stat.ephemeralOwner == sid
        cli.send("create +s %s/s" % p)
        cli.expect("\tname = %s/s0000000001" % p)
        cli.send("create +es %s/es" % p)
        cli.expect("Creating [%s/es] node (mode: 3)" % p)
        cli.expect("\tname = %s/es0000000002" % p)
        cli.send("create +c %s/c" % p)
        cli.expect("Creating [%s/c] node (mode: 4)" % p)
        cli.expect("\tname = %s/c" % p)
        cli.send("create +t=60000 %s/t" % p)
        cli.expect("Creating [%s/t] node (mode: 5)" % p)
        cli.expect("\tname = %s/t" % p)
        cli.send("create2 %s/two" % p)
        cli.expect("\tname = %s/two" % p)
        cli.expect(re.compile(r"^\tczxid=[0-9a-f]+$"))
        cli.send("ls %s" % p)
        cli.expect("%s: rc = 0" % p)
        kids = set()
        for _ in range(6):
            kids.add(cli.expect(re.compile(r"^\t\S+$")).strip())
        assert kids == {"e", "s0000000001", "es0000000002", "c", "t", "two"}, kids
        cli.send("exists %s/nope" % p)
        cli.expect("Error -101 for %s/nope" % p)
        cli.send("wexists %s/later" % p)
        cli.expect("Error -101 for %s/later" % p)
        other.create(p + "/later")
        cli.expect("Watcher CREATED_EVENT state = CONNECTED_STATE for path %s/later" % p)
        cli.send("sync %s" % p)
        cli.expect("[%s]: rc = 0" % p)
        cli.send("delete %s" % p)
        cli.expect("%s: rc = -111" % p)
        cli.send("delete %s/two" % p)
        cli.expect("%s/two: rc = 0" % p)
        cli.send("get %s/two" % p)
        cli.expect("%s/two: rc = -101" % p)
        cli.send("addauth digest someone:pw")
        cli.send("ls %s/c" % p)
        cli.expect("%s/c: rc = 0" % p)
    finally:
        cli.close()
    # quit closed the session: its ephemerals are gone.
    assert other.exists(p + "/e").err == Err.NO_NODE
    assert other.exists(p + "/es0000000002").err == Err.NO_NODE
    assert other.exists(p + "/s0000000001").err == Err.OK


def test_cli_mt_batch_mode(server, raw, cli_mt, prefix):
    # `cli_mt -h host -c cmd` runs one command and exits.
    other = raw(server)
    other.create(prefix, b"batch-data")
    p = subprocess.run([cli_mt, "-h", server.addr, "-c", "get %s" % prefix],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, env=cli_env())
    out = p.stdout.decode("utf-8", "replace")
    lines = out.splitlines()
    assert "Batch mode: get %s" % prefix in lines, out
    assert "%s: rc = 0" % prefix in lines, out
    assert " value_len = 10" in lines and "batch-data" in lines, out
    p = subprocess.run([cli_mt, "-h", server.addr, "-c", "ls %s/none" % prefix],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, env=cli_env())
    assert "%s/none: rc = -101" % prefix in p.stdout.decode().splitlines(), p.stdout.decode()
