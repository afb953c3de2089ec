"""Round trips for one send with 3 recipients: our probe with and without PIPELINING,
and smtplib as the baseline. Prints JSON.

The server counts: a tiny SMTP server on loopback answers every command it has
received in one write, so each write it makes is one round trip the client waited
for. It can also wait ``--delay-ms`` before each answer, to show what a round trip
costs on a real network.

    python3 bench/probe.py [--runs 20] [--delay-ms 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import smtplib
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import probe  # noqa: E402

RECIPIENTS = ["a@example.com", "b@example.com", "c@example.com"]
TARGET_PIPELINED = 5   # greeting, EHLO, MAIL+RCPT x3+DATA, message, QUIT


class CountingServer:
    """Speaks just enough SMTP; ``flights[-1]`` is the last session's number of writes."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.flights: list[int] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count, in_data, buffer = 0, False, b""

        async def reply(data: bytes) -> None:
            nonlocal count
            if self.delay:
                await asyncio.sleep(self.delay)
            count += 1
            writer.write(data)
            await writer.drain()

        await reply(b"220 bench ESMTP\r\n")
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            out = b""
            for line in lines:
                if in_data:
                    if line == b".":
                        in_data = False
                        out += b"250 2.0.0 queued as BENCH\r\n"
                    continue
                verb = line[:4].upper()
                if verb == b"EHLO":
                    out += b"250-bench\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250 8BITMIME\r\n"
                elif verb == b"DATA":
                    in_data = True
                    out += b"354 go ahead\r\n"
                elif verb == b"QUIT":
                    out += b"221 bye\r\n"
                else:
                    out += b"250 ok\r\n"
            if out:
                await reply(out)
        writer.close()
        self.flights.append(count)


def measure(server: CountingServer, send, runs: int) -> dict:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        send()
        times.append((time.perf_counter() - start) * 1000)
    deadline = time.monotonic() + 2
    while len(server.flights) < runs and time.monotonic() < deadline:
        time.sleep(0.005)
    flights = server.flights[:]
    server.flights.clear()
    return {"round_trips": statistics.mode(flights),
            "ms_median": round(statistics.median(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--delay-ms", type=float, default=2.0,
                        help="server wait before each answer (a simulated network)")
    args = parser.parse_args()
    server = CountingServer(args.delay_ms / 1000)
    address = f"127.0.0.1:{server.port}"
    message = probe.Message("bench@example.com", to=RECIPIENTS, subject="bench", text="x\n")
    raw = message.to_bytes()

    def ours(mode: str):
        return lambda: probe.send(message, address, tls="none", pipelining=mode,
                                  ehlo="bench.example")

    def with_smtplib():
        with smtplib.SMTP("127.0.0.1", server.port, local_hostname="bench.example") as client:
            client.sendmail("bench@example.com", RECIPIENTS, raw)

    results = {
        "smtplib": measure(server, with_smtplib, args.runs),
        "probe_pipelining": measure(server, ours("on"), args.runs),
        "probe_no_pipelining": measure(server, ours("off"), args.runs),
    }
    base = results["smtplib"]
    for name, result in results.items():
        result["round_trips_vs_smtplib"] = round(result["round_trips"] / base["round_trips"], 3)
        result["time_vs_smtplib"] = round(result["ms_median"] / base["ms_median"], 3)
    print(json.dumps({
        "benchmark": "probe round trips, one send to 3 recipients",
        "runs": args.runs, "server_delay_ms_per_reply": args.delay_ms,
        "target_round_trips_pipelined": TARGET_PIPELINED,
        "meets_target": results["probe_pipelining"]["round_trips"] <= TARGET_PIPELINED,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
