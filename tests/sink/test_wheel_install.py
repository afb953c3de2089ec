"""A non-editable install serves the UI: templates and static files are in the wheel.

Builds the wheel offline (no build isolation: setuptools and wheel come from the
test extra), installs it without dependencies into a fresh venv that sees the
already-installed ones, and runs ``mailsink serve`` from outside the source tree.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str, cwd: str) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_wheel_serves_pages_from_outside_the_source_tree(tmp_path):
    # Build from a copy: an in-tree build leaves build/ and *.egg-info behind, and an
    # egg-info next to the tests would register its entry points with pytest.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "bench", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--no-cache-dir", "-q", "-w", str(wheels), str(source), cwd=str(tmp_path))
    (wheel,) = wheels.glob("mailsink-*.whl")
    environment = tmp_path / "venv"
    venv.create(environment, system_site_packages=True, with_pip=False)
    python = str(environment / "bin" / "python")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q",
        str(wheel), cwd=str(tmp_path))
    where = run(python, "-c", "import sink, mailsink_templates; print(sink.__file__);"
                "print(mailsink_templates.__file__)", cwd=str(tmp_path))
    assert all(line.startswith(str(environment)) for line in where.split()), where

    server = subprocess.Popen(
        [str(environment / "bin" / "mailsink"), "serve", "--smtp-port", "0", "--http-port", "0"],
        cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    try:
        line = server.stdout.readline()
        match = re.search(r"HTTP on (http://\S+?)/?$", line.strip())
        assert match, line + server.stderr.read()
        base = match.group(1)
        inbox = httpx.get(base + "/")
        assert inbox.status_code == 200 and "No mail yet" in inbox.text
        assert httpx.get(base + "/static/app.js").status_code == 200
        assert httpx.get(base + "/api/v3/docs").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
