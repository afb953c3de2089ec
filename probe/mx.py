"""Where mail for a domain goes: its MX hosts in preference order, or its A/AAAA record.

Uses dnspython. ``DNSConfig`` points the resolver at a given name server and port
(tests run a tiny DNS server on loopback); by default the system's resolver settings.
Every MX host name is resolved with the same resolver, so one DNS server is enough.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConnectError
from .transcript import Transcript

if TYPE_CHECKING:
    import dns.asyncresolver


def _dns():
    """dnspython, imported on first use: it costs ~50 ms, and only sends without a
    --server need it (importing the probe, or the sink, should not pay for that)."""
    import dns.asyncresolver
    import dns.exception
    import dns.name
    import dns.resolver
    return dns


@dataclass
class DNSConfig:
    """The resolver to use: None = the system's (/etc/resolv.conf)."""

    nameserver: str | None = None
    port: int = 53
    timeout: float = 5.0


@dataclass
class Target:
    """One place to try: ``host`` is the name (for TLS), ``address`` what we connect to."""

    host: str
    port: int
    address: str | None = None
    preference: int | None = None

    @property
    def connect_to(self) -> str:
        return self.address or self.host


def make_resolver(config: DNSConfig | None) -> dns.asyncresolver.Resolver:
    dns = _dns()
    config = config or DNSConfig()
    if config.nameserver is None:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [config.nameserver]
        resolver.port = config.port
    resolver.lifetime = config.timeout
    return resolver


async def _addresses(resolver: dns.asyncresolver.Resolver, name: str) -> list[str]:
    dns = _dns()
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(name, rdtype)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            continue
        except dns.exception.DNSException:
            continue
        found += [record.to_text() for record in answer]
    return found


async def mail_targets(domain: str, port: int, config: DNSConfig | None = None,
                       transcript: Transcript | None = None) -> list[Target]:
    """Every address to try for ``domain``, best MX first (RFC 5321 section 5.1)."""
    dns = _dns()
    transcript = transcript or Transcript()
    resolver = make_resolver(config)
    try:
        query = dns.name.from_unicode(domain)
    except (dns.exception.DNSException, UnicodeError) as error:
        raise ConnectError(f"bad domain {domain!r}: {error}", stage="dns") from None
    hosts: list[tuple[int | None, str]]
    try:
        answer = await resolver.resolve(query, "MX")
        records = sorted(answer, key=lambda r: r.preference)
        if any(r.exchange == dns.name.root for r in records):
            raise ConnectError(f"{domain} accepts no mail (null MX, RFC 7505)", stage="dns")
        hosts = [(r.preference, r.exchange.to_text(omit_final_dot=True)) for r in records]
        transcript.note(f"MX for {domain}: " + ", ".join(f"{p} {h}" for p, h in hosts))
    except dns.resolver.NoAnswer:
        hosts = [(None, domain)]   # no MX: the domain itself is the implicit MX
        transcript.note(f"No MX for {domain}: using its A/AAAA record")
    except dns.resolver.NXDOMAIN:
        raise ConnectError(f"DNS: domain {domain} does not exist", stage="dns") from None
    except dns.exception.DNSException as error:
        raise ConnectError(f"DNS lookup of MX for {domain} failed: {error}", stage="dns") from None
    targets: list[Target] = []
    for preference, host in hosts:
        addresses = await _addresses(resolver, host)
        if not addresses:
            transcript.error(f"{host} has no A/AAAA record")
        targets += [Target(host, port, address, preference) for address in addresses]
    if not targets:
        raise ConnectError(f"DNS: no address for any mail host of {domain}", stage="dns")
    return targets
