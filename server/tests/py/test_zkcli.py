"""Apache's own zkCli.sh (the Java client, unchanged) against each target.

What it is: scripted zkCli sessions — commands on stdin, output checked
line by line — covering create (plain, -e, -s, -c, -t), get, set, ls, stat,
delete, deleteall (a multi), setAcl/getAcl, addauth, getEphemerals,
getAllChildrenNumber, whoami, sync, quotas; an interactive session whose
watches (get -w, ls -w, stat -w, addWatch) are fired by another client; and
one-shot `zkCli.sh -server … cmd` runs with their exit codes.

What it is not: a test of zkCli itself. The expected lines are what zkCli
prints against Apache ZooKeeper 3.8.0.

Invariant it keeps: every zkCli process is bounded by a timeout and killed
if it overruns.
"""

import os
import re
import subprocess

import pytest

import harness
from zkraw import Err

ZKCLI_TIMEOUT = 60


@pytest.fixture(scope="module", autouse=True)
def zkcli_present():
    harness.require_file(harness.ZK_CLI, "zookeeper")
    harness.require_file(harness.JAVA, "default-jre-headless")


def clean(text):
    """Drop the JVM's logging noise."""
    return "\n".join(l for l in text.splitlines() if not l.startswith("SLF4J:"))


def zkcli_env():
    env = dict(os.environ)
    # A small heap and fast start; zkCli honours CLIENT_JVMFLAGS.
    env["CLIENT_JVMFLAGS"] = "-Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    env["ZOO_LOG_DIR"] = "/tmp"
    return env


def run_script(server, lines):
    """Feed `lines` to one zkCli session on stdin; return its output."""
    script = "\n".join(lines + ["quit"]) + "\n"
    p = subprocess.run([harness.ZK_CLI, "-server", server.addr], input=script.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=ZKCLI_TIMEOUT,
                       env=zkcli_env())
    return clean(p.stdout.decode("utf-8", "replace"))


def run_cmd(server, *args):
    p = subprocess.run([harness.ZK_CLI, "-server", server.addr] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=ZKCLI_TIMEOUT, env=zkcli_env())
    return p.returncode, clean(p.stdout.decode("utf-8", "replace"))


def after_connect(out):
    """The lines after zkCli's connection banner and first event."""
    lines = out.splitlines()
    for i, l in enumerate(lines):
        if l == "WatchedEvent state:SyncConnected type:None path:null":
            return [x for x in lines[i + 1:]]
    raise AssertionError("zkCli never connected:\n" + out)


def stat_block(lines, start):
    keys = ["cZxid", "ctime", "mZxid", "mtime", "pZxid", "cversion", "dataVersion", "aclVersion",
            "ephemeralOwner", "dataLength", "numChildren"]
    got = {}
    for k, line in zip(keys, lines[start:start + len(keys)]):
        assert line.startswith(k + " = "), (k, line)
        got[k] = line.split(" = ", 1)[1]
    return got


def expect_in_order(lines, expected):
    """Each expected line (str or compiled regex) appears, in order."""
    i = 0
    for want in expected:
        while i < len(lines):
            line = lines[i]
            i += 1
            if (want.match(line) if hasattr(want, "match") else line == want):
                break
        else:
            raise AssertionError("missing %r (in order) in zkCli output:\n%s" % (
                getattr(want, "pattern", want), "\n".join(lines)))
    return i


def test_zkcli_basic_session(server, raw, prefix):
    p = prefix
    out = run_script(server, [
        'create %s "hello world"' % p,
        "get %s" % p,
        "ls %s" % p,
        "create %s/a one" % p,
        "create -e %s/e eph" % p,
        "create -s %s/s- seq" % p,
        "create -s -e %s/es- x" % p,
        "create -c %s/cont x" % p,
        "create -t 60000 %s/ttl x" % p,
        "ls %s" % p,
        "stat %s/e" % p,
        "set %s/a two" % p,
        "get -s %s/a" % p,
        "set -v 7 %s/a three" % p,
        "create %s/a" % p,
        "delete %s" % p,
        "get %s/none" % p,
        "getAllChildrenNumber %s" % p,
        "getEphemerals %s" % p,
        "whoami",
        "sync %s" % p,
        "getAcl %s" % p,
        "delete -v 9 %s/cont" % p,
        "delete %s/cont" % p,
        "ls -R %s" % p,
        "deleteall %s" % p,
        "ls %s" % p,
    ])
    lines = after_connect(out)
    expect_in_order(lines, [
        "Created " + p,
        "hello world",
        "[]",
        "Created %s/a" % p,
        "Created %s/e" % p,
        "Created %s/s-0000000002" % p,
        "Created %s/es-0000000003" % p,
        "Created %s/cont" % p,
        "Created %s/ttl" % p,
        "[a, cont, e, es-0000000003, s-0000000002, ttl]",
    ])
    i = lines.index("[a, cont, e, es-0000000003, s-0000000002, ttl]")
    st = stat_block(lines, i + 1)
    assert re.match(r"^0x[0-9a-f]+$", st["ephemeralOwner"]) and st["ephemeralOwner"] != "0x0"
    assert st["dataLength"] == "3" and st["numChildren"] == "0"
    expect_in_order(lines[i + 12:], [
        "two",
        "dataVersion = 1",
        "version No is not valid : %s/a" % p,
        "Node already exists: %s/a" % p,
        "Node not empty: %s" % p,
        "Node does not exist: %s/none" % p,
        "6",
        re.compile(r"^\[%s/(e|es-0000000003), %s/(e|es-0000000003)\]$" % (re.escape(p), re.escape(p))),
        "Auth scheme: User",
        "ip: 127.0.0.1",
        "Sync is OK",
        "'world,'anyone",
        ": cdrwa",
        "version No is not valid : %s/cont" % p,
        p,
        "%s/a" % p,
        "%s/e" % p,
        "%s/es-0000000003" % p,
        "%s/s-0000000002" % p,
        "%s/ttl" % p,
        "Node does not exist: %s" % p,
    ])
    # The stat zkCli printed is the server's: cross-check with a raw read.
    c = raw(server)
    assert c.exists(p).err == Err.NO_NODE


def test_zkcli_stat_values(server, raw, prefix):
    # `stat` prints the server's stat: zxids in hex, versions, lengths.
    c = raw(server)
    c.create(prefix, b"12345")
    c.create(prefix + "/k")
    c.set_data(prefix, b"123")
    st = c.exists(prefix).stat
    lines = after_connect(run_script(server, ["stat %s" % prefix]))
    got = stat_block(lines, 0)
    assert got["cZxid"] == "0x%x" % st.czxid
    assert got["mZxid"] == "0x%x" % st.mzxid
    assert got["pZxid"] == "0x%x" % st.pzxid
    assert (got["cversion"], got["dataVersion"], got["aclVersion"]) == ("1", "1", "0")
    assert (got["ephemeralOwner"], got["dataLength"], got["numChildren"]) == ("0x0", "3", "1")


def digest_id(user, password):
    import base64
    import hashlib
    h = base64.b64encode(hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()).decode()
    return "%s:%s" % (user, h)


def test_zkcli_acl_and_auth(server, raw, prefix):
    p = prefix
    ident = digest_id("user", "pass")
    out = run_script(server, [
        "create %s x" % p,
        "create %s/a x" % p,
        "addauth digest user:pass",
        "setAcl %s/a auth::cdrwa" % p,
        "getAcl %s/a" % p,
        "setAcl %s/a digest:%s:cdrwa,world:anyone:r" % (p, ident),
        "getAcl %s/a" % p,
        "setAcl -v 0 %s/a world:anyone:r" % p,
        "setAcl -v 2 %s/a world:anyone:r" % p,
        "set %s/a y" % p,
        "create %s/a/child x" % p,
        "get %s/a" % p,
        "getAcl -s %s/a" % p,
        "setAcl %s nosuch:x:r" % p,
        "create %s/b x world:anyone:cd" % p,
        "get %s/b" % p,
        "delete %s/b" % p,
        "delete %s/a" % p,
        "delete %s" % p,
        "ls %s" % p,
    ])
    lines = after_connect(out)
    i = expect_in_order(lines, [
        "Created " + p,
        "Created %s/a" % p,
        "'digest,'" + ident,
        ": cdrwa",
        "'digest,'" + ident,
        ": cdrwa",
        "'world,'anyone",
        ": r",
        "version No is not valid : %s/a" % p,
        "Insufficient permission : %s/a" % p,
        "Insufficient permission : %s/a/child" % p,
        "x",
        "'world,'anyone",
        ": r",
    ])
    st = stat_block(lines, i)
    assert st["aclVersion"] == "3", st
    expect_in_order(lines[i + 11:], [
        "Acl is not valid : %s" % p,
        "Created %s/b" % p,
        "Insufficient permission : %s/b" % p,
        "Node does not exist: %s" % p,
    ])
    c = raw(server)
    assert c.exists(p).err == Err.NO_NODE


def test_zkcli_quota(server, raw, prefix):
    # setquota/listquota write and read /zookeeper/quota; the server keeps
    # the stats node current as the subtree changes.
    p = prefix
    c = raw(server)
    c.create(p, b"x")
    c.create(p + "/a", b"yy")
    out = run_script(server, ["setquota -n 10 %s" % p, "create %s/b zzz" % p, "listquota %s" % p,
                              "delquota %s" % p, "listquota %s" % p])
    lines = after_connect(out)
    expect_in_order(lines, [
        "Created %s/b" % p,
        "absolute path is /zookeeper/quota%s/zookeeper_limits" % p,
        "Output quota for %s count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1" % p,
        "Output stat for %s count=3,bytes=6" % p,
        "absolute path is /zookeeper/quota%s/zookeeper_limits" % p,
        "quota for %s does not exist." % p,
    ])


def test_zkcli_one_shot_commands(server, raw, prefix):
    # `zkCli.sh -server host:port cmd args`: exit 0 on success, 1 when the
    # server answers an error.
    c = raw(server)
    c.create(prefix, b"payload")
    rc, out = run_cmd(server, "get", prefix)
    assert rc == 0 and out.splitlines()[-1] == "payload", out
    rc, out = run_cmd(server, "get", prefix + "/none")
    assert rc == 1 and "Node does not exist: %s/none" % prefix in out
    rc, out = run_cmd(server, "create", prefix)
    assert rc == 1 and "Node already exists: %s" % prefix in out
    rc, out = run_cmd(server, "ls", prefix)
    assert rc == 0 and out.splitlines()[-1] == "[]"


def test_zkcli_watches_fired_by_another_client(server, raw, prefix):
    p = prefix
    other = raw(server)
    other.create(p, b"0")
    cli = harness.Interactive([harness.ZK_CLI, "-server", server.addr], env=zkcli_env())
    try:
        cli.expect("WatchedEvent state:SyncConnected type:None path:null")
        cli.send("get -w %s" % p)
        cli.expect("0")
        other.set_data(p, b"1")
        cli.expect("WatchedEvent state:SyncConnected type:NodeDataChanged path:%s" % p)
        cli.send("ls -w %s" % p)
        cli.expect("[]")
        other.create(p + "/c")
        cli.expect("WatchedEvent state:SyncConnected type:NodeChildrenChanged path:%s" % p)
        cli.send("stat -w %s/late" % p)
        cli.expect("Node does not exist: %s/late" % p)
        other.create(p + "/late")
        cli.expect("WatchedEvent state:SyncConnected type:NodeCreated path:%s/late" % p)
        cli.send("addWatch -m PERSISTENT_RECURSIVE %s" % p)
        cli.send("sync %s" % p)
        cli.expect("Sync is OK")
        other.create(p + "/c/d")
        cli.expect("WatchedEvent state:SyncConnected type:NodeCreated path:%s/c/d" % p)
        other.set_data(p + "/c/d", b"x")
        cli.expect("WatchedEvent state:SyncConnected type:NodeDataChanged path:%s/c/d" % p)
        other.delete(p + "/c/d")
        cli.expect("WatchedEvent state:SyncConnected type:NodeDeleted path:%s/c/d" % p)
        cli.send("removewatches %s -a" % p)
        cli.send("sync %s" % p)
        cli.expect("Sync is OK")
        cli.send("create -e %s/mine x" % p)
        cli.expect("Created %s/mine" % p)
        assert other.exists(p + "/mine").stat.ephemeralOwner != 0
    finally:
        cli.close()
    # quit closed the session: its ephemeral is gone.
    assert other.exists(p + "/mine").err == Err.NO_NODE
