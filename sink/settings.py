"""Settings: built once (CLI flags > MAILSINK_* env vars > defaults) and passed down.

Every option is declared once in ``OPTIONS``; the CLI parser, the environment
reader and the README table all come from that list, so a new option is one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message says which and why."""


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _optional_port(text: str) -> int | None:
    """A port, or None for "off" (an empty value or the word off)."""
    if text.strip().lower() in ("", "off", "none"):
        return None
    return _port(text)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _optional_path(text: str) -> str | None:
    """A path, or None for an empty value (``MAILSINK_DB=`` in a compose file means unset)."""
    return text if text.strip() else None


def _readable_file(text: str) -> str | None:
    if not text.strip():
        return None
    if not os.path.isfile(text) or not os.access(text, os.R_OK):
        raise ValueError("is not a readable file")
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError("must be one of " + ", ".join(allowed))
        return text
    return parse


@dataclass(frozen=True)
class Option:
    """One setting: its field name, CLI flag, parser and help text."""

    name: str
    parse: Callable[[str], Any]
    help: str
    flag_only_bool: bool = False  # a switch like --require-tls (no value on the CLI)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "MAILSINK_" + self.name.upper()


OPTIONS: list[Option] = [
    Option("listen", str, "address both listeners bind to (0.0.0.0 for containers)"),
    Option("smtp_port", _port, "SMTP port (0 = a free port)"),
    Option("http_port", _port, "HTTP port for the UI and API (0 = a free port)"),
    Option("hostname", str, "name in the SMTP greeting and EHLO reply"),
    Option("db", _optional_path, "SQLite file to persist messages in (default: a temporary file removed at exit)"),
    Option("max_messages", _non_negative_int, "keep only the newest N messages (0 = unlimited)"),
    Option("max_size", _positive_int, "largest message accepted, in bytes (advertised as SIZE)"),
    Option("max_recipients", _positive_int, "recipients allowed per message (452 past it)"),
    Option("max_connections", _positive_int, "concurrent SMTP connections (421 past it)"),
    Option("idle_timeout", _positive_float, "seconds an SMTP client may stay silent before 421"),
    Option("log_level", _choice("debug", "info", "warning", "error"), "log verbosity"),
    Option("smtps_port", _optional_port, "implicit-TLS SMTP port, like 465 (off by default; 0 = a free port)"),
    Option("tls_cert", _optional_path, "PEM certificate (chain) file to use instead of a generated one"),
    Option("tls_key", _optional_path, "PEM private key file for --tls-cert (omit if the cert file holds it)"),
    Option("ca_out", _optional_path, "write the generated CA certificate (PEM) to this path at start-up"),
    Option("no_starttls", _bool, "do not offer STARTTLS on the SMTP port", flag_only_bool=True),
    Option("require_tls", _bool, "refuse MAIL (530 5.7.0) until STARTTLS", flag_only_bool=True),
    Option("auth", _choice("off", "any", "file"), "SMTP AUTH: off, any (accept any credentials) or file"),
    Option("auth_file", _optional_path, "credentials file for --auth file: user:password lines (plain or bcrypt)"),
    Option("require_auth", _bool, "refuse MAIL (530 5.7.0) until AUTH", flag_only_bool=True),
    Option("auth_allow_insecure", _bool, "offer AUTH on plaintext connections too", flag_only_bool=True),
    Option("probe_api", _choice("on", "off", "auto"), "/api/smtp* probe endpoints (auto: on if --listen is loopback)"),
    Option("probe_allow_hosts", str, "hosts the probe endpoints may reach: names, *.wildcards, IPs, CIDRs"),
    Option("ui_auth_file", _readable_file, "htpasswd file (bcrypt, htpasswd -B): HTTP basic auth for the UI and APIs"),
]


@dataclass
class Settings:
    """All run-time configuration of a sink. Defaults are the documented defaults."""

    listen: str = "127.0.0.1"
    smtp_port: int = 1025
    http_port: int = 8025
    hostname: str = "mailsink.local"
    db: str | None = None
    max_messages: int = 50_000
    max_size: int = 50 * 1024 * 1024
    max_recipients: int = 1000
    max_connections: int = 200
    idle_timeout: float = 300.0
    log_level: str = "info"
    smtps_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    ca_out: str | None = None
    no_starttls: bool = False
    require_tls: bool = False
    auth: str = "off"
    auth_file: str | None = None
    require_auth: bool = False
    auth_allow_insecure: bool = False
    probe_api: str = "auto"
    probe_allow_hosts: str = ""
    ui_auth_file: str | None = None

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some fields changed (for tests and the embeddable Sink)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_sources(cls, args: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> "Settings":
        """Merge parsed CLI ``args`` (None = not given) over env vars over defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for option in OPTIONS:
            if option.env in environ:
                values[option.name] = _parse(option, environ[option.env], option.env)
        for key, value in (args or {}).items():
            if value is not None and any(o.name == key for o in OPTIONS):
                values[key] = value
        return cls(**values)


def _parse(option: Option, text: str, source: str) -> Any:
    try:
        return option.parse(text)
    except ValueError as error:
        raise SettingsError(f"{source}={text!r}: {error}") from None


def client_host(listen: str) -> str:
    """Where a client on this machine connects to reach listeners bound to ``listen``."""
    if listen in ("0.0.0.0", ""):
        return "127.0.0.1"
    return "::1" if listen == "::" else listen


def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add every option (or those named in ``only``) as a CLI flag; unset flags stay None."""
    defaults = Settings()
    for option in OPTIONS:
        if only is not None and option.name not in only:
            continue
        default = getattr(defaults, option.name, None)
        help_text = f"{option.help} (env {option.env}; default {default!r})"
        if option.flag_only_bool:
            parser.add_argument(option.flag, dest=option.name, action="store_const",
                                const=True, default=None, help=help_text)
        else:
            parser.add_argument(option.flag, dest=option.name, default=None,
                                type=_argparse_type(option), help=help_text,
                                metavar=option.name.upper())


def _argparse_type(option: Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as error:
            # argparse turns ArgumentTypeError into "argument --x: <message>"
            raise argparse.ArgumentTypeError(f"{text!r} {error}") from None
    return parse
