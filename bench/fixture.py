"""What a test suite pays for mailsink: start-up of ``Sink()`` and the ``mailsink`` fixture.

Measured against a bare aiosmtpd ``Controller`` (its own thread and loop, a handler
that discards) in the same run:

- ``first_ready``: a fresh interpreter until the first server accepts (imports
  included), median of a few runs, each in its own process.
- ``warm``: start and stop of one more server in a process that has started one.
- ``per_test``: pytest over 200 generated tests, each asking for the server as a
  fixture; the overhead per test over 200 tests with no fixture. Variants: the
  ``mailsink`` fixture (one sink per session, cleared per test), a fresh
  ``with Sink()`` per test, and a fresh ``Controller`` per test. Plus, for scale,
  a test that sends one message and waits for it through the fixture.

Run: ``python3 bench/fixture.py`` from the repository root. Prints JSON.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TESTS = 200
COLD_RUNS = 5
WARM_RUNS = 20

CONTROLLER_SETUP = """
import socket
from aiosmtpd.controller import Controller

class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

def start_controller():
    # port=0 does not work with Controller (it connects to itself to check readiness).
    controller = Controller(Discard(), hostname="127.0.0.1", port=free_port(),
                            server_hostname="bench")
    controller.start()
    return controller
"""

COLD_SINK = """
import time
started = time.perf_counter()
from sink import Sink
sink = Sink().start()
print(time.perf_counter() - started)
sink.stop()
"""

COLD_CONTROLLER = """
import time
started = time.perf_counter()
{setup}
controller = start_controller()
print(time.perf_counter() - started)
controller.stop()
"""


def env() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILSINK_")}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                              environment.get("PYTHONPATH")]))
    environment["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins named below
    return environment


def cold(code: str) -> float:
    samples = []
    for _ in range(COLD_RUNS):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env(), check=True).stdout
        samples.append(float(out.strip().splitlines()[-1]))
    return statistics.median(samples)


def warm() -> dict[str, float]:
    from sink import Sink
    namespace: dict = {}
    exec(CONTROLLER_SETUP, namespace)
    Sink().start().stop()  # imports and first-time set-up out of the way
    namespace["start_controller"]().stop()
    results: dict[str, list[float]] = {k: [] for k in
                                       ("sink_start", "sink_stop", "controller_start",
                                        "controller_stop")}
    for _ in range(WARM_RUNS):
        began = time.perf_counter()
        sink = Sink().start()
        started = time.perf_counter()
        sink.stop()
        results["sink_start"].append(started - began)
        results["sink_stop"].append(time.perf_counter() - started)
        began = time.perf_counter()
        controller = namespace["start_controller"]()
        started = time.perf_counter()
        controller.stop()
        results["controller_start"].append(started - began)
        results["controller_stop"].append(time.perf_counter() - started)
    return {k + "_ms": round(statistics.median(v) * 1000, 2) for k, v in results.items()}


SUITES = {
    "no_fixture": """
        def test_nothing(n):
            pass
    """,
    "mailsink_fixture": """
        def test_nothing(n, mailsink):
            pass
    """,
    "fresh_sink_per_test": """
        from sink import Sink

        @pytest.fixture
        def fresh():
            with Sink() as sink:
                yield sink

        def test_nothing(n, fresh):
            pass
    """,
    "fresh_controller_per_test": CONTROLLER_SETUP + textwrap.dedent("""
        @pytest.fixture
        def fresh():
            controller = start_controller()
            yield controller
            controller.stop()

        def test_nothing(n, fresh):
            pass
    """),
    "mailsink_send_and_wait": """
        import smtplib

        def test_send(n, mailsink):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\\r\\n\\r\\nx\\r\\n")
            mailsink.wait_for(to="b@example.com")
    """,
}


def suite_seconds(directory: Path, name: str, body: str) -> float:
    path = directory / f"test_{name}.py"
    header = "import pytest\n\n@pytest.fixture(params=range(%d))\ndef n(request):\n" \
             "    return request.param\n" % TESTS
    path.write_text(header + textwrap.dedent(body))
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "sink.pytest_plugin", str(path)],
                            cwd=directory, env=env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if result.returncode != 0 or f"{TESTS} passed" not in result.stdout:
        raise SystemExit(f"{name} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def per_test() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mailsink-bench-") as tmp:
        directory = Path(tmp)
        (directory / "pytest.ini").write_text("[pytest]\n")
        seconds = {name: suite_seconds(directory, name, body) for name, body in SUITES.items()}
    base = seconds["no_fixture"]
    return {f"{name}_ms": round((value - base) / TESTS * 1000, 2)
            for name, value in seconds.items() if name != "no_fixture"} | {
        "no_fixture_suite_s": round(base, 2)}


def main() -> None:
    first_sink = cold(COLD_SINK)
    first_controller = cold(COLD_CONTROLLER.format(setup=CONTROLLER_SETUP))
    warm_numbers = warm()
    overhead = per_test()
    report = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "first_ready": {
            "sink_ms": round(first_sink * 1000, 1),
            "aiosmtpd_controller_ms": round(first_controller * 1000, 1),
            "ratio_sink_to_controller": round(first_sink / first_controller, 2),
        },
        "warm": warm_numbers | {
            "ratio_sink_to_controller_start": round(
                warm_numbers["sink_start_ms"] / warm_numbers["controller_start_ms"], 2)},
        "per_test_overhead": overhead | {
            "tests": TESTS,
            "ratio_mailsink_fixture_to_fresh_controller": round(
                overhead["mailsink_fixture_ms"] / overhead["fresh_controller_per_test_ms"], 3),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
