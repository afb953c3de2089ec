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


def _chance(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be a chance between 0 and 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _web_path(text: str) -> str:
    # MailHog's normalisation: "mail", "/mail/" and "mail/" all mean "/mail".
    stripped = text.strip().strip("/")
    if any(c in stripped for c in "?#\\ %"):
        raise ValueError("must be a URL path like /mail")
    return "/" + stripped if stripped else ""


def _faults(text: str) -> str:
    from .smtp.chaos import FaultError, parse_faults  # the rule syntax lives with the rules
    try:
        parse_faults(text)
    except FaultError as error:
        raise ValueError(str(error)) from None
    return text
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
    Option("mailhog", _bool, "MailHog preset: listen on 0.0.0.0 and accept any AUTH on plain "
           "text (implied by any MH_* variable)", flag_only_bool=True),
    Option("web_path", _web_path, "serve the UI and every API under this path, e.g. /mail"),
    Option("cors_origin", str, "Access-Control-Allow-Origin for the MailHog API (/api/v1, /api/v2)"),
    Option("outgoing_smtp", str, "JSON file of saved release servers (MailHog's format)"),
    Option("invite_jim", _bool, "turn on Jim, MailHog's chaos monkey", flag_only_bool=True),
    Option("jim_accept", _chance, "Jim: chance a connection is accepted"),
    Option("jim_disconnect", _chance, "Jim: chance of a disconnect before each command"),
    Option("jim_linkspeed_affect", _chance, "Jim: chance a session is throttled"),
    Option("jim_linkspeed_min", _non_negative_float, "Jim: slowest throttled speed, bytes/s"),
    Option("jim_linkspeed_max", _non_negative_float, "Jim: fastest throttled speed, bytes/s"),
    Option("jim_reject_sender", _chance, "Jim: chance MAIL FROM is refused"),
    Option("jim_reject_recipient", _chance, "Jim: chance RCPT TO is refused"),
    Option("jim_reject_auth", _chance, "Jim: chance AUTH is refused"),
    Option("chaos_seed", int, "seed for Jim's random draws, so a run can be repeated"),
    Option("faults", _faults, "deterministic SMTP faults, rules separated by ';' (see README)"),
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
    Option("allowed_hosts", str, "extra Host names the HTTP side answers to (comma list, *.wildcards; * = any): a DNS rebinding guard"),
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
    mailhog: bool = False
    web_path: str = ""
    cors_origin: str = ""
    outgoing_smtp: str | None = None
    invite_jim: bool = False
    jim_accept: float = 0.99
    jim_disconnect: float = 0.005
    jim_linkspeed_affect: float = 0.1
    jim_linkspeed_min: float = 1024.0
    jim_linkspeed_max: float = 10240.0
    jim_reject_sender: float = 0.05
    jim_reject_recipient: float = 0.05
    jim_reject_auth: float = 0.05
    chaos_seed: int | None = None
    faults: str = ""
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
    allowed_hosts: str = ""
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
        # MailHog's MH_* names win over MAILSINK_* variables (a compose file written for
        # MailHog must override our image's built-in MAILSINK_* defaults), not over flags.
        values.update(mailhog_env_settings(environ))
        for key, value in (args or {}).items():
            if value is not None and any(o.name == key for o in OPTIONS):
                values[key] = value
        if values.get("mailhog") or uses_mailhog_env(environ):
            values["mailhog"] = True
            for key, value in MAILHOG_PRESET.items():
                if key in cls.__dataclass_fields__:  # AUTH settings come with the TLS work
                    values.setdefault(key, value)
        return cls(**values)


# -- MailHog's configuration names ----------------------------------------------

# What the MailHog preset changes, unless a flag or variable says otherwise.
# Apps set up for MailHog send AUTH PLAIN with made-up credentials on the plain port.
MAILHOG_PRESET: dict[str, Any] = {"listen": "0.0.0.0", "auth": "any",
                                  "auth_allow_insecure": True}

# MH_* variables of MailHog's sendmail shim, not of the server: they imply nothing.
_MAILHOG_CLIENT_ENV = ("MH_SENDMAIL_SMTP_ADDR",)


def uses_mailhog_env(environ: Mapping[str, str]) -> bool:
    """Is any of MailHog's server variables set (which implies the MailHog preset)?"""
    return any(name.startswith("MH_") and name not in _MAILHOG_CLIENT_ENV for name in environ)


def _bind_addr(name: str, text: str) -> tuple[str, int]:
    """MailHog's "host:port" (":1025" means every interface)."""
    host, colon, port = text.strip().rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        if not colon:
            raise ValueError
        return host, _port(port)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: wants host:port, e.g. 0.0.0.0:1025") from None


def _go_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("t", "f"):  # Go's strconv.ParseBool takes these too
        return lowered == "t"
    try:
        return _bool(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: must be true or false") from None


def mailhog_env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Our settings from MailHog's MH_* variables; SettingsError where we have no equivalent."""
    env = {name: value for name, value in environ.items() if name.startswith("MH_")}
    values: dict[str, Any] = {}
    hosts: dict[str, str] = {}
    if "MH_SMTP_BIND_ADDR" in env:
        hosts["MH_SMTP_BIND_ADDR"], values["smtp_port"] = _bind_addr(
            "MH_SMTP_BIND_ADDR", env["MH_SMTP_BIND_ADDR"])
    http: dict[str, tuple[str, int]] = {}
    for name in ("MH_API_BIND_ADDR", "MH_UI_BIND_ADDR"):
        if name in env:
            http[name] = _bind_addr(name, env[name])
    if len(set(http.values())) > 1:
        raise SettingsError("MH_API_BIND_ADDR and MH_UI_BIND_ADDR differ: mailsink serves the "
                            "UI and the API on one address; set both the same")
    for name, (host, port) in http.items():
        hosts[name] = host
        values["http_port"] = port
    if len(set(hosts.values())) > 1:
        raise SettingsError(f"{' and '.join(sorted(hosts))} name different hosts: mailsink "
                            "binds SMTP and HTTP to one address (--listen); use the same host")
    if hosts:
        values["listen"] = next(iter(hosts.values()))
    if "MH_HOSTNAME" in env:
        values["hostname"] = env["MH_HOSTNAME"]
    storage = env.get("MH_STORAGE", "memory").strip().lower()
    if storage == "mongodb":
        raise SettingsError("MH_STORAGE=mongodb: mailsink has no MongoDB storage; "
                            "use MH_STORAGE=maildir with MH_MAILDIR_PATH, or --db FILE, "
                            "to keep messages in an SQLite file")
    if storage == "maildir":
        if env.get("MH_MAILDIR_PATH"):
            # Not the maildir format: the same directory holds our SQLite file.
            values["db"] = os.path.join(env["MH_MAILDIR_PATH"], "mailsink.sqlite3")
    elif storage != "memory":
        raise SettingsError(f"MH_STORAGE={storage!r}: must be memory, maildir or mongodb")
    if "MH_CORS_ORIGIN" in env:
        values["cors_origin"] = env["MH_CORS_ORIGIN"]
    if env.get("MH_OUTGOING_SMTP"):
        values["outgoing_smtp"] = env["MH_OUTGOING_SMTP"]
    if "MH_UI_WEB_PATH" in env:
        values["web_path"] = _parse(_option("web_path"), env["MH_UI_WEB_PATH"], "MH_UI_WEB_PATH")
    if env.get("MH_AUTH_FILE"):
        # The same file format (user:bcrypt-hash) as the UI's basic auth.
        if not any(option.name == "ui_auth_file" for option in OPTIONS):
            raise SettingsError("MH_AUTH_FILE: this build has no HTTP basic auth")
        values["ui_auth_file"] = _parse(_option("ui_auth_file"), env["MH_AUTH_FILE"],
                                        "MH_AUTH_FILE")
    if "MH_INVITE_JIM" in env:
        values["invite_jim"] = _go_bool("MH_INVITE_JIM", env["MH_INVITE_JIM"])
    return values


def _option(name: str) -> Option:
    return next(option for option in OPTIONS if option.name == name)


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
