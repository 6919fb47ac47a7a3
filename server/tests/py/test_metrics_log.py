"""What /metrics says about the log writer and the bytes on the wire, after
real traffic: `fsynctime` (Apache's summary, in ms), our `zkrs_wal_*`
group-commit figures, `bytes_received_count` and the client response size
gauges, on each of our storage backends.

What it is: ours started with the Prometheus provider on a free loopback
port, written to and read from through kazoo, then scraped and parsed with
the Prometheus project's Python text parser. The figures must be real (not
the zeros of a counter nobody feeds) and agree with each other and with
`mntr`.

What it is not: a comparison with Apache ZooKeeper (test_admin_http.py
compares names and types), nor a timing test: no duration is asserted
beyond being counted.

Invariant it keeps: servers listen on loopback only and are stopped by the
fixture; every HTTP request has a timeout.
"""

import urllib.request

import pytest

import harness

from kazoo.client import KazooClient

TIMEOUT = 10.0
WRITES = 20
ADVANCED = ["0.5", "0.9", "0.99"]


def metrics_server(request, backend):
    if harness.OURS not in harness.targets():
        pytest.skip("ours is not a target (ZK_TARGETS)")
    port = harness.free_port()
    server = harness.Server(harness.OURS, backend=backend, extra={
        "metricsProvider.className":
            "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
        "metricsProvider.httpHost": "127.0.0.1",
        "metricsProvider.httpPort": str(port),
    })
    request.addfinalizer(server.stop)
    server.start()
    server.metrics_port = port
    return server


def scrape(server):
    from prometheus_client.parser import text_string_to_metric_families
    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        body = response.read().decode("utf-8")
    families = {family.name: family for family in text_string_to_metric_families(body)}
    samples = {(s.name, s.labels.get("quantile")): s.value
               for family in families.values() for s in family.samples}
    return families, samples


def mntr(server):
    text = server.four("mntr")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    lines = text.splitlines()
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


@pytest.fixture(scope="module", params=harness.storage_backends())
def traffic(request):
    """A server of ours after WRITES sets, one at a time, and as many reads,
    scraped before and after."""
    server = metrics_server(request, request.param)
    client = KazooClient(hosts=server.addr, timeout=10.0)
    client.start(timeout=20.0)
    request.addfinalizer(client.close)
    request.addfinalizer(client.stop)
    client.ensure_path("/metrics")
    before = scrape(server)
    for i in range(WRITES):
        client.set("/metrics", b"value %d" % i)
        client.get("/metrics")
    after = scrape(server)
    return server, before, after


def test_fsynctime_counts_every_synced_group_commit(traffic):
    """Each write waits for its own sync here (one at a time), so fsynctime
    grows by at least WRITES; it is Apache's BASIC summary, and our sync
    counter is the same count."""
    server, (_, before), (families, after) = traffic
    assert families["fsynctime"].type == "summary"
    grown = after[("fsynctime_count", None)] - before[("fsynctime_count", None)]
    assert grown >= WRITES, (server.backend, grown)
    quantiles = sorted(q for (name, q) in after if name == "fsynctime" and q is not None)
    assert quantiles == ["0.5"]
    assert after[("fsynctime_sum", None)] >= 0
    assert after[("zkrs_wal_syncs_total", None)] == after[("fsynctime_count", None)]
    assert families["zkrs_wal_syncs"].type == "counter"


def test_group_commit_sizes_are_plausible(traffic):
    """Every txn is in exactly one batch: the batches' txns add up to at
    least the writes made, each batch holds at least one txn and some bytes,
    and the sync time summary counts the syncs."""
    server, (_, before), (families, after) = traffic
    for name in ["zkrs_wal_batch_txns", "zkrs_wal_batch_bytes", "zkrs_wal_sync_seconds"]:
        assert families[name].type == "summary", name
        quantiles = sorted((q for (n, q) in after if n == name and q is not None), key=float)
        assert quantiles == ADVANCED, (name, quantiles)
    txns = after[("zkrs_wal_batch_txns_sum", None)] - before[("zkrs_wal_batch_txns_sum", None)]
    batches = (after[("zkrs_wal_batch_txns_count", None)]
               - before[("zkrs_wal_batch_txns_count", None)])
    assert txns >= WRITES and 1 <= batches <= txns, (server.backend, txns, batches)
    assert after[("zkrs_wal_batch_txns", "0.5")] >= 1
    nbytes = (after[("zkrs_wal_batch_bytes_sum", None)]
              - before[("zkrs_wal_batch_bytes_sum", None)])
    # Each set carries at least its path and data.
    assert nbytes >= WRITES * len("/metricsvalue 0"), (server.backend, nbytes)
    assert after[("zkrs_wal_batch_bytes_count", None)] == after[("zkrs_wal_batch_txns_count", None)]
    assert after[("zkrs_wal_sync_seconds_count", None)] == after[("fsynctime_count", None)]
    assert 0 < after[("zkrs_wal_sync_seconds", "0.99")] < 60


def test_bytes_received_and_response_sizes_are_counted(traffic):
    """Every frame read counts its bytes, length prefix included; every reply
    sets the response size gauges (a reply is at least its 16-byte header);
    mntr shows the same counter."""
    server, (_, before), (_, after) = traffic
    # The parser names a counter's sample `<family>_total`, whatever the text says.
    received = (after[("bytes_received_count_total", None)]
                - before[("bytes_received_count_total", None)])
    # Each set frame holds at least a length, a request header, the path and data.
    assert received >= WRITES * (4 + 8 + len("/metrics") + len("value 0")), received
    assert after[("min_client_response_size", None)] >= 16
    assert after[("max_client_response_size", None)] >= after[("min_client_response_size", None)]
    assert after[("last_client_response_size", None)] >= 16
    words = mntr(server)
    assert int(words["zk_bytes_received_count"]) >= after[("bytes_received_count_total", None)]
    assert int(words["zk_max_client_response_size"]) >= 16
