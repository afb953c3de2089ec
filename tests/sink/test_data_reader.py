"""The chunked DATA reader against every way the bytes can be cut up."""
from __future__ import annotations

import asyncio
import random

from sink.smtp.data import read_data


def stuff(body: bytes) -> bytes:
    """What a client puts on the wire: a dot before every line starting with one."""
    return b"\r\n".join((b"." + line if line.startswith(b".") else line)
                        for line in body.split(b"\r\n"))


async def read(wire: bytes, cuts: list[int], limit=None):
    reader = asyncio.StreamReader()
    position = 0
    for cut in cuts:
        reader.feed_data(wire[position:position + cut])
        position += cut
    reader.feed_data(wire[position:])
    return await read_data(reader, limit)


def test_random_bodies_and_random_chunking_round_trip():
    rng = random.Random(20261123)
    pieces = [b"\r\n", b".", b"a", b"\r", b"\n", b"..", b"\r\n.\r\n"]

    async def check_all():
        for _ in range(3000):
            body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
            body = (b"x" + body).rstrip(b"\r\n") + b"\r\n"  # a real body ends in CRLF
            wire = stuff(body[:-2]) + b"\r\n.\r\nNEXT\r\n"
            cuts = [rng.randint(1, 7) for _ in range(len(wire) // 3)]
            result = await read(wire, cuts)
            assert bytes(result.content) == body, (body, wire, cuts)
            assert result.leftover == b"NEXT\r\n"[:len(result.leftover)]
    asyncio.run(check_all())


def test_empty_body_and_dot_at_start():
    async def check():
        empty = await read(b".\r\n", [])
        dotted = await read(b"..hidden\r\n.\r\n", [1, 1, 1])
        return empty, dotted
    empty, dotted = asyncio.run(check())
    assert bytes(empty.content) == b""
    assert bytes(dotted.content) == b".hidden\r\n"


def test_bare_lf_dot_does_not_end_data():
    result = asyncio.run(read(b"a\n.\nb\r\n.\r\n", [2, 2]))
    assert bytes(result.content) == b"a\n.\nb\r\n"


def test_over_the_limit_reads_to_the_end_but_keeps_nothing():
    result = asyncio.run(read(b"x" * 5000 + b"\r\n.\r\nQUIT\r\n", [100] * 30, limit=1000))
    assert result.content is None
    assert result.size == 5002
    assert result.leftover == b"QUIT\r\n"
