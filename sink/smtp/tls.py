"""TLS for the SMTP listeners: the server ``SSLContext`` and the certificate in it.

The certificate is the user's (``--tls-cert``/``--tls-key``) or one generated at
start-up: an ECDSA P-256 server certificate signed by a local CA made for this
process. The CA's private key is thrown away after signing, so nothing can ever
be signed with it again; its certificate is what clients trust (``--ca-out``,
``GET /tls/ca.pem``, ``Sink.client_ssl_context()``). Only TLS 1.2 and newer.
"""
from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

from ..settings import Settings, SettingsError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
VALIDITY = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(hours=1)  # clients whose clock is a little behind still accept it


@dataclass(frozen=True)
class GeneratedCertificate:
    """PEM bytes of a throwaway CA's certificate and of the server certificate and key it signed."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


@dataclass
class TLSSetup:
    """What the listeners need: the server context; the CA certificate if we generated one."""

    context: ssl.SSLContext
    ca_pem: bytes | None = None        # None with the user's own certificate
    cert_file: str | None = None       # the user's certificate file, if any

    @classmethod
    def from_settings(cls, settings: Settings) -> "TLSSetup | None":
        """The TLS set-up these settings ask for, or None when no listener uses TLS."""
        s = settings
        if s.require_tls and s.no_starttls:
            raise SettingsError("--require-tls needs STARTTLS: drop --no-starttls")
        if s.tls_key and not s.tls_cert:
            raise SettingsError("--tls-key needs --tls-cert")
        if s.ca_out and s.tls_cert:
            raise SettingsError("--ca-out writes the generated CA; with --tls-cert there is none")
        if s.no_starttls and s.smtps_port is None and not s.ca_out and not s.tls_cert:
            return None
        if s.tls_cert:
            return cls(server_context_from_files(s.tls_cert, s.tls_key), cert_file=s.tls_cert)
        generated = generate_certificate(certificate_names(s))
        return cls(server_context(generated.cert_pem, generated.key_pem), ca_pem=generated.ca_pem)

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies the sink's certificate (hostname checks on)."""
        if self.ca_pem is not None:
            return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
        context = ssl.create_default_context()
        if self.cert_file:
            context.load_verify_locations(cafile=self.cert_file)
        return context


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS 1.2+ server context holding this certificate and key (PEM bytes)."""
    # The ssl module loads certificates only from files: write them to a private
    # temporary directory (mode 0700) and remove it at once.
    with tempfile.TemporaryDirectory(prefix="mailsink-tls-") as directory:
        cert_file = os.path.join(directory, "cert.pem")
        key_file = os.path.join(directory, "key.pem")
        for path, data in ((cert_file, cert_pem), (key_file, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        return _new_server_context(cert_file, key_file)


def server_context_from_files(cert_file: str, key_file: str | None) -> ssl.SSLContext:
    """A TLS 1.2+ server context from the user's PEM files, or a SettingsError saying why not."""
    for flag, path in (("--tls-cert", cert_file), ("--tls-key", key_file)):
        if path is not None and not os.path.isfile(path):
            raise SettingsError(f"{flag}: no such file: {path}")
    try:
        return _new_server_context(cert_file, key_file)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or error.strerror or str(error)
        files = cert_file + (f" and {key_file}" if key_file else "")
        raise SettingsError(f"--tls-cert/--tls-key: cannot load {files}: {reason} "
                            "(expected a PEM certificate and its private key)") from None


def _new_server_context(cert_file: str, key_file: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(cert_file, key_file)
    return context


def certificate_names(settings: Settings) -> tuple[str, ...]:
    """The names and addresses clients may use to reach the sink, for the certificate."""
    names = [settings.hostname, "localhost", socket.gethostname(), "127.0.0.1", "::1"]
    if settings.listen not in ("", "0.0.0.0", "::"):
        names.append(settings.listen)
    return tuple(dict.fromkeys(name for name in names if name))


@functools.lru_cache(maxsize=8)
def generate_certificate(names: tuple[str, ...]) -> GeneratedCertificate:
    """A new CA and a server certificate for ``names`` (DNS names or IP addresses).

    Cached per process: every embedded sink in a test run shares one CA, and only
    the first one pays for it (a few milliseconds; importing ``cryptography`` is
    most of the cost, so it happens here and only when TLS is used).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - CLOCK_SKEW, now + VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailsink"),
        x509.NameAttribute(NameOID.COMMON_NAME,
                           f"mailsink local CA {now:%Y-%m-%d %H:%M:%S} {os.getpid()}"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(x509, digital_signature=True, key_cert_sign=True, crl_sign=True),
                       critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(x509, digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_alt_names(x509, names)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return GeneratedCertificate(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


def _key_usage(x509: Any, *, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> Any:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=key_cert_sign, crl_sign=crl_sign,
                         encipher_only=False, decipher_only=False)


def _alt_names(x509: Any, names: tuple[str, ...]) -> list[Any]:
    entries: list[Any] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if name.isascii():  # a DNS name must be ASCII (A-labels); skip anything else
                entries.append(x509.DNSName(name))
    return entries


def write_ca(path: str, ca_pem: bytes) -> None:
    """Write the CA certificate to ``path`` atomically (it is public: mode 0644)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".mailsink-ca-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(ca_pem)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def connection_tls(transport: Any) -> tuple[str | None, str | None]:
    """(TLS version, cipher name) of a connection, or (None, None) when it is plaintext.

    Works for STARTTLS and implicit TLS alike: both transports expose ``ssl_object``
    (aiosmtpd's ``session.ssl`` is only set after STARTTLS).
    """
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None, None
    cipher = ssl_object.cipher()
    return ssl_object.version(), cipher[0] if cipher else None
