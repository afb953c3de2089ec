"""MailHog API benchmark: /api/v2 and /api/v1 against mailsink's /api/v3, same sink, same run.

Prints one JSON object. The sink is filled with N messages (a 2-part multipart of
about 2 KiB each; a quarter with an RFC 2047 subject), then each call is timed
(best of five). Baseline: ``GET /api/v3/messages?limit=50`` (summaries from the
index). Ratios say what the MailHog JSON (rebuilt from the raw bytes for every item)
and MailHog's substring search (a scan, decoded text included) cost on top.
Usage: python bench/mailhog_api.py [--messages N]
"""
from __future__ import annotations

import argparse
import json
import os
import smtplib
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from sink import Settings, Sink  # noqa: E402


def message(number: int) -> bytes:
    subject = "=?utf-8?q?Gr=C3=BC=C3=9Fe?= %d" % number if number % 4 == 0 else f"report {number}"
    text = ("Line of text for the benchmark, number %d.\r\n" % number) * 20
    return (f"From: bench@example.com\r\nTo: user{number}@example.org\r\nSubject: {subject}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
            f"--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n--b\r\n"
            f"Content-Type: text/html\r\n\r\n<p>{text}</p>\r\n--b--\r\n").encode()


def best(client: httpx.Client, path: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    with Sink(Settings(smtp_port=0, http_port=0, max_messages=0)) as sink:
        with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as smtp:
            for number in range(args.messages):
                smtp.sendmail("bench@example.com", [f"user{number}@example.org"], message(number))
        with httpx.Client(base_url=sink.http_url, timeout=120) as client:
            client.get("/api/v3/messages").raise_for_status()  # waits for the index
            baseline = best(client, "/api/v3/messages?limit=50")
            calls = {
                "v2_messages_50": "/api/v2/messages?limit=50",
                "v2_messages_250": "/api/v2/messages?limit=250",
                "v1_messages_1000": "/api/v1/messages",
                "v2_search_from": "/api/v2/search?kind=from&query=bench@",
                "v2_search_to_one": f"/api/v2/search?kind=to&query=user{args.messages // 2}@",
                "v2_search_containing_decoded": "/api/v2/search?kind=containing&query=gr%C3%BC%C3%9Fe",
                "v2_search_containing_none": "/api/v2/search?kind=containing&query=zzzz-nothing",
            }
            results = {name: best(client, path) for name, path in calls.items()}
    print(json.dumps({
        "messages": args.messages,
        "baseline_v3_messages_50_ms": round(baseline * 1000, 2),
        "ms": {name: round(value * 1000, 2) for name, value in results.items()},
        "ratio_to_baseline": {name: round(value / baseline, 1) for name, value in results.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
