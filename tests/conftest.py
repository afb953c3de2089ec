"""Shared fixtures: a real sink on free loopback ports, and a guard against skips in CI."""
from __future__ import annotations

import os
import shutil

import pytest

from sink import Sink

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The path of an external tool; skip without it locally, fail in CI (nothing skips there)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (run .ci/install.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds (no fixed sleeps)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def sink():
    """A fresh sink for one test: SMTP and HTTP on free loopback ports."""
    with Sink() as running:
        yield running


def pytest_runtest_logreport(report):
    # In CI a skipped test is a failure: every tool the tests need is installed there.
    if IN_CI and report.skipped and report.when in ("setup", "call"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI: {report.longrepr}"
