"""Large raw messages as files beside the database.

Why: committing a 25 MiB blob holds SQLite's single writer for a long time, and
every other message's 250 waits behind it; and holding it in memory costs its
size in RAM per concurrent sender. So an incoming message is collected in a
``Spool``, which moves to a file once it passes ``LARGE_MESSAGE``; the writer
then commits only a row naming the file. Files are written under a ``.part``
name and renamed when the message is complete, so a file that has its final
name is whole; anything left without a row by a crash is removed at the next start.
"""
from __future__ import annotations

import os
import secrets
from typing import Iterable, Iterator

READ_CHUNK = 1024 * 1024
LARGE_MESSAGE = 1024 * 1024  # raw messages larger than this are kept in files


def _new_name() -> str:
    return secrets.token_hex(12) + ".eml"


class Spool:
    """An incoming message's bytes: in memory while small, in a ``.part`` file past
    ``threshold``. ``len()`` is the size so far; ``discard()`` drops it."""

    def __init__(self, files: "MessageFiles", threshold: int = LARGE_MESSAGE):
        self._files = files
        self._threshold = threshold
        self.memory: bytearray | None = bytearray()
        self.name: str | None = None  # the final file name, once on disk
        self._file = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._size += len(data)
        if self.memory is not None:
            self.memory += data
            if len(self.memory) > self._threshold:
                self.name = _new_name()
                self._file = open(self._files.path(self.name + ".part"), "wb")
                self._file.write(self.memory)
                self.memory = None
        else:
            self._file.write(data)

    def head(self, limit: int) -> bytes:
        """The first ``limit`` bytes (enough for the header block)."""
        if self.memory is not None:
            return bytes(self.memory[:limit])
        self._file.flush()
        return self._files.read(self.name + ".part", limit)

    def finish(self) -> str | None:
        """Close and rename the file (if any) to its final name and return that name."""
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        os.replace(self._files.path(self.name + ".part"), self._files.path(self.name))
        return self.name

    def discard(self) -> None:
        self.memory = None
        if self._file is not None:
            self._file.close()
            self._file = None
            self._files.unlink([self.name + ".part"])


class MessageFiles:
    """The directory of large raw messages (``<db>.messages/``)."""

    def __init__(self, directory: str):
        self.directory = directory

    def open(self) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def spool(self) -> Spool:
        return Spool(self)

    def write(self, raw: bytes | bytearray) -> str:
        """Write ``raw`` whole and return its file name."""
        name = _new_name()
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
