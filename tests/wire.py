"""A raw SMTP line client for tests that need exact bytes on the wire."""
from __future__ import annotations

import socket
import ssl


class Wire:
    """Send raw bytes, read whole (multi-line) replies; ``tls=`` for implicit TLS."""

    def __init__(self, host: str, port: int, timeout: float = 10.0,
                 tls: ssl.SSLContext | None = None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def starttls(self, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> str:
        """Send STARTTLS; on 220 do the handshake (errors propagate). Returns the reply."""
        reply = self.cmd("STARTTLS")
        if reply.startswith("220"):
            self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
            self.file = self.sock.makefile("rb")
        return reply

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed: " + " | ".join(lines))
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> str:
        data = line.encode() if isinstance(line, str) else line
        self.send(data + b"\r\n")
        return self.reply()

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (read returns EOF)."""
        return self.file.read(1) == b""

    def close(self) -> None:
        """Really close: the socket's fd stays open while the file made from it is."""
        for closeable in (self.file, self.sock):
            try:
                closeable.close()
            except OSError:
                pass

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
