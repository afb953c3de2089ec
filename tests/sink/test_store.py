"""The SQLite store directly: group commit, large-message files, retention, restart."""
from __future__ import annotations

import asyncio
import base64
import os

import pytest

from sink.store import Envelope
from sink.store.files import LARGE_MESSAGE
from sink.store.sqlite import SQLiteStore


def envelope(n: int = 0) -> Envelope:
    return Envelope(mail_from="a@example.com", rcpt_tos=[f"r{n}@example.com"], helo="h")


def big_message(attachments: int) -> bytes:
    """A message over LARGE_MESSAGE with base64 attachments spread through it."""
    parts = [b"From: a@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
             b"Content-Type: text/plain\r\n\r\nfindable words\r\n"]
    blob = base64.encodebytes(os.urandom(LARGE_MESSAGE // 2)).replace(b"\n", b"\r\n")
    for n in range(attachments):
        parts.append(b"--XX\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Disposition: attachment; filename=f%d.bin\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n" % n + blob)
    parts.append(b"--XX--\r\n")
    return b"".join(parts)


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_adds_share_commits_and_all_land(tmp_path):
    async def scenario():
        store = SQLiteStore(str(tmp_path / "m.db"))
        await store.open()
        ids = await asyncio.gather(*(store.add(b"Subject: %d\r\n\r\nx\r\n" % n, envelope(n))
                                     for n in range(300)))
        page = await store.list(0, 1000)
        await store.close()
        return ids, page
    ids, page = run(scenario())
    assert len(set(ids)) == 300
    assert page.total == 300
    assert [s.subject for s in page.summaries] == [str(n) for n in reversed(range(300))]


def test_large_message_lives_in_a_file_and_reads_back_exact(tmp_path):
    raw = big_message(attachments=4)
    assert len(raw) > LARGE_MESSAGE

    async def scenario():
        store = SQLiteStore(str(tmp_path / "m.db"))
        await store.open()
        message_id = await store.add(raw, envelope())
        files = os.listdir(store.files.directory)
        stored = await store.get(message_id)
        found = await store.list(0, 10, "findable")
        deleted = await store.delete([message_id])
        files_after = os.listdir(store.files.directory)
        await store.close()
        return files, stored, found, deleted, files_after
    files, stored, found, deleted, files_after = run(scenario())
    assert len(files) == 1
    assert stored.raw == raw
    assert stored.summary.attachments == 4  # counted in the head and past it
    assert found.total == 1
    assert deleted and files_after == []


def test_restart_keeps_messages_and_removes_orphan_files(tmp_path):
    path = str(tmp_path / "m.db")
    raw = big_message(attachments=2)

    async def first():
        store = SQLiteStore(path)
        await store.open()
        await store.add(raw, envelope())
        await store.add(b"Subject: small\r\n\r\nx\r\n", envelope())
        orphan = store.files.write(b"left by a crash between file and commit")
        await store.close()
        return store.files.directory, orphan

    async def second():
        store = SQLiteStore(path)
        await store.open()
        page = await store.list(0, 10)
        raws = [await store.get_raw(s.id) for s in page.summaries]
        await store.close()
        return raws

    directory, orphan = run(first())
    raws = run(second())
    assert raws == [b"Subject: small\r\n\r\nx\r\n", raw]
    assert orphan not in os.listdir(directory)


def test_delete_all_and_retention_remove_files(tmp_path):
    async def scenario():
        store = SQLiteStore(str(tmp_path / "m.db"), max_messages=2)
        await store.open()
        for n in range(4):
            await store.add(big_message(attachments=2), envelope(n))
        kept = len(os.listdir(store.files.directory))
        count = await store.delete_all()
        left = os.listdir(store.files.directory)
        await store.close()
        return kept, count, left
    kept, count, left = run(scenario())
    assert (kept, count, left) == (2, 2, [])


def test_unknown_ids(tmp_path):
    async def scenario():
        store = SQLiteStore(str(tmp_path / "m.db"))
        await store.open()
        result = (await store.get("nope"), await store.get_raw("nope"),
                  await store.delete(["nope"]), await store.mark_read(["nope"]))
        await store.close()
        return result
    assert run(scenario()) == (None, None, [], [])


def test_not_a_database_is_refused_without_touching_it(tmp_path):
    path = tmp_path / "m.db"
    path.write_bytes(b"not sqlite at all" * 64)
    with pytest.raises(OSError, match="cannot use database"):
        run(SQLiteStore(str(path)).open())
    assert path.read_bytes() == b"not sqlite at all" * 64


def test_lowering_retention_prunes_in_chunks_without_blocking_adds(tmp_path):
    path = str(tmp_path / "m.db")

    async def fill():
        store = SQLiteStore(path)
        await store.open()
        await asyncio.gather(*(store.add(b"Subject: %d\r\n\r\nx\r\n" % n, envelope(n))
                               for n in range(1500)))
        await store.close()

    async def reopen_smaller():
        pruned: list[str] = []
        store = SQLiteStore(path, max_messages=100, on_pruned=pruned.extend)
        await store.open()
        # The first add is answered after at most one chunk of pruning.
        await store.add(b"Subject: new\r\n\r\nx\r\n", envelope())
        first_round = len(pruned)
        for _ in range(200):
            if await store.count() == 100:
                break
            await asyncio.sleep(0.05)
        page = await store.list(0, 1)
        await store.close()
        return first_round, len(pruned), page
    run(fill())
    first_round, total_pruned, page = run(reopen_smaller())
    assert first_round <= 500
    assert total_pruned == 1401
    assert page.total == 100 and page.summaries[0].subject == "new"
