"""Four-letter words, parsed the way monitoring scripts and zktop do.

What it is: each of ruok conf cons crst dump envi srst srvr stat wchs wchc
wchp mntr isro dirs sent on a fresh connection to each target; the output
must have the reference's shape (line labels, `key=value` or
`key<TAB>value` lines, the mntr key set — ours may add keys) and the values
that are facts about the server (port, tickTime, zxid, sessions, watches)
must be right. A word outside `4lw.commands.whitelist` gets the reference's
refusal text.

What it is not: a comparison of counters that depend on timing (latency,
packet counts): those only have to parse.

Invariant it keeps: the shapes pinned here are those of Apache ZooKeeper
3.8.0; test_stored_*_match_reference re-checks the stored ones against a
live reference whenever the reference is a target.
"""

import os
import re

import pytest

import harness
from zkraw import ok, Err, Mode

HERE = os.path.dirname(os.path.abspath(__file__))

SRVR_LABELS = ["Zookeeper version", "Latency min/avg/max", "Received", "Sent", "Connections",
               "Outstanding", "Zxid", "Mode", "Node count"]
CONF_KEYS = ["clientPort", "secureClientPort", "dataDir", "dataDirSize", "dataLogDir",
             "dataLogSize", "tickTime", "maxClientCnxns", "minSessionTimeout",
             "maxSessionTimeout", "clientPortListenBacklog", "serverId"]
# envi keys that describe the server's host and process. The reference also
# prints java.* keys (its JVM); ours has no JVM, so those are not required.
ENVI_KEYS = ["zookeeper.version", "host.name", "os.name", "os.arch", "os.version", "user.name",
             "user.home", "user.dir", "os.memory.free", "os.memory.max", "os.memory.total"]
ENVI_JAVA_KEYS = ["java.version", "java.vendor", "java.home", "java.class.path",
                  "java.library.path", "java.io.tmpdir", "java.compiler"]
# Values in mntr that are not numbers on the reference.
MNTR_TEXT_KEYS = {"zk_version", "zk_server_state"}
CONS_LINE = re.compile(r"^ /(\d+\.\d+\.\d+\.\d+):(\d+)\[(\d+)\]\((.*)\)$")
CONS_SESSION_KEYS = ["queued", "recved", "sent", "sid", "lop", "est", "to", "lcxid", "lzxid",
                     "lresp", "llat", "minlat", "avglat", "maxlat"]
ALL_WORDS = ["ruok", "conf", "cons", "crst", "dump", "envi", "srst", "srvr", "stat", "wchs",
             "wchc", "wchp", "mntr", "isro", "dirs"]


def stored_mntr_keys():
    with open(os.path.join(HERE, "data", "reference-mntr-keys.txt")) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def parse_labels(text):
    """`Label: value` lines (srvr/stat) -> ordered list of (label, value)."""
    out = []
    for line in text.splitlines():
        if ": " in line and not line.startswith(" "):
            k, v = line.split(": ", 1)
            out.append((k, v))
    return out


def parse_kv(text, sep):
    out = {}
    order = []
    for line in text.splitlines():
        if not line.strip():
            continue
        assert sep in line, "line without %r: %r" % (sep, line)
        k, v = line.split(sep, 1)
        out[k] = v
        order.append(k)
    return out, order


def parse_mntr(text):
    assert text.endswith("\n"), repr(text[-50:])
    values, order = parse_kv(text, "\t")
    assert len(values) == len(order), "duplicate mntr keys"
    return values, order


def is_number(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


@pytest.fixture(scope="module")
def restricted(request, server):
    """A second server of the same target whose whitelist is `ruok, srvr`."""
    other = harness.Server(server.kind, whitelist="ruok, srvr")
    request.addfinalizer(other.stop)
    other.start()
    return other


def test_ruok_isro(server):
    assert server.four("ruok") == "imok"
    assert server.four("isro") == "rw"
    # Only the first four bytes are the command.
    assert server.four("ruok\n") == "imok"


def test_srvr_and_stat(server, raw, prefix):
    c = raw(server)
    ok(c.create(prefix))
    ok(c.create(prefix + "/a"))
    zxid = c.last_zxid()
    total = ok(c.get_all_children_number("/")).total
    for word in ("srvr", "stat"):
        out = server.four(word)
        labels = parse_labels(out)
        assert [k for k, _ in labels] == SRVR_LABELS, (word, out)
        v = dict(labels)
        assert re.match(r"^\d+\.\d+\.\d+", v["Zookeeper version"]), v
        assert re.match(r"^\d+/\d+(\.\d+)?/\d+$", v["Latency min/avg/max"]), v
        for k in ("Received", "Sent", "Connections", "Outstanding", "Node count"):
            assert v[k].isdigit(), (k, v[k])
        assert int(v["Connections"]) >= 1
        assert v["Zxid"] == "0x%x" % zxid, (v["Zxid"], zxid)
        assert v["Mode"] == "standalone"
        # The reference counts the root twice ("" and "/") next to its
        # descendants.
        assert int(v["Node count"]) == total + 2, (v["Node count"], total)
    out = server.four("stat")
    lines = out.splitlines()
    assert lines[1] == "Clients:"
    clients = []
    for line in lines[2:]:
        if not line:
            break
        m = CONS_LINE.match(line)
        assert m, line
        clients.append(m.groups())
    assert len(clients) >= 2  # the 4lw connection and ours
    assert all(ip == "127.0.0.1" for ip, _, _, _ in clients)


# The keys the ZooKeeper Administrator's Guide shows for `mntr` on a
# standalone server, plus the 3.6+ gauges monitoring dashboards chart.
MNTR_DOCUMENTED_KEYS = [
    "zk_version", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
    "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
    "zk_outstanding_requests", "zk_server_state", "zk_znode_count",
    "zk_watch_count", "zk_ephemerals_count", "zk_approximate_data_size",
    "zk_open_file_descriptor_count", "zk_max_file_descriptor_count",
    "zk_uptime", "zk_global_sessions", "zk_local_sessions",
]


def test_mntr_shape(server, raw, prefix):
    c = raw(server)
    ok(c.create(prefix))
    ok(c.create(prefix + "/e", flags=Mode.EPHEMERAL))
    values, order = parse_mntr(server.four("mntr"))
    reference_keys = set(stored_mntr_keys())
    if server.kind == "reference":
        missing = [k for k in reference_keys if k not in values]
        assert not missing, "mntr lacks %d reference keys, e.g. %s" % (len(missing), missing[:20])
    else:
        # Known difference: the reference prints ~485 keys, most of them its
        # internal Prometheus metrics (JVM, request-processor queues, learner
        # sync...). Ours prints the documented monitoring keys, each a real
        # measurement, and no key the reference does not also print: a
        # monitoring script reading any key we print reads what it expects.
        missing = [k for k in MNTR_DOCUMENTED_KEYS if k not in values]
        assert not missing, "mntr lacks documented keys %s" % missing
        invented = [k for k in values if k not in reference_keys]
        assert not invented, "mntr prints keys the reference does not: %s" % invented
    assert order[:2] == ["zk_version", "zk_server_state"]
    for k, v in values.items():
        assert k.startswith("zk_"), k
        if k not in MNTR_TEXT_KEYS:
            assert is_number(v), (k, v)
    assert values["zk_server_state"] == "standalone"
    assert re.match(r"^\d+\.\d+\.\d+", values["zk_version"])
    assert int(values["zk_ephemerals_count"]) >= 1
    assert int(values["zk_num_alive_connections"]) >= 1
    total = ok(c.get_all_children_number("/")).total
    assert int(values["zk_znode_count"]) == total + 2


def test_conf(server):
    out = server.four("conf")
    values, order = parse_kv(out, "=")
    missing = [k for k in CONF_KEYS if k not in values]
    assert not missing, (missing, out)
    assert values["clientPort"] == str(server.port)
    assert values["tickTime"] == "2000"
    assert values["maxClientCnxns"] == str(server.max_client_cnxns)
    assert values["minSessionTimeout"] == "4000"
    assert values["maxSessionTimeout"] == "40000"
    assert values["dataDir"].startswith(os.path.join(server.dir, "data"))
    assert values["serverId"] == "0"
    for k in ("dataDirSize", "dataLogSize"):
        assert values[k].isdigit(), (k, values[k])


def test_envi_and_kazoo_server_version(server, kazoo):
    out = server.four("envi")
    lines = out.splitlines()
    assert lines[0] == "Environment:", out
    values, order = parse_kv("\n".join(lines[1:]), "=")
    missing = [k for k in ENVI_KEYS if k not in values]
    assert not missing, (missing, out)
    assert order[0] == "zookeeper.version"
    assert values["host.name"] and values["os.name"] == "Linux"
    # kazoo's server_version() parses envi's zookeeper.version.
    zk = kazoo(server)
    version = zk.server_version()
    assert isinstance(version, tuple) and len(version) == 3 and version >= (3, 5, 0), version
    assert zk.command(b"ruok") == "imok"


def test_cons_and_crst(server, raw, prefix):
    c = raw(server)
    ok(c.create(prefix))
    ok(c.get_data(prefix))
    out = server.four("cons")
    assert out.endswith("\n\n"), repr(out[-40:])
    sessions = {}
    for line in out.splitlines():
        if not line:
            continue
        m = CONS_LINE.match(line)
        assert m, line
        fields = dict(kv.split("=", 1) for kv in m.group(4).split(","))
        if "sid" in fields:
            sessions[int(fields["sid"], 16)] = fields
    assert c.session_id in sessions, (hex(c.session_id), out)
    mine = sessions[c.session_id]
    assert list(mine) == CONS_SESSION_KEYS, list(mine)
    assert mine["to"] == "30000"
    assert int(mine["recved"]) >= 3 and int(mine["sent"]) >= 3
    assert server.four("crst") == "Connection stats reset.\n"
    out = server.four("cons")
    for line in out.splitlines():
        m = CONS_LINE.match(line) if line else None
        if m and "sid=0x%x" % c.session_id in line:
            fields = dict(kv.split("=", 1) for kv in m.group(4).split(","))
            assert fields["recved"] == "0" and fields["sent"] == "0", line
            assert fields["lop"] == "NA"
            break
    else:
        raise AssertionError("session missing from cons after crst: %r" % out)


def test_srst(server):
    assert server.four("srst") == "Server stats reset.\n"
    v = dict(parse_labels(server.four("srvr")))
    # The reset cleared the counters; only the srvr request itself counts.
    assert int(v["Received"]) <= 2 and int(v["Sent"]) <= 2, v


def test_dump(server, raw, prefix):
    c = raw(server)
    ok(c.create(prefix))
    ok(c.create(prefix + "/e1", flags=Mode.EPHEMERAL))
    ok(c.create(prefix + "/e2", flags=Mode.EPHEMERAL))
    out = server.four("dump")
    lines = out.splitlines()
    assert lines[0] == "SessionTracker dump:", out
    assert "ephemeral nodes dump:" in lines
    i = lines.index("ephemeral nodes dump:")
    assert re.match(r"^Sessions with Ephemerals \(\d+\):$", lines[i + 1]), lines[i + 1]
    owners = {}
    current = None
    for line in lines[i + 2:]:
        if line.startswith("Connections dump:"):
            break
        if line.startswith("\t"):
            owners.setdefault(current, []).append(line[1:])
        elif line.endswith(":"):
            current = int(line[:-1], 16)
    assert sorted(owners.get(c.session_id, [])) == [prefix + "/e1", prefix + "/e2"], out


def test_watch_words(server, raw, prefix):
    # wchs / wchc / wchp: one data watch from one session. (The reference
    # lists data, exists and persistent watches here, not child watches.)
    before = server.four("wchs")
    m = re.match(r"^(\d+) connections watching (\d+) paths\nTotal watches:(\d+)\n$", before)
    assert m, repr(before)
    conns, paths, total = map(int, m.groups())
    c = raw(server)
    ok(c.create(prefix))
    ok(c.get_data(prefix, watch=True))
    out = server.four("wchs")
    assert out == "%d connections watching %d paths\nTotal watches:%d\n" % (
        conns + 1, paths + 1, total + 1), (before, out)
    wchc = server.four("wchc")
    assert ("0x%x\n\t%s\n" % (c.session_id, prefix)) in wchc, wchc
    assert wchc.endswith("\n\n")
    wchp = server.four("wchp")
    assert ("%s\n\t0x%x\n" % (prefix, c.session_id)) in wchp, wchp
    assert wchp.endswith("\n\n")


def test_dirs(server):
    out = server.four("dirs")
    assert re.match(r"^datadir_size: \d+\nlogdir_size: \d+\n$", out), repr(out)


def test_every_word_answers_on_fresh_connection(server):
    # Each word, alone on a fresh connection, gets a non-empty answer and a
    # closed connection (four_letter reads to EOF).
    for word in ALL_WORDS:
        out = server.four(word)
        assert out, word
    server.assert_serving()


def test_not_whitelisted_refused(restricted):
    # A word outside 4lw.commands.whitelist gets the reference's refusal
    # text; whitelisted ones work.
    assert restricted.four("ruok") == "imok"
    assert restricted.four("srvr").startswith("Zookeeper version: ")
    for word in ("stat", "mntr", "conf", "envi", "cons", "dump", "wchs", "isro", "dirs", "srst"):
        assert restricted.four(word) == "%s is not executed because it is not in the whitelist.\n" % word


def test_unknown_word_closes(server):
    # Four bytes that are no command are read as a frame length: the
    # connection is closed without output, and the server keeps serving.
    assert server.four("xyzw") == ""
    server.assert_serving()


def test_stored_mntr_keys_match_reference(server):
    # Keeps data/reference-mntr-keys.txt honest.
    if server.kind != harness.REFERENCE:
        return
    values, order = parse_mntr(server.four("mntr"))
    live = [k for k in order if not k.endswith("_per_namespace")]
    assert live == stored_mntr_keys()
    envi, _ = parse_kv("\n".join(server.four("envi").splitlines()[1:]), "=")
    assert list(envi) == ["zookeeper.version", "host.name"] + ENVI_JAVA_KEYS + ENVI_KEYS[2:]
    conf, conf_order = parse_kv(server.four("conf"), "=")
    assert conf_order == CONF_KEYS
