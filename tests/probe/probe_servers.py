"""Real servers for the probe's tests: aiosmtpd with TLS/AUTH, a scripted raw server,
and a throw-away CA. Each runs its own event loop in a thread on a free loopback port.
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, auth_mechanism

USER = "testuser"
PASSWORD = "pässwörd-€-секрет"   # non-Latin-1 on purpose (the seed's btoa() broke on it)
TOKEN = "ya29.test-oauth-token"


# -- certificates ----------------------------------------------------------------
@dataclass
class CertFiles:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path, names: tuple[str, ...] = ("localhost",),
               ips: tuple[str, ...] = ("127.0.0.1", "::1")) -> CertFiles:
    """A CA and a server certificate it signed, for ``names`` and ``ips``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailsink test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                               for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    files = CertFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.TraditionalOpenSSL,
                                            serialization.NoEncryption()))
    return files


def server_context(certs: CertFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    return context


# -- a loop in a thread ------------------------------------------------------------
class LoopThread:
    """An asyncio loop running in a daemon thread; ``call`` runs a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)  # type: ignore

    def stop(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self.call(cancel_the_rest())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


# -- aiosmtpd ---------------------------------------------------------------------
@dataclass
class Received:
    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    content: bytes
    login: bytes | None
    tls: bool


@dataclass
class RecordingHandler:
    """Keeps every message; RCPT to ``reject*@`` gets 550; advertises PIPELINING."""

    pipelining: bool = True
    messages: list[Received] = field(default_factory=list)
    mechanisms_used: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server: SMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses = responses[:-1] + ["250-PIPELINING"] + responses[-1:]
        return responses

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address.startswith("reject"):
            return f"550 5.1.1 <{address}>: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        transport = server.transport
        tls = session.ssl is not None or (transport is not None and
                                          transport.get_extra_info("ssl_object") is not None)
        self.messages.append(Received(envelope.mail_from, list(envelope.mail_options),
                                      list(envelope.rcpt_tos), envelope.original_content,
                                      getattr(session.auth_data, "login", None), tls))
        return "250 2.0.0 Ok: queued as TEST123"

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        challenge = b"<1896.697170952@test.local>"
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False)
        user, _, digest = response.partition(b" ")
        expected = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest().encode()
        ok = user == USER.encode() and hmac.compare_digest(digest, expected)
        if ok:
            self.mechanisms_used.append("CRAM-MD5")
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(user, b""))

    @auth_mechanism("XOAUTH2")
    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        blob = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        expected = f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01".encode()
        if blob == expected:
            self.mechanisms_used.append("XOAUTH2")
            return AuthResult(success=True, auth_data=LoginPassword(USER.encode(), b""))
        # Like Gmail: a 334 with a JSON error, then 535 after the client's empty line.
        await server.challenge_auth(b'{"status":"401","schemes":"Bearer"}')
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")


def authenticator(server: SMTP, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and \
        auth_data.password == PASSWORD.encode()
    if ok and isinstance(server.event_handler, RecordingHandler):
        server.event_handler.mechanisms_used.append(mechanism)
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


class LoopServer:
    """A server run on its own ``LoopThread``: ``host``, ``port``, ``address``, ``close``."""

    host: str
    port: int
    server: asyncio.base_events.Server
    thread: LoopThread

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
        self.thread.call(stop())
        self.thread.stop()


class AiosmtpdServer(LoopServer):
    """aiosmtpd on 127.0.0.1:<free port>. ``tls``: None, "starttls" or "implicit"."""

    def __init__(self, certs: CertFiles | None = None, tls: str | None = None,
                 auth: bool = False, auth_required: bool = False, pipelining: bool = True,
                 smtputf8: bool = True, require_tls_for_auth: bool = False,
                 timeout: float = 300) -> None:
        self.handler = RecordingHandler(pipelining=pipelining)
        self.thread = LoopThread()
        context = server_context(certs) if certs and tls else None
        kwargs: dict[str, Any] = dict(hostname="test.local", enable_SMTPUTF8=smtputf8,
                                      timeout=timeout)
        if tls == "starttls":
            kwargs["tls_context"] = context
        if auth:
            kwargs.update(authenticator=authenticator, auth_required=auth_required,
                          # aiosmtpd only trusts TLS it negotiated itself (not implicit TLS)
                          auth_require_tls=require_tls_for_auth and tls == "starttls")
        else:
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]

        async def start() -> asyncio.AbstractServer:
            loop = asyncio.get_running_loop()
            return await loop.create_server(
                lambda: SMTP(self.handler, loop=loop, **kwargs), "127.0.0.1", 0,
                ssl=context if tls == "implicit" else None)

        self.server = self.thread.call(start())
        self.host = "127.0.0.1"
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages



# -- a raw scripted server -----------------------------------------------------------
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ScriptedServer(LoopServer):
    """Runs ``script(reader, writer)`` for each connection: for protocol edge cases."""

    def __init__(self, script: Script) -> None:
        self.thread = LoopThread()
        self.connections = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        self.server = self.thread.call(start())
        self.host = "127.0.0.1"
        self.port = self.server.sockets[0].getsockname()[1]



# -- a tiny DNS server ----------------------------------------------------------------
class DNSServer:
    """Answers UDP queries on 127.0.0.1 from ``records``: {(name, type): [rdata text]}.

    A name with no record of the asked type gets NOERROR and no answer (NoAnswer); a
    name with no records at all gets NXDOMAIN.
    """

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        import socket as socket_module
        self.records = {(name.lower().rstrip("."), rdtype): values
                        for (name, rdtype), values in records.items()}
        self.sock = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset
        while self._running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            values = self.records.get((name, rdtype))
            if values:
                response.answer.append(dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, question.rdtype, values))
            elif not any(key[0] == name for key in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._running = False
        self.thread.join(2)
        self.sock.close()


# -- Exim -------------------------------------------------------------------------------
class EximServer:
    """Exim as a real MTA (the recipe in shared/reference/exim/), on three free ports.

    ``plain_port``: plain with STARTTLS (AUTH only inside TLS); ``smtps_port``: implicit
    TLS; ``sub_port``: MAIL needs AUTH. Users testuser/alice/bob at test.example;
    AUTH testuser/testpass. Mail lands in ``mailbox(localpart)`` (Maildir).
    """

    USER, PASSWORD, DOMAIN = "testuser", "testpass", "test.example"

    def __init__(self, exim: str, config: Path) -> None:
        import shutil
        import socket as socket_module
        import subprocess
        import tempfile
        import time
        # Not under pytest's tmp dir: that is root-only (0700) and Exim drops to Debian-exim.
        self.dir = Path(tempfile.mkdtemp(prefix="mailsink-exim-"))
        self.dir.chmod(0o755)
        for sub in ("spool", "mail", "log"):
            (self.dir / sub).mkdir()
            shutil.chown(self.dir / sub, "Debian-exim", "Debian-exim")
        self.certs = make_certs(self.dir, names=("localhost", "mx.test.example"))
        shutil.chown(self.certs.key, "root", "Debian-exim")
        self.certs.key.chmod(0o640)
        self.config = self.dir / "exim.conf"
        shutil.copyfile(config, self.config)
        self.config.chmod(0o644)   # Exim refuses a -C file that others can write
        ports = []
        holders = []
        for _ in range(3):
            sock = socket_module.socket()
            sock.bind(("127.0.0.1", 0))
            holders.append(sock)
            ports.append(sock.getsockname()[1])
        for sock in holders:
            sock.close()
        self.plain_port, self.smtps_port, self.sub_port = ports
        self.host = "127.0.0.1"
        self.process = subprocess.Popen(
            [exim, "-C", str(self.config), f"-DTESTDIR={self.dir}",
             f"-DPLAIN_PORT={self.plain_port}", f"-DSMTPS_PORT={self.smtps_port}",
             f"-DSUB_PORT={self.sub_port}", "-bdf", "-oP", str(self.dir / "exim.pid")],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.txt", "wb"))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket_module.create_connection((self.host, self.plain_port), 0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    logs = self.logs()
                    self.stop()
                    raise RuntimeError(f"Exim did not start:\n{logs}")
                time.sleep(0.05)

    def mailbox(self, localpart: str, count: int = 1, timeout: float = 10.0) -> list[bytes]:
        """The messages delivered to ``localpart`` (waits for ``count`` of them)."""
        import time
        folder = self.dir / "mail" / localpart / "new"
        deadline = time.monotonic() + timeout
        while True:
            files = sorted(folder.glob("*")) if folder.exists() else []
            if len(files) >= count or time.monotonic() > deadline:
                return [f.read_bytes() for f in files]
            time.sleep(0.05)

    def find(self, localpart: str, marker: bytes, timeout: float = 10.0) -> bytes | None:
        """The delivered message of ``localpart`` that contains ``marker`` (waits for it)."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            for data in self.mailbox(localpart, 0, timeout=0):
                if marker in data:
                    return data
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def logs(self) -> str:
        parts = []
        for path in sorted((self.dir / "log").glob("*")) + [self.dir / "stderr.txt"]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def stop(self) -> None:
        import shutil
        import subprocess
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
