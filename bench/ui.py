"""Inspector latency with a big mailbox: p50/p95 over loopback HTTP, plus server RSS.

    python3 bench/ui.py --db bench/out/ui-100k.db [--messages 100000] [--requests 200]

Fills ``--db`` with ``--messages`` generated messages (kept between runs: a file
that already holds enough is reused), starts ``mailsink serve`` on it in a child
process, then times, one request at a time over a keep-alive connection:
the inbox page, the API list (first page and a keyset page deep in the list),
searches, and message views (each a different message, so parse-cache misses).
``/livez`` is the baseline measured in the same run: the ratios say what our
routes cost above the HTTP floor. Prints JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from email.message import EmailMessage

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sink.store import Envelope  # noqa: E402
from sink.store.sqlite import SQLiteStore  # noqa: E402

WORDS = ("invoice order shipping password reset welcome newsletter report weekly monthly "
         "account security alert receipt payment failed success update project meeting "
         "agenda budget review draft final contract offer discount coupon ticket support "
         "release notes build deploy staging production database backup restore server "
         "latency metrics dashboard holiday schedule team lunch survey feedback").split()
TARGETS = {"list_p50_ms": 30, "search_p50_ms": 100, "message_view_p50_ms": 50, "rss_mb": 250}


def make_message(rng: random.Random, n: int) -> tuple[bytes, Envelope]:
    sender = f"user{rng.randrange(200)}@example.com"
    to = [f"person{rng.randrange(500)}@example.org" for _ in range(rng.randint(1, 3))]
    bcc = f"hidden{rng.randrange(50)}@example.net"
    message = EmailMessage()
    message["From"] = f"User {sender.split('@')[0]} <{sender}>"
    message["To"] = ", ".join(to)
    message["Subject"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))) + f" #{n}"
    message["Message-ID"] = f"<bench-{n}@example.com>"
    body = "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(rng.randint(5, 25)))
    message.set_content(body)
    kind = rng.random()
    if kind < 0.3:
        message.add_alternative(f"<html><body><h1>Hello</h1><p>{body}</p></body></html>",
                                subtype="html")
    if kind > 0.9:
        message.add_attachment(rng.randbytes(3000), maintype="application", subtype="pdf",
                               filename=f"report-{n}.pdf")
    received = time.time() - rng.uniform(0, 60 * 86400)
    return bytes(message), Envelope(sender, [*to, bcc], helo="bench.local",
                                    peer="127.0.0.1:40000", received_at=received)


async def fill(path: str, wanted: int) -> int:
    store = SQLiteStore(path, max_messages=0)
    await store.open()
    have = store.counts()[0]
    rng = random.Random(have)
    for start in range(have, wanted, 500):
        batch = [make_message(rng, n) for n in range(start, min(start + 500, wanted))]
        await asyncio.gather(*(store.add(raw, env) for raw, env in batch))
    await store.catch_up()
    total = store.counts()[0]
    await store.close()
    return total


def start_server(path: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sink", "serve", "--db", path, "--max-messages", "0",
         "--smtp-port", "0", "--http-port", "0", "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"HTTP on (http://\S+?)/?$", line.strip())
    if not match:
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, match.group(1)


def rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def timed(client: httpx.Client, urls: list[str]) -> dict[str, float]:
    times = []
    for url in urls:
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code} {response.text[:200]}")
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2), "n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.path.join(ROOT, "bench", "out", "ui-100k.db"))
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.db)), exist_ok=True)
    began = time.perf_counter()
    stored = asyncio.run(fill(args.db, args.messages))
    fill_seconds = round(time.perf_counter() - began, 1)

    process, base = start_server(args.db)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            idle_rss = rss_mb(process.pid)[0]
            first = client.get("/api/v3/messages", params={"limit": 1000}).json()
            ids = [m["id"] for m in first["messages"]]
            deep = client.get("/api/v3/messages",
                              params={"limit": 1, "start": stored // 2}).json()["messages"][0]["id"]
            n = args.requests
            with_html = [i for i in ids[:300]
                         if client.get(f"/api/v3/messages/{i}").json()["html"] is not None][:50]
            searches = ["invoice", "from:user7@example.com", "to:hidden3@example.net",
                        "subject:password", '"security alert"', "has:attachment",
                        "meeting -budget is:unread", "after:2000-01-01 deploy"]
            timed(client, ["/livez"] * 20 + ["/"] * 5)  # warm-up
            results = {
                "baseline_livez": timed(client, ["/livez"] * n),
                "inbox_page": timed(client, ["/"] * n),
                "inbox_search_page": timed(client, [f"/?q={searches[i % len(searches)]}"
                                                    for i in range(n)]),
                "api_list": timed(client, ["/api/v3/messages?limit=50"] * n),
                "api_list_deep_keyset": timed(client, [f"/api/v3/messages?limit=50&before={deep}"] * n),
                "api_search": timed(client, [f"/api/v3/messages?limit=50&query={searches[i % len(searches)]}"
                                             for i in range(n)]),
                "message_view_cold": timed(client, [f"/message/{ids[i % len(ids)]}"
                                                    for i in range(min(n, len(ids)))]),
                "message_view_warm": timed(client, [f"/message/{ids[0]}"] * n),
                "message_html_frame": timed(client, [f"/message/{with_html[i % len(with_html)]}/html"
                                                     for i in range(n)]),
            }
            per_search = {q: timed(client, [f"/api/v3/messages?limit=50&query={q}"] * 20)["p50_ms"]
                          for q in searches}
            rss, peak = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    floor = results["baseline_livez"]["p50_ms"]
    report = {
        "messages": stored, "fill_seconds": fill_seconds,
        "db_mb": round(os.path.getsize(args.db) / 2**20, 1),
        "results": results,
        "search_p50_ms_by_query": per_search,
        "ratio_to_livez_p50": {k: round(v["p50_ms"] / floor, 1) for k, v in results.items()},
        "rss_mb": {"idle": round(idle_rss, 1), "after": round(rss, 1), "peak": round(peak, 1)},
        "targets": TARGETS,
        "meets_targets": {
            "list_p50_ms": max(results["inbox_page"]["p50_ms"],
                               results["api_list"]["p50_ms"]) <= TARGETS["list_p50_ms"],
            "search_p50_ms": max(results["api_search"]["p50_ms"],
                                 results["inbox_search_page"]["p50_ms"]) <= TARGETS["search_p50_ms"],
            "message_view_p50_ms": results["message_view_cold"]["p50_ms"]
            <= TARGETS["message_view_p50_ms"],
            "rss_mb": peak <= TARGETS["rss_mb"],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
