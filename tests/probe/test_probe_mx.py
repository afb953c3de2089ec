"""Without a server, send() looks up the recipients' MX hosts (here from a DNS server
started by the test on loopback) and tries them in preference order."""
from __future__ import annotations

import pytest

import probe
from probe_servers import DNSServer


@pytest.fixture
def dns_server():
    started = []

    def start(records):
        server = DNSServer(records)
        started.append(server)
        return server
    yield start
    for server in started:
        server.close()


def msg(to: str) -> probe.Message:
    return probe.Message("a@example.com", to=[to], subject="mx", text="via MX")


def test_mx_hosts_are_tried_in_preference_order(smtpd, dns_server):
    server = smtpd()
    dns = dns_server({
        ("mx.test", "MX"): ["20 good.mx.test.", "5 dead.mx.test."],
        # nothing listens on 127.0.0.2 (the test server is bound to 127.0.0.1 only)
        ("dead.mx.test", "A"): ["127.0.0.2"],
        ("good.mx.test", "A"): ["127.0.0.1"],
    })
    config = probe.DNSConfig("127.0.0.1", dns.port, timeout=2)
    result = probe.send(msg("bob@mx.test"), port=server.port, tls="none", dns=config)
    assert result.delivered and result.host == "good.mx.test" and result.address == "127.0.0.1"
    text = str(result.transcript)
    assert "MX for mx.test: 5 dead.mx.test, 20 good.mx.test" in text
    assert text.index("Trying 127.0.0.2") < text.index("Trying 127.0.0.1")
    assert server.messages[0].rcpt_tos == ["bob@mx.test"]
    assert ("mx.test", "MX") in dns.queries


def test_no_mx_falls_back_to_the_address_record(smtpd, dns_server):
    server = smtpd()
    dns = dns_server({("plain.test", "A"): ["127.0.0.1"]})
    config = probe.DNSConfig("127.0.0.1", dns.port, timeout=2)
    result = probe.send(msg("bob@plain.test"), port=server.port, tls="none", dns=config)
    assert result.delivered and result.host == "plain.test"
    assert "No MX for plain.test" in str(result.transcript)


def test_dns_failures_are_connection_errors(dns_server):
    dns = dns_server({("nullmx.test", "MX"): ["0 ."]})
    config = probe.DNSConfig("127.0.0.1", dns.port, timeout=2)
    with pytest.raises(probe.ConnectError, match="does not exist") as caught:
        probe.send(msg("bob@missing.test"), tls="none", dns=config)
    assert caught.value.stage == "dns"
    with pytest.raises(probe.ConnectError, match="null MX"):
        probe.send(msg("bob@nullmx.test"), tls="none", dns=config)


def test_recipients_in_several_domains_need_a_server():
    message = probe.Message("a@example.com", to=["x@one.test", "y@two.test"], text="x")
    with pytest.raises(probe.UsageError, match="one domain"):
        probe.send(message)
