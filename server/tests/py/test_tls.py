"""TLS on the secure client port and x509 identities, against ours and
Apache ZooKeeper 3.8.

What it is: a CA, server and client certificates made at test time with the
`openssl` CLI; servers started with `secureClientPort` beside `clientPort`,
Apache's `ssl.*` keys and `authProvider.x509=...X509AuthenticationProvider`
(the reference with `serverCnxnFactory=...NettyServerCnxnFactory`, which it
needs for TLS). kazoo over TLS doing CRUD, `x509:<subject>` ACLs (the
subject text Java's `X500Principal.getName()` writes, checked on an awkward
subject against the reference), `ssl.clientAuth` need/want, an untrusted
certificate, protocol versions, `openssl s_client`, Apache's zkCli.sh in
secure mode (ClientCnxnSocketNetty, PKCS12 stores), PKCS12 and JKS stores
on our side, and (ours) stalled, garbage and half-open handshakes that must
be closed without disturbing a working client.

What it is not: a test of rustls or of Python's ssl module; certificate
revocation (neither side checks it by default).

Invariant it keeps: every server is stopped, every socket closed, every
wait bounded; the handshake flood stays well inside the server's limits
(`maxClientCnxns=0`, a few hundred sockets).
"""

import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NoAuthError
from kazoo.security import ACL, Id, make_acl

import harness
import zkraw

X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"
NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
KEYTOOL = shutil.which("keytool") or "/usr/bin/keytool"
PASSWORD = "store-secret"

CLIENT_SUBJECT = "/C=US/O=Example Org/CN=client one"
CLIENT_DN = "CN=client one,O=Example Org,C=US"
# Escapes, a multi-valued RDN, types without an RFC 2253 keyword (hex
# values), UTF-8: the identity is the text Java writes, character for
# character (this string is what the reference stores).
V1_SUBJECT = "/O=Example Org/CN=version one"
V1_DN = "CN=version one,O=Example Org"
ODD_SUBJECT = (r'/C=US/O=Foo, Inc./OU=a\+b;c/CN= x=y #1 <z>"q"\\ /emailAddress=a@b.c'
               r'/DC=example/UID=u1+L=here/ST=Zoë/title=boss')
ODD_DN = (r'2.5.4.12=#0c04626f7373,ST=Zoë,L=here+UID=u1,DC=example,'
          r'1.2.840.113549.1.9.1=#16056140622e63,CN=\ x\=y \#1 \<z\>\"q\"\\\ ,'
          r'OU=a\+b\;c,O=Foo\, Inc.,C=US')


def run(*argv, cwd=None):
    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert p.returncode == 0, "%s failed:\n%s" % (" ".join(argv), p.stdout.decode(errors="replace"))
    return p.stdout.decode(errors="replace")


class Pki:
    """The certificates of one module, in a temp dir."""

    def __init__(self, directory):
        self.dir = directory
        d = lambda name: os.path.join(directory, name)  # noqa: E731
        self.path = d
        with open(d("server.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        with open(d("client.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=clientAuth\n")
        for ca in ("ca", "rogue-ca"):
            run(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d(ca + ".key"),
                "-out", d(ca + ".pem"), "-days", "2", "-subj", "/CN=Test %s" % ca,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.serial = 1000
        leaf = self.leaf
        leaf("server", "/CN=localhost", "server.ext")
        leaf("client", CLIENT_SUBJECT, "client.ext")
        leaf("odd", ODD_SUBJECT, "client.ext")
        leaf("rogue", "/CN=rogue", "client.ext", ca="rogue-ca")
        # X.509 version 1 leaves (no extensions at all), as kazoo's own
        # harness makes them and Java accepts them.
        leaf("server-v1", "/CN=localhost", None)
        leaf("client-v1", V1_SUBJECT, None)
        leaf("rogue-v1", V1_SUBJECT, None, ca="rogue-ca")
        self.ca = d("ca.pem")
        # A PEM key store: the key and its certificate in one file.
        self.server_pem = d("server-store.pem")
        self.server_v1_pem = d("server-v1-store.pem")
        for store, name in ((self.server_pem, "server"), (self.server_v1_pem, "server-v1")):
            with open(store, "w") as out:
                for part in (name + ".key", name + ".pem"):
                    with open(d(part)) as f:
                        out.write(f.read())
        for name in ("server", "client"):
            run(OPENSSL, "pkcs12", "-export", "-in", d(name + ".pem"), "-inkey", d(name + ".key"),
                "-certfile", self.ca, "-name", name, "-out", d(name + ".p12"),
                "-passout", "pass:" + PASSWORD)
        self.server_p12 = d("server.p12")
        self.client_p12 = d("client.p12")
        # Java's own trust store formats, when keytool is here.
        self.trust_p12 = None
        self.server_jks = None
        self.trust_jks = None
        if os.path.exists(KEYTOOL):
            self.trust_p12 = d("trust.p12")
            run(KEYTOOL, "-importcert", "-noprompt", "-alias", "ca", "-file", self.ca,
                "-storetype", "PKCS12", "-keystore", self.trust_p12, "-storepass", PASSWORD)
            self.server_jks = d("server.jks")
            run(KEYTOOL, "-importkeystore", "-srckeystore", self.server_p12, "-srcstoretype", "PKCS12",
                "-srcstorepass", PASSWORD, "-destkeystore", self.server_jks, "-deststoretype", "JKS",
                "-deststorepass", PASSWORD, "-noprompt")
            self.trust_jks = d("trust.jks")
            run(KEYTOOL, "-importcert", "-noprompt", "-alias", "ca", "-file", self.ca,
                "-storetype", "JKS", "-keystore", self.trust_jks, "-storepass", PASSWORD)

    def leaf(self, name, subject, ext, ca="ca"):
        """A key and a certificate signed by `ca`; returns the serial."""
        self.serial += 1
        d = self.path
        run(OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d(name + ".key"),
            "-out", d(name + ".csr"), "-subj", subject, "-utf8", "-multivalue-rdn")
        extensions = ("-extfile", d(ext)) if ext else ()
        run(OPENSSL, "x509", "-req", "-in", d(name + ".csr"), "-CA", d(ca + ".pem"),
            "-CAkey", d(ca + ".key"), "-set_serial", str(self.serial), "-out", d(name + ".pem"),
            "-days", "2", *extensions)
        return self.serial

    def cert(self, name):
        return self.path(name + ".pem"), self.path(name + ".key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    harness.require_file(OPENSSL, "openssl")
    return Pki(str(tmp_path_factory.mktemp("pki")))


def tls_config(pki, **overrides):
    config = {
        "serverCnxnFactory": NETTY_FACTORY,
        "ssl.keyStore.location": pki.server_pem,
        "ssl.trustStore.location": pki.ca,
        "authProvider.x509": X509_PROVIDER,
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def start_tls_server(request, kind, config):
    port = harness.free_port()
    extra = {"secureClientPort": port, "secureClientPortAddress": "127.0.0.1"}
    extra.update(config)
    server = harness.Server(kind, max_client_cnxns=0, extra=extra)
    request.addfinalizer(server.stop)
    server.start()
    server.secure_port = port
    return server


@pytest.fixture(scope="module", params=harness.targets())
def tls_server(request, pki):
    """clientAuth need (the default), PEM stores, the x509 provider."""
    return start_tls_server(request, request.param, tls_config(pki))


@pytest.fixture(scope="module", params=harness.targets())
def want_server(request, pki):
    return start_tls_server(request, request.param, tls_config(pki, **{"ssl.clientAuth": "want"}))


def kazoo_tls(server, pki, cert="client"):
    kw = {"use_ssl": True, "ca": pki.ca, "verify_certs": True}
    if cert:
        kw["certfile"], kw["keyfile"] = pki.cert(cert)
    client = KazooClient(hosts="127.0.0.1:%d" % server.secure_port, timeout=10, **kw)
    client.start(timeout=20)
    return client


def stop(client):
    client.stop()
    client.close()


def tls_session(server, pki, cert=None, minimum=None, maximum=None, timeout=10.0):
    """A TLS connection to the secure port and a ZooKeeper handshake over
    it: the session id, or None when the handshake or the session failed
    (closed, refused, alert)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.ca)
    if cert:
        context.load_cert_chain(*pki.cert(cert))
    if minimum:
        context.minimum_version = minimum
    if maximum:
        context.maximum_version = maximum
    try:
        raw = socket.create_connection(("127.0.0.1", server.secure_port), timeout=timeout)
    except OSError:
        return None
    try:
        sock = context.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(zkraw.frame(zkraw.connect_request(timeout_ms=10000)))
        data = b""
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        reader = zkraw.Reader(data[4:])
        reader.int(), reader.int()
        session = reader.long()
        sock.close()
        return session or None
    except (ssl.SSLError, OSError):
        return None
    finally:
        raw.close()


def test_kazoo_crud_over_tls_and_plain_port_unchanged(tls_server, pki):
    client = kazoo_tls(tls_server, pki)
    try:
        path = "/tls-crud-%s" % tls_server.name
        client.create(path, b"v1", makepath=True)
        assert client.get(path)[0] == b"v1"
        client.set(path, b"v2" * 50000)
        assert client.get(path)[0] == b"v2" * 50000
        client.create(path + "/child", b"")
        assert client.get_children(path) == ["child"]
        client.delete(path, recursive=True)
        assert client.exists(path) is None
    finally:
        stop(client)
    # The plain port beside it serves as before.
    tls_server.assert_serving()


def test_x509_acl_admits_only_that_certificate(tls_server, pki):
    owner = kazoo_tls(tls_server, pki, cert="client")
    other = kazoo_tls(tls_server, pki, cert="odd")
    plain = KazooClient(hosts=tls_server.addr, timeout=10)
    plain.start(timeout=20)
    path = "/tls-x509-%s" % tls_server.name
    try:
        owner.create(path, b"secret", acl=[make_acl("x509", CLIENT_DN, all=True)])
        assert owner.get(path)[0] == b"secret"
        assert owner.get_acls(path)[0] == [make_acl("x509", CLIENT_DN, all=True)]
        for stranger in (other, plain):
            with pytest.raises(NoAuthError):
                stranger.get(path)
        owner.delete(path)
    finally:
        for client in (owner, other, plain):
            stop(client)


def test_auth_acl_stores_the_subject_as_java_writes_it(tls_server, pki):
    # `auth` expands to the connection's identities: the getACL answer is
    # the identity itself, in the reference's DN text.
    client = kazoo_tls(tls_server, pki, cert="odd")
    path = "/tls-odd-%s" % tls_server.name
    try:
        client.create(path, b"", acl=[ACL(31, Id("auth", ""))])
        assert client.get_acls(path)[0] == [ACL(31, Id("x509", ODD_DN))]
        client.delete(path)
    finally:
        stop(client)


def test_addauth_x509_needs_a_certificate(tls_server, pki):
    # The reference's X509AuthenticationProvider answers setAuth from the
    # connection's certificate: OK over TLS with one, AuthFailed without.
    owner = kazoo_tls(tls_server, pki)
    plain = KazooClient(hosts=tls_server.addr, timeout=10)
    plain.start(timeout=20)
    try:
        owner.add_auth("x509", "anything")
        assert owner.exists("/") is not None
        with pytest.raises(AuthFailedError):
            plain.add_auth("x509", "anything")
    finally:
        stop(owner)
        stop(plain)


def test_client_auth_need_refuses_without_or_with_an_untrusted_certificate(tls_server, pki):
    assert tls_session(tls_server, pki, cert="client") is not None
    for tls_version in (ssl.TLSVersion.TLSv1_2, None):
        assert tls_session(tls_server, pki, cert=None, maximum=tls_version) is None
    assert tls_session(tls_server, pki, cert="rogue") is None
    tls_server.assert_serving()


@pytest.fixture(scope="module", params=harness.targets())
def v1_server(request, pki):
    """A version 1 server certificate; clientAuth need; TLS 1.2 and 1.3; no
    authProvider line (as kazoo's harness configures the server)."""
    return start_tls_server(request, request.param, tls_config(pki, **{
        "authProvider.x509": None,
        "ssl.keyStore.location": pki.server_v1_pem, "ssl.enabledProtocols": "TLSv1.2,TLSv1.3",
        "ssl.ciphersuites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256"}))


def test_version_1_certificates_serve_and_identify(v1_server, pki):
    # kazoo's harness signs its server and client certificates as X.509
    # version 1: both servers take them, a version 1 client certificate is
    # an x509 identity like any other, and one from an untrusted CA is
    # still refused. The identity needs no authProvider line.
    assert run(OPENSSL, "x509", "-in", pki.path("client-v1.pem"), "-noout", "-text").count(
        "Version: 1 (0x0)") == 1
    client = kazoo_tls(v1_server, pki, cert="client-v1")
    path = "/tls-v1-%s" % v1_server.name
    try:
        client.create(path, b"v1", acl=[ACL(31, Id("auth", ""))])
        assert client.get(path)[0] == b"v1"
        assert client.get_acls(path)[0] == [ACL(31, Id("x509", V1_DN))]
        client.delete(path)
    finally:
        stop(client)
    assert tls_session(v1_server, pki, cert="client") is not None
    assert tls_session(v1_server, pki, cert="rogue-v1") is None
    for tls_version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert tls_session(v1_server, pki, cert="client-v1", minimum=tls_version,
                           maximum=tls_version) is not None
    v1_server.assert_serving()


def test_client_auth_want_serves_a_client_without_certificate(want_server, pki):
    anonymous = kazoo_tls(want_server, pki, cert=None)
    owner = kazoo_tls(want_server, pki, cert="client")
    path = "/tls-want-%s" % want_server.name
    try:
        anonymous.create(path, b"open")
        assert owner.get(path)[0] == b"open"
        owner.create(path + "/mine", b"", acl=[make_acl("x509", CLIENT_DN, read=True, write=True,
                                                       create=True, delete=True, admin=True)])
        with pytest.raises(NoAuthError):
            anonymous.get(path + "/mine")
        owner.delete(path, recursive=True)
    finally:
        stop(anonymous)
        stop(owner)
    # A certificate is still checked when it is offered.
    assert tls_session(want_server, pki, cert="rogue") is None


def test_x509_super_user(request, tls_server, pki):
    # X509AuthenticationProvider.superUser: that subject's connections are
    # super, and pass every ACL.
    # (zoo.cfg is a properties file, where a backslash escapes: the plain
    # subject is the super user.)
    server = start_tls_server(request, tls_server.kind, tls_config(pki, **{
        "X509AuthenticationProvider.superUser": CLIENT_DN}))
    owner = kazoo_tls(server, pki, cert="odd")
    admin = kazoo_tls(server, pki, cert="client")
    path = "/tls-super-%s" % server.name
    try:
        owner.create(path, b"mine", acl=[make_acl("x509", ODD_DN, all=True)])
        assert admin.get(path)[0] == b"mine"
        admin.delete(path)
    finally:
        stop(owner)
        stop(admin)


def test_default_protocol_is_tls12_and_enabled_protocols_select(request, tls_server, pki):
    # Apache ZooKeeper 3.8's ssl.protocol default, TLSv1.2, is also its only
    # enabled protocol.
    assert tls_session(tls_server, pki, cert="client", maximum=ssl.TLSVersion.TLSv1_2) is not None
    assert tls_session(tls_server, pki, cert="client", minimum=ssl.TLSVersion.TLSv1_3) is None
    tls13 = start_tls_server(request, tls_server.kind, tls_config(pki, **{
        "ssl.enabledProtocols": "TLSv1.3",
        "ssl.ciphersuites": "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384"}))
    assert tls_session(tls13, pki, cert="client", minimum=ssl.TLSVersion.TLSv1_3) is not None
    assert tls_session(tls13, pki, cert="client", maximum=ssl.TLSVersion.TLSv1_2) is None


def test_openssl_s_client_handshake_and_four_letter_word(tls_server, pki):
    cert, key = pki.cert("client")
    p = subprocess.run(
        [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % tls_server.secure_port,
         "-CAfile", pki.ca, "-cert", cert, "-key", key, "-verify_return_error",
         "-verify_hostname", "localhost", "-ign_eof"],
        input=b"ruok", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out, out
    assert "imok" in out, out


def zkcli_secure(server, pki, *command, truststore=None):
    trust = truststore or (pki.trust_p12, "PKCS12")
    flags = [
        "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
        # zkEnv.sh's classpath lacks netty-codec and netty-resolver, which the
        # Netty socket needs; a later -cp wins.
        "-cp", "/etc/zookeeper/conf:%s:%s:%s" % (harness.ZK_JAR, harness.NETTY_CODEC_JAR,
                                                harness.NETTY_RESOLVER_JAR),
        "-Dzookeeper.client.secure=true",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        "-Dzookeeper.ssl.keyStore.location=%s" % pki.client_p12,
        "-Dzookeeper.ssl.keyStore.password=%s" % PASSWORD,
        "-Dzookeeper.ssl.trustStore.location=%s" % trust[0],
        "-Dzookeeper.ssl.trustStore.password=%s" % PASSWORD,
        "-Dzookeeper.ssl.trustStore.type=%s" % trust[1],
    ]
    env = dict(os.environ, CLIENT_JVMFLAGS=" ".join(flags), ZOO_LOG_DIR="/tmp")
    p = subprocess.run([harness.ZK_CLI, "-server", "127.0.0.1:%d" % server.secure_port] + list(command),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=90, env=env)
    return p.returncode, p.stdout.decode(errors="replace")


def test_zkcli_in_secure_mode(tls_server, pki):
    harness.require_file(harness.ZK_CLI, "zookeeper")
    harness.require_file(harness.NETTY_CODEC_JAR, "libnetty-java")
    harness.require_file(harness.NETTY_RESOLVER_JAR, "libnetty-java")
    if pki.trust_p12 is None:
        harness.missing("keytool (default-jre-headless)")
    path = "/zkcli-tls-%s" % tls_server.name
    code, out = zkcli_secure(tls_server, pki, "create", path, "hello-tls")
    assert code == 0 and "Created " + path in out, out
    code, out = zkcli_secure(tls_server, pki, "get", path, truststore=(pki.ca, "PEM"))
    assert code == 0 and "hello-tls" in out, out
    code, out = zkcli_secure(tls_server, pki, "delete", path)
    assert code == 0, out


def ours_on_secure_port_only(pki, name, config):
    """A zoo.cfg with `secureClientPort` and no `clientPort` (which the
    harness's plain-port readiness probe needs): its path and the port."""
    directory = os.path.join(pki.dir, name)
    os.makedirs(os.path.join(directory, "data"), exist_ok=True)
    port = harness.free_port()
    lines = ["tickTime=2000", "dataDir=%s/data" % directory, "secureClientPort=%d" % port,
             "secureClientPortAddress=127.0.0.1", "admin.enableServer=false"]
    lines += ["%s=%s" % kv for kv in config.items()]
    cfg = os.path.join(directory, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    return cfg, port


def refused_at_start_up(pki, name, config):
    """Our server's output when it exits at start-up on `config` (on the
    secure port only, so a store error stops it)."""
    cfg, _ = ours_on_secure_port_only(pki, name, config)
    p = subprocess.run([harness.ours_bin(), cfg], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    text = p.stdout.decode(errors="replace")
    assert p.returncode != 0, text
    return text


@pytest.mark.parametrize("kind", [harness.OURS])
def test_pkcs12_and_jks_stores(request, pki, kind):
    if pki.trust_p12 is None:
        harness.missing("keytool (default-jre-headless)")
    # keytool's PKCS12 stores, then its JKS stores (named by .type, and by
    # the .jks extension): each serves a client whose certificate the trust
    # store's CA signed (clientAuth need).
    for name, stores in (
            ("p12", {"ssl.keyStore.location": pki.server_p12,
                     "ssl.trustStore.location": pki.trust_p12}),
            ("jks", {"ssl.keyStore.location": pki.server_jks, "ssl.keyStore.type": "JKS",
                     "ssl.trustStore.location": pki.trust_jks, "ssl.trustStore.type": "jks"}),
            ("jks-by-extension", {"ssl.keyStore.location": pki.server_jks,
                                  "ssl.trustStore.location": pki.trust_jks})):
        server = start_tls_server(request, kind, tls_config(pki, **dict(stores, **{
            "ssl.keyStore.password": PASSWORD, "ssl.trustStore.password": PASSWORD})))
        client = kazoo_tls(server, pki)
        try:
            path = "/tls-" + name
            client.create(path, b"ok")
            assert client.get(path)[0] == b"ok"
        finally:
            stop(client)
            server.stop()
    harness.require(kind)
    # A wrong JKS password fails the store's integrity check, naming it.
    text = refused_at_start_up(pki, "jks-wrong", tls_config(pki, **{
        "ssl.keyStore.location": pki.server_jks, "ssl.keyStore.password": "wrong-password"}))
    assert "ssl.keyStore %s" % pki.server_jks in text, text
    assert "the integrity check failed: the password is wrong" in text, text
    # BCFKS is still refused at start-up, naming the type and the way out.
    text = refused_at_start_up(pki, "bcfks", tls_config(pki, **{
        "ssl.keyStore.location": pki.path("server.bcfks"), "ssl.keyStore.password": PASSWORD}))
    assert "BCFKS stores are Java-only" in text and "keytool -importkeystore" in text, text


@pytest.mark.parametrize("kind", [harness.OURS])
def test_stalled_garbage_and_half_open_handshakes_are_closed(request, pki, kind):
    server = start_tls_server(request, kind, tls_config(pki, **{"ssl.handshakeTimeoutMillis": "2000"}))
    client = kazoo_tls(server, pki)
    sockets = {"silent": [], "garbage": [], "half": [], "plain-zk": []}
    # The first bytes of a TLS 1.2 ClientHello record, cut short.
    half_hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
    try:
        for i in range(600):
            kind_of = ("silent", "silent", "half", "garbage", "plain-zk")[i % 5]
            s = socket.create_connection(("127.0.0.1", server.secure_port), timeout=10)
            if kind_of == "garbage":
                s.sendall(os.urandom(64) + b"\x00" * 1024)
            elif kind_of == "half":
                s.sendall(half_hello)
            elif kind_of == "plain-zk":
                s.sendall(zkraw.frame(zkraw.connect_request()))
            sockets[kind_of].append(s)
        # A working client is served all along.
        for i in range(20):
            client.create("/flood-%d" % i, b"x")
            assert client.get("/flood-%d" % i)[0] == b"x"
        assert tls_session(server, pki, cert="client") is not None

        def closed(s, timeout):
            s.settimeout(timeout)
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False

        # Garbage and plain ZooKeeper bytes are refused at once (an alert,
        # then EOF); silent and half-sent handshakes at the timeout.
        for s in sockets["garbage"] + sockets["plain-zk"]:
            assert closed(s, 5.0)
        start = time.monotonic()
        for s in sockets["silent"] + sockets["half"]:
            assert closed(s, 10.0)
        assert time.monotonic() - start < 10.0
        for i in range(20):
            client.delete("/flood-%d" % i)
        server.assert_serving()
    finally:
        stop(client)
        for group in sockets.values():
            for s in group:
                s.close()


@pytest.mark.parametrize("kind", [harness.OURS])
def test_secure_port_instead_of_client_port(request, pki, kind):
    harness.require(kind)
    cfg, port = ours_on_secure_port_only(pki, "secure-only", tls_config(pki))
    log = open(os.path.join(os.path.dirname(cfg), "server.log"), "wb")
    proc = subprocess.Popen([harness.ours_bin(), cfg], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)

    def stop_it():
        proc.kill()
        proc.wait(timeout=10)
        log.close()
    request.addfinalizer(stop_it)

    class Target:
        secure_port = port
    harness.wait_until(lambda: tls_session(Target, pki, cert="client", timeout=2.0) is not None,
                       timeout=30, interval=0.2, what="the secure-only server")


def served_serial(server, pki):
    """The serial number of the certificate the secure port presents now."""
    context = ssl.create_default_context(cafile=pki.ca)
    context.load_cert_chain(*pki.cert("client"))
    with socket.create_connection(("127.0.0.1", server.secure_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            return int(sock.getpeercert()["serialNumber"], 16)


@pytest.mark.parametrize("kind", [harness.OURS])
def test_rotated_key_store_is_reloaded(request, pki, kind):
    # client.certReload (Apache 3.9's key): a store file replaced on disk is
    # read again for new connections; open ones carry on.
    store = pki.path("rotating-store.pem")
    shutil.copy(pki.server_pem, store)
    server = start_tls_server(request, kind, tls_config(pki, **{
        "ssl.keyStore.location": store, "client.certReload": "true"}))
    first = served_serial(server, pki)
    client = kazoo_tls(server, pki)
    try:
        serial = pki.leaf("rotated", "/CN=localhost", "server.ext")
        assert serial != first
        staged = store + ".new"
        with open(staged, "w") as out:
            for part in ("rotated.key", "rotated.pem"):
                with open(pki.path(part)) as f:
                    out.write(f.read())
        os.replace(staged, store)
        harness.wait_until(lambda: served_serial(server, pki) == serial, timeout=15,
                           interval=0.2, what="the rotated certificate")
        client.create("/tls-rotated", b"still here")
        assert client.get("/tls-rotated")[0] == b"still here"
    finally:
        stop(client)
