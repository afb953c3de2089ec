"""Large raw messages as files beside the database.

Why: committing a 25 MiB blob holds SQLite's single writer for a long time, and
every other message's 250 waits behind it. Large messages are written to a file
by a thread of their own first; the writer then commits only a row naming it.
Files are written to a temporary name and renamed, so a file that exists is
whole; one left without a row by a crash is removed at the next start.
"""
from __future__ import annotations

import os
import secrets
from typing import Iterable, Iterator

READ_CHUNK = 1024 * 1024


class MessageFiles:
    """The directory of large raw messages (``<db>.messages/``)."""

    def __init__(self, directory: str):
        self.directory = directory

    def open(self) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def write(self, raw: bytes | bytearray) -> str:
        """Write ``raw`` whole and return its file name."""
        name = secrets.token_hex(12) + ".eml"
        partial = self.path(name + ".part")
        with open(partial, "wb") as file:
            file.write(raw)
        os.replace(partial, self.path(name))
        return name

    def read(self, name: str, limit: int | None = None) -> bytes:
        with open(self.path(name), "rb") as file:
            return file.read() if limit is None else file.read(limit)

    def chunks(self, name: str, start: int, size: int = READ_CHUNK,
               overlap: int = 0) -> Iterator[bytes]:
        """``size``-byte chunks from ``start``, each with ``overlap`` bytes of the next."""
        with open(self.path(name), "rb") as file:
            position = start
            while True:
                file.seek(position)
                chunk = file.read(size + overlap)
                if not chunk:
                    return
                yield chunk
                position += size

    def unlink(self, names: Iterable[str]) -> None:
        for name in names:
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                pass

    def remove_unreferenced(self, referenced: set[str]) -> None:
        """Remove files no row names (a crash between write and commit)."""
        for name in os.listdir(self.directory):
            if name not in referenced:
                self.unlink([name])
