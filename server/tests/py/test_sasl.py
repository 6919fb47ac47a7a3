"""SASL (DIGEST-MD5) logins, against ours and Apache ZooKeeper 3.8.

What it is: kazoo with `sasl_options` (pure-sasl's DIGEST-MD5) and raw SASL
requests (opcode 102) against servers started with a JAAS `Server` section
of DigestLoginModule users (`-Djava.security.auth.login.config`) and
`authProvider.1=...SASLAuthenticationProvider` in zoo.cfg: login, `sasl:`
ACLs, wrong passwords, GSSAPI-shaped and garbage tokens,
`allowSaslFailedClients`, `sessionRequireClientSASLAuth`, and a server
without SASL.

What it is not: a Kerberos test (GSSAPI is not served by ours; the
reference would need a KDC).

Invariant it keeps: no case can hang. Every failure is checked to come
within seconds (kazoo's SASL loop retries on a null token for ever, so no
kazoo client is pointed at a server that would answer it that way), and
after each bad-input case another client is still served.

Where ours differs from the reference, the test says so (DIFFERS): only
where the reference's answer would make a client loop.
"""

import hashlib
import os
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.protocol.states import KeeperState
from kazoo.security import make_acl

import harness
import zkraw
from zkraw import Err, Op, Writer

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
USERS = {"bob": "bob-secret", "eve": "eve-secret"}
JAAS = """// the server side of a DIGEST-MD5 login
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_bob="bob-secret"
    user_eve="eve-secret";
};
"""
# A failure must come quickly; the old bug was a client looping for ever.
PROMPT_S = 10.0
SESSION_CLOSED_REQUIRE_SASL_AUTH = -124


def start_sasl_server(request, tmp_path_factory, kind, extra=None, jaas=JAAS):
    directory = tmp_path_factory.mktemp("jaas-%s" % kind)
    path = os.path.join(str(directory), "jaas.conf")
    with open(path, "w") as f:
        f.write(jaas)
    config = {"authProvider.1": SASL_PROVIDER}
    config.update(extra or {})
    server = harness.Server(kind, extra=config,
                            jvm_flags=["-Djava.security.auth.login.config=%s" % path])
    request.addfinalizer(server.stop)
    server.start()
    return server


@pytest.fixture(scope="module", params=harness.targets())
def sasl_server(request, tmp_path_factory):
    return start_sasl_server(request, tmp_path_factory, request.param)


@pytest.fixture(scope="module", params=harness.targets())
def allow_failed_server(request, tmp_path_factory):
    return start_sasl_server(request, tmp_path_factory, request.param,
                             extra={"allowSaslFailedClients": "true"})


@pytest.fixture(scope="module", params=harness.targets())
def required_server(request, tmp_path_factory):
    return start_sasl_server(request, tmp_path_factory, request.param,
                             extra={"sessionRequireClientSASLAuth": "true"})


@pytest.fixture(scope="module", params=harness.targets())
def plain_server(request):
    server = harness.Server(request.param)
    request.addfinalizer(server.stop)
    server.start()
    return server


@pytest.fixture
def kazoo(request):
    """Factory: kazoo(server, user=None, password=None) -> started client
    (SASL DIGEST-MD5 when `user` is given), stopped after the test."""
    opened = []

    def make(server, user=None, password=None, start=True):
        options = None
        if user is not None:
            options = {"mechanism": "DIGEST-MD5", "username": user, "password": password}
        client = KazooClient(hosts=server.addr, timeout=10, sasl_options=options)
        opened.append(client)
        if start:
            client.start(timeout=PROMPT_S)
        return client

    yield make
    for client in opened:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


def assert_fails_promptly(client):
    """kazoo reaches AUTH_FAILED within seconds. (Watched through its state
    callback: kazoo reports CONNECTED before its SASL exchange, so start()
    cannot tell, and AUTH_FAILED turns into CLOSED at once.)"""
    states = []
    original = client._session_callback

    def record(state):
        states.append(state)
        original(state)

    client._session_callback = record
    began = time.monotonic()
    client.start_async()
    while KeeperState.AUTH_FAILED not in states:
        assert time.monotonic() - began < PROMPT_S, \
            "no AUTH_FAILED within %.0fs (states %s)" % (PROMPT_S, states)
        time.sleep(0.05)


# ---------------------------------------------------------------- raw SASL


def sasl(client, token, timeout=PROMPT_S):
    """One sasl request; returns (reply, server token or None)."""
    reply = client.call(Op.SASL, Writer().buffer(token).bytes(), timeout=timeout)
    body = None
    if reply.body:
        body = zkraw.Reader(reply.body).buffer()
    return reply, body


def directives(challenge):
    """The challenge's name=value pairs (values unquoted; no escapes in
    what servers send here)."""
    out = {}
    for part in challenge.decode().split(","):
        name, _, value = part.partition("=")
        out[name.strip()] = value.strip().strip('"')
    return out


def digest_response(challenge, user, password, cnonce="cnonce-1"):
    """The RFC 2831 `auth` response a client sends to `challenge`."""
    d = directives(challenge)
    realm, nonce, uri, nc = d["realm"], d["nonce"], "zookeeper/zk-sasl-md5", "00000001"
    md5 = lambda b: hashlib.md5(b).digest()  # noqa: E731
    hexmd5 = lambda b: hashlib.md5(b).hexdigest()  # noqa: E731
    a1 = md5(("%s:%s:%s" % (user, realm, password)).encode()) + (":%s:%s" % (nonce, cnonce)).encode()
    a2 = ("AUTHENTICATE:%s" % uri).encode()
    response = hexmd5(("%s:%s:%s:%s:auth:%s" % (hexmd5(a1), nonce, nc, cnonce, hexmd5(a2))).encode())
    return ('charset=utf-8,username="%s",realm="%s",nonce="%s",nc=%s,cnonce="%s",'
            'digest-uri="%s",maxbuf=65536,response=%s,qop=auth'
            % (user, realm, nonce, nc, cnonce, uri, response)).encode()


def still_serves(server):
    """Another session is answered: bad input hurt one connection only."""
    with server.raw(timeout_ms=10000) as other:
        assert other.exists("/").ok


# ---------------------------------------------------------------- tests


def test_login_and_sasl_acl(sasl_server, kazoo):
    """kazoo logs in with DIGEST-MD5; a node with ACL sasl:bob is readable
    by bob and NoAuth for eve (another SASL user) and for an anonymous
    session; auth ACLs expand to the sasl identity."""
    bob = kazoo(sasl_server, "bob", USERS["bob"])
    path = "/sasl-acl-%d" % os.getpid()
    bob.create(path, b"secret", acl=[make_acl("sasl", "bob", all=True)])
    try:
        assert bob.get(path)[0] == b"secret"
        acl, _ = bob.get_acls(path)
        assert [(a.id.scheme, a.id.id) for a in acl] == [("sasl", "bob")]
        eve = kazoo(sasl_server, "eve", USERS["eve"])
        with pytest.raises(NoAuthError):
            eve.get(path)
        anonymous = kazoo(sasl_server)
        with pytest.raises(NoAuthError):
            anonymous.get(path)
        # CREATOR_ALL_ACL (auth:) becomes the session's sasl identity.
        bob.create(path + "/mine", acl=[make_acl("auth", "", all=True)])
        acl, _ = bob.get_acls(path + "/mine")
        assert [(a.id.scheme, a.id.id) for a in acl] == [("sasl", "bob")]
        bob.delete(path + "/mine")
    finally:
        bob.delete(path)


def test_wrong_password_and_unknown_user_fail_promptly(sasl_server, kazoo):
    assert_fails_promptly(kazoo(sasl_server, "bob", "wrong", start=False))
    assert_fails_promptly(kazoo(sasl_server, "mallory", "x", start=False))
    still_serves(sasl_server)


def test_raw_exchange_and_rspauth(sasl_server):
    """The wire exchange: an empty token gets the challenge (realm
    zk-sasl-md5, qop auth, md5-sess), the response gets rspauth, zxid 0."""
    with sasl_server.raw() as client:
        reply, challenge = sasl(client, b"")
        assert reply.err == Err.OK and reply.zxid == 0
        d = directives(challenge)
        # No qop: `auth` is the default.
        assert (d["realm"], d.get("qop"), d["algorithm"], d["charset"]) == \
            ("zk-sasl-md5", None, "md5-sess", "utf-8")
        reply, final = sasl(client, digest_response(challenge, "bob", USERS["bob"]))
        assert reply.err == Err.OK
        assert final.startswith(b"rspauth=")
        ids = client.who_am_i().ids
        assert ("sasl", "bob") in [(i.scheme, i.user) for i in ids]


def test_wrong_password_raw_is_auth_failed_then_closed(sasl_server):
    with sasl_server.raw() as client:
        _, challenge = sasl(client, b"")
        began = time.monotonic()
        reply, _ = sasl(client, digest_response(challenge, "bob", "wrong"))
        assert reply.err == Err.AUTH_FAILED
        assert client.wait_closed(PROMPT_S)
        assert time.monotonic() - began < PROMPT_S
    still_serves(sasl_server)


def test_gssapi_token_fails_promptly(sasl_server):
    """A GSSAPI client opens with a Kerberos token, an initial response
    DIGEST-MD5 has none of. (kazoo itself cannot ask for GSSAPI here: without
    the kerberos module pure-sasl refuses the mechanism before sending.)"""
    kerberos_like = b"\x60\x82\x02\x5c\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02" + b"\x00" * 64
    with sasl_server.raw() as client:
        reply, token = sasl(client, kerberos_like)
        if sasl_server.kind == harness.OURS:
            # DIFFERS: the reference ignores the initial token and answers
            # a DIGEST-MD5 challenge, which a GSSAPI client then fails on
            # by itself; ours says at once, in the log and the reply, that
            # only DIGEST-MD5 is served: AuthFailed, connection closed.
            assert reply.err == Err.AUTH_FAILED and token is None
            assert client.wait_closed(PROMPT_S)
        else:
            assert reply.err == Err.OK and b"realm=" in token
    still_serves(sasl_server)


GARBAGE = [
    pytest.param(b"\x00\xff" * 40, id="binary"),
    pytest.param(b"username=\"bob\",username=\"bob\"", id="duplicate-directive"),
    pytest.param(b"username=\"bob", id="unterminated-quote"),
    pytest.param(b"a" * 5000, id="oversized"),
    pytest.param(b"username=bob", id="missing-directives"),
]


@pytest.mark.parametrize("token", GARBAGE)
def test_garbage_response_is_refused_and_closed(sasl_server, token):
    with sasl_server.raw() as client:
        sasl(client, b"")
        reply, body = sasl(client, token)
        assert reply.err == Err.AUTH_FAILED and body is None
        assert client.wait_closed(PROMPT_S)
    still_serves(sasl_server)


def test_truncated_sasl_record_closes(sasl_server):
    """A sasl record whose token length runs past its frame is malformed:
    the connection is closed (no reply)."""
    with sasl_server.raw() as client:
        client.send_frame(zkraw.request_header(1, Op.SASL) + Writer().int(100).bytes() + b"abc")
        assert client.wait_closed(PROMPT_S)
    still_serves(sasl_server)


def test_second_exchange_after_success_is_refused(sasl_server):
    """After rspauth nothing more is expected: another token fails the
    connection (the reference's DIGEST-MD5 server is complete too)."""
    with sasl_server.raw() as client:
        _, challenge = sasl(client, b"")
        sasl(client, digest_response(challenge, "bob", USERS["bob"]))
        reply, _ = sasl(client, b"")
        assert reply.err == Err.AUTH_FAILED
        assert client.wait_closed(PROMPT_S)


def test_allow_sasl_failed_clients(allow_failed_server):
    """allowSaslFailedClients: a failed login answers OK with a null token
    and the connection goes on, unauthenticated."""
    with allow_failed_server.raw() as client:
        _, challenge = sasl(client, b"")
        reply, token = sasl(client, digest_response(challenge, "bob", "wrong"))
        assert reply.err == Err.OK and token is None
        assert client.exists("/").ok
        ids = client.who_am_i().ids
        assert "sasl" not in [i.scheme for i in ids]
        reply, token = sasl(client, digest_response(challenge, "bob", "wrong"))
        if allow_failed_server.kind == harness.OURS:
            # DIFFERS: the reference answers every later attempt with a null
            # token too, so kazoo (which resends on a null token) loops
            # for ever; ours refuses at once and keeps the connection.
            assert reply.err == Err.AUTH_FAILED
        else:
            assert reply.err == Err.OK and token is None
        assert client.exists("/").ok


def test_allow_sasl_failed_clients_kazoo_does_not_hang(allow_failed_server, kazoo):
    if allow_failed_server.kind == harness.REFERENCE:
        pytest.skip("DIFFERS: kazoo loops for ever against the reference here "
                    "(null token after a failed login, resent for ever)")
    assert_fails_promptly(kazoo(allow_failed_server, "bob", "wrong", start=False))


def test_require_client_sasl_auth(required_server, kazoo):
    """sessionRequireClientSASLAuth: until a connection has a sasl identity
    every request but auth and sasl is answered SessionClosedRequireSaslAuth
    (zxid 0), then the connection is closed; a SASL login is served."""
    for op, body, xid in ((Op.EXISTS, zkraw.body_path_watch("/", False), None),
                          (Op.PING, b"", zkraw.XID_PING)):
        with required_server.raw() as client:
            reply = client.call(op, body, xid=xid, timeout=PROMPT_S)
            assert reply.err == SESSION_CLOSED_REQUIRE_SASL_AUTH and reply.zxid == 0
            assert client.wait_closed(PROMPT_S)
    with required_server.raw() as client:
        # digest auth alone does not satisfy a sasl requirement.
        assert client.auth("digest", b"u:p").ok
        reply = client.call(Op.EXISTS, zkraw.body_path_watch("/", False), timeout=PROMPT_S)
        assert reply.err == SESSION_CLOSED_REQUIRE_SASL_AUTH
    with required_server.raw() as client:
        _, challenge = sasl(client, b"")
        sasl(client, digest_response(challenge, "bob", USERS["bob"]))
        assert client.exists("/").ok
    bob = kazoo(required_server, "bob", USERS["bob"])
    assert bob.exists("/") is not None
    # A failed login when SASL is required: SessionClosedRequireSaslAuth.
    with required_server.raw() as client:
        _, challenge = sasl(client, b"")
        reply, _ = sasl(client, digest_response(challenge, "bob", "wrong"))
        assert reply.err == SESSION_CLOSED_REQUIRE_SASL_AUTH
        assert client.wait_closed(PROMPT_S)


def test_without_sasl_configured(plain_server, kazoo):
    """No JAAS Server section: the first sasl request gets an OK with a null
    token (the reference's answer)."""
    with plain_server.raw() as client:
        reply, token = sasl(client, b"")
        assert reply.err == Err.OK and token is None
        reply, token = sasl(client, b"")
        if plain_server.kind == harness.OURS:
            # DIFFERS: the reference answers a null token again, for ever,
            # which is what kept kazoo looping; ours refuses the repeat.
            assert reply.err == Err.AUTH_FAILED
            assert client.wait_closed(PROMPT_S)
        else:
            assert reply.err == Err.OK and token is None
    if plain_server.kind == harness.OURS:
        assert_fails_promptly(kazoo(plain_server, "bob", "x", start=False))
    still_serves(plain_server)
