"""The probe's commands: ``mailsink probe``, ``mailsink send`` and ``mailsink sendmail``.

``register(subparsers)`` adds them to the ``mailsink`` command (sink/cli.py calls
it); ``main(argv)`` runs them on their own (``python -m probe``). Errors are one
line on stderr; the exit code says what kind of failure it was (see EXIT_*).
Passwords never come from a flag value: an environment variable, a file or a prompt.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
from datetime import datetime
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Callable

from . import client
from .auth import PREFERENCE, Auth
from .compose import Attachment, Message, RawMessage, header_recipients, parse_header, strip_bcc
from .errors import ProbeError, UsageError
from .mx import DNSConfig
from .results import ConnectResult, SendResult
from .session import Timeouts

EXIT_OK = 0
EXIT_ERROR = 1        # the server broke the protocol, or something unexpected
EXIT_USAGE = 2        # bad arguments (argparse uses 2 too)
EXIT_CONNECT = 3      # DNS, refused, closed, bad greeting, any timeout
EXIT_TLS = 4          # handshake failed, certificate did not verify, STARTTLS refused
EXIT_AUTH = 5         # AUTH failed, not offered, or refused in plaintext
EXIT_REJECTED = 6     # MAIL, every RCPT, DATA or the message itself refused
EXIT_PARTIAL = 7      # delivered, but some recipients were refused

EXIT_BY_KIND = {"usage": EXIT_USAGE, "connection": EXIT_CONNECT, "timeout": EXIT_CONNECT,
                "tls": EXIT_TLS, "auth": EXIT_AUTH, "rejected": EXIT_REJECTED,
                "protocol": EXIT_ERROR}

# sendmail(8) exit codes (sysexits.h), which cron and PHP understand.
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 64, 65, 67, 69
EX_SOFTWARE, EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM = 70, 75, 76, 77
SENDMAIL_EXIT_BY_KIND = {"usage": EX_USAGE, "connection": EX_TEMPFAIL, "timeout": EX_TEMPFAIL,
                         "tls": EX_PROTOCOL, "auth": EX_NOPERM, "rejected": EX_UNAVAILABLE,
                         "protocol": EX_PROTOCOL}
SENDMAIL_DEFAULT_ADDR = "127.0.0.1:1025"
SENDMAIL_ADDR_ENV = "MAILSINK_SENDMAIL_SMTP_ADDR"
SENDMAIL_MAILHOG_ENV = "MH_SENDMAIL_SMTP_ADDR"  # MailHog's mhsendmail reads this one


# -- shared options -----------------------------------------------------------------
def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--tls", choices=client.TLS_MODES, default="auto",
                       help="none, starttls (required), implicit (SMTPS), or auto: implicit on "
                            "465, STARTTLS when offered (default auto)")
    group.add_argument("--insecure", action="store_true",
                       help="do not verify the server certificate")
    group.add_argument("--ca-file", metavar="PEM", help="verify against these CAs instead")
    group.add_argument("--ehlo", metavar="NAME", help="EHLO name (default: this host's FQDN)")
    group.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                       help="seconds allowed for each stage (default 30)")
    auth = parser.add_argument_group("authentication")
    auth.add_argument("--auth-user", metavar="USER", help="authenticate as USER")
    auth.add_argument("--auth-mech", metavar="MECH", type=str.upper,
                      choices=PREFERENCE, help="PLAIN, LOGIN, CRAM-MD5 or XOAUTH2 (default: "
                      "the first of these the server offers)")
    auth.add_argument("--auth-password-env", metavar="VAR",
                      help="read the password (XOAUTH2: the token) from this env variable")
    auth.add_argument("--auth-password-file", metavar="PATH",
                      help="read the password from the first line of this file")
    auth.add_argument("--allow-plaintext-auth", action="store_true",
                      help="allow AUTH without TLS to a host that is not loopback")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the result as JSON")
    out.add_argument("--transcript", action="store_true",
                     help="print the SMTP conversation (credentials redacted)")


def _password(args: argparse.Namespace) -> str:
    if args.auth_password_env:
        value = os.environ.get(args.auth_password_env)
        if value is None:
            raise UsageError(f"environment variable {args.auth_password_env} is not set")
        return value
    if args.auth_password_file:
        try:
            text = Path(args.auth_password_file).read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot read {args.auth_password_file}: {error.strerror}") from None
        return text.splitlines()[0] if text else ""
    if not sys.stdin.isatty():
        raise UsageError("no password: give --auth-password-env or --auth-password-file "
                         "(there is no terminal to prompt on)")
    return getpass.getpass(f"Password for {args.auth_user}: ")


def _auth(args: argparse.Namespace) -> Auth | None:
    if not args.auth_user:
        if args.auth_mech or args.auth_password_env or args.auth_password_file:
            raise UsageError("--auth-mech and the password options need --auth-user")
        return None
    return Auth(args.auth_user, _password(args), args.auth_mech)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return dict(tls=args.tls, insecure=args.insecure, ca_file=args.ca_file, ehlo=args.ehlo,
                timeout=Timeouts.of(args.timeout), auth=_auth(args),
                allow_plaintext_auth=args.allow_plaintext_auth)


def _fail(prog: str, error: ProbeError, args: argparse.Namespace) -> int:
    if getattr(args, "json", False):
        data = error.to_dict()
        if error.result is not None:
            data["result"] = error.result.to_dict()
        elif error.transcript is not None:
            data["transcript"] = error.transcript.lines()
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif getattr(args, "transcript", False) and error.transcript is not None:
        print(error.transcript)
    print(f"{prog}: {error.message}", file=sys.stderr)
    return EXIT_BY_KIND.get(error.kind, EXIT_ERROR)


def _run(prog: str, work: Callable[[], int], args: argparse.Namespace) -> int:
    try:
        return work()
    except ProbeError as error:
        return _fail(prog, error, args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


# -- mailsink probe ------------------------------------------------------------------
def format_connect(result: ConnectResult) -> str:
    """The human-readable report of ``mailsink probe``."""
    out = [f"Server       {result.host}:{result.port} ({result.address})",
           f"Greeting     {result.greeting.raw.splitlines()[0] if result.greeting.lines else ''}"]
    for extra in result.greeting.raw.splitlines()[1:]:
        out.append(f"             {extra}")
    hello = "HELO (EHLO refused)" if result.helo_fallback else "EHLO"
    out.append(f"{hello:<13}{result.capabilities.domain}")
    for name, params in result.capabilities.extensions.items():
        out.append(f"  {name:<20} {' '.join(params)}".rstrip())
    tls = result.tls
    if tls is None:
        out.append("TLS          none")
    else:
        out.append(f"TLS          {tls.mode}: {tls.protocol} {tls.cipher} ({tls.bits} bits)")
        if tls.certificate:
            cert = tls.certificate
            out += [f"  subject            {cert.subject}", f"  issuer             {cert.issuer}",
                    f"  SANs               {', '.join(cert.sans) or '-'}",
                    f"  not after          {cert.not_after}"]
        verified = "yes" if tls.verified else (
            f"NO: {tls.verify_error}" if tls.verify_error else "not checked (--insecure)")
        out.append(f"  verified           {verified}")
    if result.authenticated is not None:
        out.append(f"AUTH         {result.auth_mechanism}: "
                   f"{'ok' if result.authenticated else 'failed'}")
    out.append(f"RTT          {result.rtt_ms:.1f} ms (TCP connect), "
               f"{result.round_trips} round trips")
    out.append("Timings (ms) " + ", ".join(f"{k} {v:.1f}"
                                           for k, v in result.timings.to_dict().items()))
    return "\n".join(out)


def _print_result(result: Any, args: argparse.Namespace, report: Any) -> None:
    """JSON with --json; else the transcript (with --transcript) and the readable report."""
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    if args.transcript:
        print(result.transcript)
        print()
    print(report(result))


def run_probe(args: argparse.Namespace) -> int:
    from . import connect

    def work() -> int:
        host, port = client.split_server(args.host, args.port)
        result = connect(host, port, **_common(args))
        _print_result(result, args, format_connect)
        if result.tls is not None and result.tls.verify_error:
            print(f"mailsink probe: TLS certificate verification failed: "
                  f"{result.tls.verify_error}", file=sys.stderr)
            return EXIT_TLS
        return EXIT_OK
    return _run("mailsink probe", work, args)


# -- mailsink send -----------------------------------------------------------------
def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _default_sender() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _split_list(values: list[str] | None) -> list[str]:
    """Repeatable flags that also take comma lists: --to a@x --to b@y,c@z."""
    out: list[str] = []
    for value in values or []:
        out += [part.strip() for part in value.split(",") if part.strip()]
    return out


def build_message(args: argparse.Namespace) -> Message | RawMessage:
    sender = args.sender or _default_sender()
    to, cc, bcc = _split_list(args.to), _split_list(args.cc), _split_list(args.bcc)
    if args.data is not None:
        if args.body is not None or args.body_file or args.html_file or args.attach or \
                args.header or args.subject is not None:
            raise UsageError("--data sends a message as it is: it does not mix with --body, "
                             "--html-file, --attach, --header or --subject")
        return RawMessage(_read(args.data), sender, [*to, *cc, *bcc])
    if args.body is not None and args.body_file:
        raise UsageError("give --body or --body-file, not both")
    text = args.body
    if args.body_file:
        text = _read(args.body_file).decode("utf-8", "replace")
    html = _read(args.html_file).decode("utf-8", "replace") if args.html_file else None
    if text is None and html is None:
        text = "This is a test mailing\n"
    subject = args.subject if args.subject is not None else \
        f"test {format_datetime(datetime.now().astimezone())}"
    attachments = []
    for path in args.attach or []:
        try:
            attachments.append(Attachment.from_path(path))
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from None
    return Message(sender=sender, to=to, cc=cc, bcc=bcc, subject=subject, text=text, html=html,
                   attachments=attachments, headers=[parse_header(h) for h in args.header or []],
                   reply_to=_split_list(args.reply_to))


def format_send(result: SendResult) -> str:
    out = []
    if result.stopped_after:
        out.append(f"Stopped after {result.stopped_after} as asked (--quit-after); "
                   "no message was sent")
    elif result.delivered:
        queue = f", queue id {result.queue_id}" if result.queue_id else ""
        out.append(f"Delivered to {result.host}:{result.port} ({result.address}) for "
                   f"{len(result.accepted)} recipient(s){queue}: {result.final_reply}")
    for rcpt in result.recipients:
        if rcpt.reply is not None:
            out.append(f"  {'accepted' if rcpt.accepted else 'REJECTED'} "
                       f"{rcpt.address}: {rcpt.reply}")
    extras = []
    if result.tls:
        extras.append(f"TLS {result.tls.protocol} ({result.tls.mode})")
    if result.authenticated:
        extras.append(f"AUTH {result.auth_mechanism}")
    extras.append("pipelined" if result.pipelined else "not pipelined")
    extras.append(f"{result.round_trips} round trips")
    total = result.timings.get("total")
    if total is not None:
        extras.append(f"{total:.1f} ms")
    out.append("  " + ", ".join(extras))
    return "\n".join(out)


def run_send(args: argparse.Namespace) -> int:
    from . import send

    def work() -> int:
        message = build_message(args)
        dns = None
        if args.dns_server:
            host, port = client.split_server(args.dns_server, 53)
            dns = DNSConfig(host, port or 53)
        result = send(message, args.server, args.port, pipelining=args.pipelining,
                      quit_after=args.quit_after, dns=dns, **_common(args))
        _print_result(result, args, format_send)
        if result.rejected:
            print(f"mailsink send: {len(result.rejected)} recipient(s) rejected",
                  file=sys.stderr)
            return EXIT_PARTIAL
        return EXIT_OK
    return _run("mailsink send", work, args)


# -- mailsink sendmail ----------------------------------------------------------------
SENDMAIL_USAGE = """usage: mailsink sendmail [-t] [-i|-oi] [-f SENDER] [-F NAME] [-v]
                         [--smtp-addr HOST:PORT] [--] [RECIPIENT ...] < message

A sendmail(8) replacement that delivers the message on stdin to an SMTP server
(default {default}, the local sink; env {env}, or MailHog's {mh}). -t adds the To/Cc/Bcc
addresses and removes Bcc; -i/-oi: a line with a single dot does not end the message.
Other sendmail options (-odi, -oem, -bm, -N ...) are accepted and ignored.
""".format(default=SENDMAIL_DEFAULT_ADDR, env=SENDMAIL_ADDR_ENV, mh=SENDMAIL_MAILHOG_ENV)

# sendmail options that take a value, and the ones that are accepted and ignored.
_SENDMAIL_WITH_VALUE = {"-f", "-r", "-F", "-N", "-R", "-V", "-X", "-B", "-L", "-h", "-O"}


def parse_sendmail_args(argv: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {"t": False, "i": False, "sender": None, "name": None,
                            "verbose": False, "smtp_addr": None, "recipients": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            opts["recipients"] += argv[i:]
            break
        if arg in ("--help", "-help"):
            opts["help"] = True
            continue
        if arg == "--smtp-addr" or arg.startswith("--smtp-addr="):
            if "=" in arg:
                opts["smtp_addr"] = arg.split("=", 1)[1]
            elif i < len(argv):
                opts["smtp_addr"], i = argv[i], i + 1
            else:
                raise UsageError("--smtp-addr needs HOST:PORT")
            continue
        if not arg.startswith("-") or arg == "-":
            opts["recipients"].append(arg)
            continue
        if arg == "-t":
            opts["t"] = True
        elif arg in ("-i", "-oi"):
            opts["i"] = True
        elif arg == "-v":
            opts["verbose"] = True
        elif arg[:2] in _SENDMAIL_WITH_VALUE:
            value = arg[2:]
            if not value:
                if i >= len(argv):
                    raise UsageError(f"{arg} needs a value")
                value, i = argv[i], i + 1
            if arg[:2] in ("-f", "-r"):
                opts["sender"] = value
            elif arg[:2] == "-F":
                opts["name"] = value
        elif arg.startswith("-o") or arg in ("-bm", "-em", "-ep", "-eq", "-U", "-G", "-n"):
            pass   # delivery modes and error modes: meaningless here
        elif arg.startswith("-b"):
            raise UsageError(f"mode {arg} is not supported (only -bm, sending a message)")
        else:
            raise UsageError(f"unknown option {arg}")
    return opts


def _read_sendmail_input(stream: Any, dot_ends: bool) -> bytes:
    if not dot_ends:
        return stream.read()
    lines = []
    for line in stream:
        if line.rstrip(b"\r\n") == b".":
            break
        lines.append(line)
    return b"".join(lines)


def run_sendmail(args: argparse.Namespace) -> int:
    from . import send
    prog = "mailsink sendmail"
    try:
        opts = parse_sendmail_args(args.sendmail_args)
    except UsageError as error:
        print(f"{prog}: {error.message}", file=sys.stderr)
        return EX_USAGE
    if opts.get("help"):
        print(SENDMAIL_USAGE)
        return 0
    addr = (opts["smtp_addr"] or os.environ.get(SENDMAIL_ADDR_ENV)
            or os.environ.get(SENDMAIL_MAILHOG_ENV) or SENDMAIL_DEFAULT_ADDR)
    data = _read_sendmail_input(sys.stdin.buffer, dot_ends=not opts["i"])
    recipients = list(opts["recipients"])
    if opts["t"]:
        recipients += header_recipients(data)
        data = strip_bcc(data)
    if not recipients:
        print(f"{prog}: no recipients (give them as arguments, or use -t)", file=sys.stderr)
        return EX_USAGE
    sender = opts["sender"]
    if sender is None:
        from email.parser import BytesHeaderParser
        from_header = BytesHeaderParser().parsebytes(data).get("From")
        sender = parseaddr(str(from_header))[1] if from_header else _default_sender()
    try:
        host, port = client.split_server(addr, 25)
        result = send(RawMessage(data, sender, recipients), host, port, tls="none", timeout=60)
    except ProbeError as error:
        if opts["verbose"] and error.transcript is not None:
            print(error.transcript, file=sys.stderr)
        print(f"{prog}: {error.message}", file=sys.stderr)
        return SENDMAIL_EXIT_BY_KIND.get(error.kind, EX_SOFTWARE)
    if opts["verbose"]:
        print(result.transcript, file=sys.stderr)
    if result.rejected:
        for rcpt in result.rejected:
            print(f"{prog}: {rcpt.address}: {rcpt.reply}", file=sys.stderr)
        return EX_NOUSER
    return 0


# -- wiring ---------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add ``probe``, ``send`` and ``sendmail`` to an argparse subparsers object."""
    probe = subparsers.add_parser(
        "probe", help="connect to an SMTP server and report greeting, capabilities, TLS, timings",
        description="Connect, read the greeting, EHLO, STARTTLS when offered, QUIT; report.")
    probe.add_argument("host", metavar="HOST[:PORT]", help="server (port 25, 465 for implicit)")
    probe.add_argument("--port", type=int, help="port, when not given with the host")
    _connection_options(probe)
    probe.set_defaults(run=run_probe)

    send = subparsers.add_parser(
        "send", help="send a test message and show what the server said",
        description="Compose and send a message (or send one as it is with --data), "
                    "like swaks. Without --server, the recipients' MX hosts are used.")
    send.add_argument("--server", metavar="HOST[:PORT]",
                      help="server to send to (default: the recipients' domain's MX hosts)")
    send.add_argument("--port", type=int, help="port (default 25; 465 with --tls implicit)")
    msg = send.add_argument_group("message")
    msg.add_argument("--from", dest="sender", metavar="ADDRESS",
                     help="envelope sender and From (default: you@this host)")
    msg.add_argument("--to", action="append", metavar="ADDRESS", help="recipient (repeatable)")
    msg.add_argument("--cc", action="append", metavar="ADDRESS", help="Cc recipient (repeatable)")
    msg.add_argument("--bcc", action="append", metavar="ADDRESS",
                     help="Bcc recipient: envelope only (repeatable)")
    msg.add_argument("--reply-to", action="append", metavar="ADDRESS", help="Reply-To")
    msg.add_argument("--subject", help="Subject (default: 'test <date>')")
    msg.add_argument("--body", help="text body")
    msg.add_argument("--body-file", metavar="FILE", help="text body from a file (- = stdin)")
    msg.add_argument("--html-file", metavar="FILE", help="HTML body (an alternative to the text)")
    msg.add_argument("--attach", action="append", metavar="FILE", help="attach a file (repeatable)")
    msg.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                     help="add a header (repeatable)")
    msg.add_argument("--data", metavar="FILE",
                     help="send this raw message as it is (- = stdin) instead of composing one")
    proto = send.add_argument_group("protocol")
    proto.add_argument("--pipelining", choices=client.PIPELINING_MODES, default="auto",
                       help="auto: when the server offers it (default)")
    proto.add_argument("--quit-after", choices=client.QUIT_AFTER, metavar="STAGE",
                       help="stop after this stage: " + ", ".join(client.QUIT_AFTER))
    proto.add_argument("--dns-server", metavar="HOST[:PORT]",
                       help="DNS server for the MX lookup (default: the system's)")
    _connection_options(send)
    send.set_defaults(run=run_send)

    # sendmail's options (-oi, -fuser...) are not argparse-shaped: take them raw.
    sendmail = subparsers.add_parser(
        "sendmail", prefix_chars="+", add_help=False,
        help="sendmail-compatible: deliver the message on stdin (for PHP, cron)",
        description=SENDMAIL_USAGE)
    sendmail.add_argument("sendmail_args", nargs="*")
    sendmail.set_defaults(run=run_sendmail)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailsink", description="SMTP probe and send client.")
    register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
