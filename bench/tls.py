"""TLS/AUTH benchmark: what encryption and login cost, as ratios to plaintext in the same run.

Prints one JSON object:
- start-up: seconds from ``Sink().start()`` to ready in a fresh process, with the
  default generated certificate vs ``no_starttls`` (no certificate at all), and a
  second ``Sink`` in the same process (the certificate is cached);
- throughput: messages/s over one new connection per message (handshake-bound) and
  100 messages per connection (steady state), for plaintext, STARTTLS, implicit
  TLS and STARTTLS + AUTH PLAIN, 4 concurrent clients.
The sink runs as ``mailsink serve`` in its own process; the load is aiosmtplib here.
Usage: python bench/tls.py [--quick]
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time

import aiosmtplib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: bench\r\n\r\n" + b"x" * 1000 + b"\r\n"
CONCURRENCY = 4

STARTUP_PROBE = """
import sys, time
t0 = time.perf_counter()
from sink import Sink
t1 = time.perf_counter()
with Sink(no_starttls={no_starttls}) as first:
    t2 = time.perf_counter()
    with Sink(no_starttls={no_starttls}) as second:
        t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def startup(no_starttls: bool, runs: int) -> dict[str, float]:
    imports, firsts, seconds = [], [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", STARTUP_PROBE.format(no_starttls=no_starttls)],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        a, b, c = map(float, out.split())
        imports.append(a)
        firsts.append(b)
        seconds.append(c)
    return {"import_s": round(min(imports), 4), "first_sink_s": round(min(firsts), 4),
            "second_sink_s": round(min(seconds), 4)}


async def run_clients(port: int, total: int, per_connection: int, *, start_tls: bool,
                      use_tls: bool, login: bool, context: ssl.SSLContext) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            batch = min(per_connection, remaining)
            remaining -= batch
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=use_tls,
                                     start_tls=start_tls, tls_context=context)
            async with client:
                if login:
                    await client.login("bench", "secret")
                for _ in range(batch):
                    await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return total / (time.perf_counter() - started)


def main() -> None:
    quick = "--quick" in sys.argv
    runs = 2 if quick else 3
    total_new, total_reused = (100, 400) if quick else (300, 2000)
    result: dict = {"startup": {
        "generated_cert": startup(False, runs),
        "no_tls": startup(True, runs),
    }}
    g, n = result["startup"]["generated_cert"], result["startup"]["no_tls"]
    result["startup"]["first_sink_ratio_tls_vs_none"] = round(g["first_sink_s"] / n["first_sink_s"], 2)

    with tempfile.TemporaryDirectory() as directory:
        ca = os.path.join(directory, "ca.pem")
        server = subprocess.Popen(
            [sys.executable, "-m", "sink", "serve", "--smtp-port", "0", "--http-port", "0",
             "--smtps-port", "0", "--auth", "any", "--auth-allow-insecure", "--ca-out", ca,
             "--max-messages", "1000", "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            first = server.stdout.readline()
            second = server.stdout.readline()
            smtp_port = int(re.search(r"SMTP on \S+:(\d+)", first)[1])
            smtps_port = int(re.search(r"SMTPS \(implicit TLS\) on \S+:(\d+)", second)[1])
            context = ssl.create_default_context(cafile=ca)
            scenarios = {
                "plaintext": dict(port=smtp_port, start_tls=False, use_tls=False, login=False),
                "starttls": dict(port=smtp_port, start_tls=True, use_tls=False, login=False),
                "implicit_tls": dict(port=smtps_port, start_tls=False, use_tls=True, login=False),
                "starttls_auth_plain": dict(port=smtp_port, start_tls=True, use_tls=False,
                                            login=True),
            }
            throughput: dict = {}
            for label, per_connection, total in (("1_per_connection", 1, total_new),
                                                 ("100_per_connection", 100, total_reused)):
                rates = {name: asyncio.run(run_clients(total=total, per_connection=per_connection,
                                                       context=context, **kw))
                         for name, kw in scenarios.items()}
                throughput[label] = {
                    "msg_per_s": {k: round(v, 1) for k, v in rates.items()},
                    "ratio_vs_plaintext": {k: round(v / rates["plaintext"], 3)
                                           for k, v in rates.items()},
                }
            result["throughput"] = throughput
        finally:
            server.terminate()
            server.wait(timeout=30)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
