"""The ``mailsink`` command: ``serve`` runs the sink, ``healthcheck`` asks a running one
if it is ready; other commands are the probe's.

Errors are one line on stderr and a non-zero exit code, never a traceback.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import urllib.error
import urllib.request

from . import mailhog_cli
from . import settings as settings_module
from .app import SinkServer, StartupError
from .settings import Settings, SettingsError, client_host

EXIT_USAGE = 2
EXIT_STARTUP = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailsink", description="Local SMTP test sink and inspector, with an SMTP probe.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the SMTP sink and its web UI/API")
    settings_module.add_arguments(serve)
    serve.set_defaults(run=run_serve)
    mailhog_cli.register(commands)
    health = commands.add_parser(
        "healthcheck", help="exit 0 if the sink on this machine is ready, else 1 "
        "(for container health checks; reads the same MAILSINK_* variables as serve)")
    settings_module.add_arguments(health, only=("listen", "http_port"))
    health.add_argument("--timeout", type=float, default=3.0,
                        help="seconds to wait for the answer (default 3)")
    health.set_defaults(run=run_healthcheck)
    try:
        from probe import cli as probe_cli
    except ImportError:  # pragma: no cover - probe ships with sink
        probe_cli = None
    if probe_cli is not None and hasattr(probe_cli, "register"):
        probe_cli.register(commands)
    return parser


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly."""
    server = SinkServer(settings)
    await server.start()
    print(f"mailsink: SMTP on {settings.listen}:{server.smtp_port}, "
          f"HTTP on http://{settings.listen}:{server.http_port}/", flush=True)
    if server.smtps_port is not None:
        print(f"mailsink: SMTPS (implicit TLS) on {settings.listen}:{server.smtps_port}", flush=True)
    if settings.ca_out:
        print(f"mailsink: CA certificate written to {settings.ca_out}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("mailsink: shutting down", flush=True)
    await server.stop()


def run_serve(args: argparse.Namespace, environ: dict[str, str] | None = None) -> int:
    try:
        settings = Settings.from_sources(vars(args), environ)
    except SettingsError as error:
        print(f"mailsink: {error}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiosmtpd logs every command line at INFO; that is our debug level.
    logging.getLogger("mail.log").setLevel(
        logging.DEBUG if settings.log_level == "debug" else logging.WARNING)
    try:
        asyncio.run(serve(settings))
    except SettingsError as error:  # contradictory flags, an unreadable --auth-file...
        print(f"mailsink: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as error:
        print(f"mailsink: {error}", file=sys.stderr)
        return EXIT_STARTUP
    except KeyboardInterrupt:
        pass
    return 0


def run_healthcheck(args: argparse.Namespace) -> int:
    """GET /readyz with the stdlib only, so a slim container needs no curl."""
    try:
        settings = Settings.from_sources(vars(args))
    except SettingsError as error:
        print(f"mailsink: {error}", file=sys.stderr)
        return EXIT_USAGE
    host = client_host(settings.listen)
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.http_port}/readyz"
    # No proxies: a container's HTTP_PROXY must not route a loopback check elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=args.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        print(f"mailsink: not ready: {url}: {reason}", file=sys.stderr)
        return EXIT_STARTUP
    if status != 200:
        print(f"mailsink: not ready: {url} answered {status}", file=sys.stderr)
        return EXIT_STARTUP
    print(f"mailsink: ready ({url})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
