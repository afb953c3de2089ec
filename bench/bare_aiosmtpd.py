"""The baseline for bench/ingest.py: stock aiosmtpd whose handler discards every message.

Run as ``python bench/bare_aiosmtpd.py PORT``; prints "ready" once listening.
"""
from __future__ import annotations

import asyncio
import sys

from aiosmtpd.smtp import SMTP


class DiscardHandler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(DiscardHandler(), hostname="bare", data_size_limit=64 * 1024 * 1024,
                     enable_SMTPUTF8=True),
        host="127.0.0.1", port=port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
