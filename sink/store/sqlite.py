"""The embedded SQLite store: WAL, group commit on a writer thread, FTS5 search.

Why a writer thread: a commit (and its fsync) inside the event loop would stall
every SMTP session. ``add`` queues the message and awaits a future; the writer
drains whatever is queued, inserts it all in one transaction, commits once, then
resolves every future — so the 250 after DATA means "committed", and concurrent
messages share one commit.

Why deferred indexing: the full MIME parse (snippet, attachment count, body text
for search) costs ~1 ms a message, more than everything else at ingest. The
writer does it for committed messages whenever no new mail is waiting, and any
read that needs those fields first waits for the backlog to be indexed.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from typing import Any, Callable, Sequence

from .. import message as mime
from ..search import (casefold_contains, casefold_json_contains, compile_mailhog_search,
                      compile_query)
from . import Envelope, Page, StoredMessage, Summary
from .files import LARGE_MESSAGE, READ_CHUNK, MessageFiles, Spool

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    received_at  REAL NOT NULL,
    size         INTEGER NOT NULL,
    envelope     TEXT NOT NULL,
    from_addr    TEXT NOT NULL DEFAULT '',
    to_addrs     TEXT NOT NULL DEFAULT '[]',
    cc_addrs     TEXT NOT NULL DEFAULT '[]',
    subject      TEXT NOT NULL DEFAULT '',
    date_header  TEXT NOT NULL DEFAULT '',
    message_id   TEXT NOT NULL DEFAULT '',
    snippet      TEXT NOT NULL DEFAULT '',
    attachments  INTEGER NOT NULL DEFAULT 0,
    is_read      INTEGER NOT NULL DEFAULT 0,
    indexed      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_unindexed ON messages(seq) WHERE indexed = 0;
-- has:attachment and is:unread without reading every row
CREATE INDEX IF NOT EXISTS messages_with_attachments ON messages(seq) WHERE attachments > 0;
CREATE INDEX IF NOT EXISTS messages_unread ON messages(seq) WHERE is_read = 0;
CREATE TABLE IF NOT EXISTS raw (
    seq   INTEGER PRIMARY KEY,
    data  BLOB NOT NULL,         -- the message, or empty when it is in a file
    file  TEXT                   -- the file name for a large message (files.py)
);
CREATE VIRTUAL TABLE IF NOT EXISTS message_text USING fts5(
    subject, addresses, body, tokenize = 'unicode61 remove_diacritics 2'
);
-- from: and to: search substrings of addresses; a trigram index answers LIKE '%x%'
-- without reading every row (sender: From + MAIL FROM; recipients: To, Cc, RCPT TO).
CREATE VIRTUAL TABLE IF NOT EXISTS message_addresses USING fts5(
    sender, recipients, tokenize = 'trigram'
);
"""

# For a database made before message_addresses existed: fill it from the columns.
BACKFILL_ADDRESSES = """
INSERT INTO message_addresses (rowid, sender, recipients)
SELECT m.seq, m.from_addr || ' ' || coalesce(json_extract(m.envelope, '$.mail_from'), ''),
       coalesce((SELECT group_concat(value, ', ') FROM (
           SELECT value FROM json_each(m.to_addrs) UNION ALL
           SELECT value FROM json_each(m.cc_addrs) UNION ALL
           SELECT value FROM json_each(m.envelope, '$.rcpt_tos'))), '')
FROM messages m WHERE m.indexed = 1
"""

SUMMARY_COLUMNS = ("id, received_at, size, from_addr, to_addrs, cc_addrs, subject, "
                   "date_header, message_id, snippet, attachments, is_read")

BATCH_LIMIT = 256          # messages per group commit
PRUNE_CHUNK = 500          # retention deletes at most this many per commit, so it never stalls ingest
INDEX_CHUNK = 32           # messages indexed between checks for new mail
# Indexing waits for this much quiet, so a burst of mail is taken in at full speed
# and indexed right after it (reads that need the index wait for it: catch_up).
INDEX_AFTER_IDLE = 0.05


def new_message_id() -> str:
    """An opaque, URL-safe id (MailHog clients use ids verbatim in URLs)."""
    return secrets.token_urlsafe(15)


def _connect(path: str, durable: bool = True) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    # A temporary database is removed at exit, so fsyncs buy it nothing; they were
    # most of a test Sink's start and stop (~40 ms). Set before WAL: the switch syncs.
    connection.execute("PRAGMA synchronous=" + ("NORMAL" if durable else "OFF"))
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=10000")
    # MailHog's search is a Unicode case-insensitive substring match.
    connection.create_function("mh_contains", 2, casefold_contains, deterministic=True)
    connection.create_function("mh_json_contains", 2, casefold_json_contains,
                               deterministic=True)
    return connection


def _valid_text(text: str) -> str:
    """``text`` without lone surrogates (which SQLite refuses and would wedge the indexer)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _summary_from_row(row: Sequence[Any]) -> Summary:
    return Summary(
        id=row[0], received_at=row[1], size=row[2], from_=row[3],
        to=json.loads(row[4]), cc=json.loads(row[5]), subject=row[6], date=row[7],
        message_id=row[8], snippet=row[9], attachments=row[10], read=bool(row[11]),
    )


class _Job:
    """A unit of work for the writer thread, resolved on the event loop."""

    __slots__ = ("kind", "args", "future")

    def __init__(self, kind: str, args: tuple, future: asyncio.Future):
        self.kind = kind
        self.args = args
        self.future = future


class SQLiteStore:
    """SQLite implementation of ``sink.store.Store``."""

    def __init__(self, path: str | None, max_messages: int = 0,
                 on_pruned: Callable[[list[str]], None] | None = None):
        self.max_messages = max_messages
        self.on_pruned = on_pruned
        self._tempdir: str | None = None
        self.path = path
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._file_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.files: MessageFiles | None = None
        self._unlink_after_commit: list[str] = []
        self._local = threading.local()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._count = 0
        # Kept by the writer thread so the inbox and the title counter never count rows.
        self._unread = 0
        # Written only by the writer thread; read by the loop to skip needless waits.
        self._unindexed = 0

    # -- lifecycle -------------------------------------------------------
    async def open(self) -> None:
        if self.path is None:
            self._tempdir = tempfile.mkdtemp(prefix="mailsink-")
            self.path = os.path.join(self._tempdir, "messages.db")
        else:
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                raise OSError(f"database directory does not exist: {directory}")
        self._loop = asyncio.get_running_loop()
        try:
            connection = _connect(self.path, durable=self._tempdir is None)
        except sqlite3.Error as error:
            raise OSError(f"cannot use database {self.path}: {error}") from None
        try:
            connection.executescript(SCHEMA)
            self._count = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
            if self._count and connection.execute(
                    "SELECT rowid FROM message_addresses LIMIT 1").fetchone() is None:
                connection.execute(BACKFILL_ADDRESSES)
            self._unread = connection.execute(
                "SELECT count(*) FROM messages WHERE is_read = 0").fetchone()[0]
            self._unindexed = self._count_unindexed(connection)
        except sqlite3.DatabaseError as error:
            connection.close()
            raise OSError(f"cannot use database {self.path}: {error}") from None
        self.files = MessageFiles(self.path + ".messages")
        try:
            self.files.open()
            self.files.remove_unreferenced({name for (name,) in connection.execute(
                "SELECT file FROM raw WHERE file IS NOT NULL")})
        except OSError as error:
            connection.close()
            raise OSError(f"cannot use message directory {self.files.directory}: "
                          f"{error.strerror or error}") from None
        self._write_connection = connection
        self._file_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mailsink-files")
        self._reader_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="mailsink-read")
        self._writer = threading.Thread(target=self._write_loop, name="mailsink-writer",
                                        daemon=True)
        self._writer.start()

    async def close(self) -> None:
        if self._writer is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(self._writer.join)
        self._writer = None
        assert self._reader_pool is not None
        self._reader_pool.shutdown(wait=True)
        assert self._file_pool is not None
        self._file_pool.shutdown(wait=True)
        self._write_connection.close()
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    # -- writes (all through the writer thread) --------------------------
    def _submit(self, kind: str, *args: Any) -> asyncio.Future:
        assert self._loop is not None, "store is not open"
        future = self._loop.create_future()
        self._jobs.put(_Job(kind, args, future))
        return future

    def new_spool(self) -> Spool:
        """A buffer for an incoming message that moves to a file when it grows large."""
        assert self.files is not None, "store is not open"
        return self.files.spool()

    async def add(self, raw: bytes | bytearray | Spool, envelope: Envelope) -> str:
        assert self._loop is not None and self.files is not None, "store is not open"
        if isinstance(raw, Spool):
            if raw.memory is not None:
                raw = raw.memory
            else:
                # Already on disk: close and rename it, and read the header block back.
                head = await self._loop.run_in_executor(self._file_pool, raw.head,
                                                        mime.HEADER_BLOCK_LIMIT)
                name = await self._loop.run_in_executor(self._file_pool, raw.finish)
                return await self._submit("add", head, envelope, name, len(raw))
        if len(raw) <= LARGE_MESSAGE:
            return await self._submit("add", raw, envelope, None, len(raw))
        name = await self._loop.run_in_executor(self._file_pool, self.files.write, raw)
        return await self._submit("add", raw[:mime.HEADER_BLOCK_LIMIT], envelope, name, len(raw))

    async def delete(self, message_ids: Sequence[str]) -> list[str]:
        return await self._submit("delete", list(message_ids))

    async def delete_all(self) -> int:
        return await self._submit("delete_all")

    async def mark_read(self, message_ids: Sequence[str], read: bool = True) -> list[str]:
        return await self._submit("mark_read", list(message_ids), read)

    async def mark_all_read(self, read: bool = True) -> int:
        """Mark every message read (or unread); return how many changed."""
        return await self._submit("mark_all_read", read)

    async def catch_up(self) -> None:
        """Wait until every committed message is indexed (snippet, search)."""
        if self._unindexed:
            await self._submit("catch_up")

    def _write_loop(self) -> None:
        connection = self._write_connection
        pending: list[_Job] = []
        while True:
            if not pending:
                try:
                    idle_work = self._unindexed or self._excess() > 0
                    job = self._jobs.get(timeout=INDEX_AFTER_IDLE if idle_work else None)
                except queue.Empty:
                    self._idle_work(connection)
                    continue
                pending.append(job)
            # Drain whatever else is queued right now: that is the group commit.
            while len(pending) < BATCH_LIMIT:
                try:
                    pending.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            stop = any(job is None for job in pending)
            jobs = [job for job in pending if job is not None]
            pending = []
            self._run_batch(connection, jobs)
            if stop:
                return

    def _idle_work(self, connection: sqlite3.Connection) -> None:
        """Retention left over from a big prune, else indexing; never kills the writer."""
        try:
            if self._excess() > 0:
                self._run_batch(connection, [])
            else:
                self._index_some(connection, INDEX_CHUNK)
        except Exception:
            log.exception("store: idle work failed; will retry")
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            time.sleep(INDEX_AFTER_IDLE)  # do not spin on a persistent error

    @staticmethod
    def _count_unindexed(connection: sqlite3.Connection) -> int:
        return connection.execute("SELECT count(*) FROM messages WHERE indexed = 0").fetchone()[0]

    def _run_batch(self, connection: sqlite3.Connection, jobs: list[_Job]) -> None:
        """Run ``jobs`` in one transaction and resolve their futures, whatever happens."""
        results: list[tuple[_Job, Any, BaseException | None]] = []
        pruned: list[str] = []
        writes = [job for job in jobs if job.kind != "catch_up"]
        failed = False
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in writes:
                # A savepoint per job: a job that fails leaves nothing half-written,
                # and the others in the batch still commit.
                connection.execute("SAVEPOINT job")
                try:
                    value = getattr(self, "_do_" + job.kind)(connection, *job.args)
                except Exception as error:
                    log.error("store: %s failed: %s", job.kind, error)
                    connection.execute("ROLLBACK TO job")
                    results.append((job, None, error))
                    failed = True
                else:
                    results.append((job, value, None))
                connection.execute("RELEASE job")
            pruned = self._prune(connection)
            connection.execute("COMMIT")
        except Exception as error:
            log.exception("store: commit failed")
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            results = [(job, None, error) for job in writes]
            pruned = []
            failed = True
        if failed:
            # Counters moved with statements that were rolled back: recount them.
            self._count = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
            self._unread = connection.execute(
                "SELECT count(*) FROM messages WHERE is_read = 0").fetchone()[0]
        else:
            assert self.files is not None
            self.files.unlink(self._unlink_after_commit)
        self._unlink_after_commit = []
        self._unindexed = self._count_unindexed(connection)
        if len(writes) < len(jobs):
            try:
                while self._index_some(connection, 1024):
                    pass
            except Exception:
                log.exception("store: indexing failed")
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            results += [(job, None, None) for job in jobs if job.kind == "catch_up"]
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._resolve, results, pruned)

    def _resolve(self, results: list[tuple[_Job, Any, BaseException | None]],
                 pruned: list[str]) -> None:
        for job, value, error in results:
            if job.future.done():
                continue
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(value)
        if pruned and self.on_pruned:
            self.on_pruned(pruned)

    def _do_add(self, connection: sqlite3.Connection, raw: bytes, envelope: Envelope,
                file_name: str | None, size: int) -> str:
        """Insert one message: ``raw`` is the whole message, or its head when in a file."""
        summary = mime.summarize(raw)
        message_id = new_message_id()
        cursor = connection.execute(
            "INSERT INTO messages (id, received_at, size, envelope, from_addr, to_addrs,"
            " cc_addrs, subject, date_header, message_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (message_id, envelope.received_at or time.time(), size,
             json.dumps(envelope.to_dict()), summary.from_, json.dumps(summary.to),
             json.dumps(summary.cc), summary.subject, summary.date, summary.message_id))
        seq = cursor.lastrowid
        if file_name is None:
            connection.execute("INSERT INTO raw (seq, data) VALUES (?, ?)", (seq, raw))
        else:
            connection.execute("INSERT INTO raw (seq, data, file) VALUES (?, x'', ?)",
                               (seq, file_name))
        self._count += 1
        self._unread += 1
        return message_id

    def _do_delete(self, connection: sqlite3.Connection, ids: list[str]) -> list[str]:
        deleted = []
        for message_id in ids:
            row = connection.execute("SELECT seq FROM messages WHERE id = ?",
                                     (message_id,)).fetchone()
            if row is None:
                continue
            self._delete_seqs(connection, [row[0]])
            deleted.append(message_id)
        return deleted

    def _do_delete_all(self, connection: sqlite3.Connection) -> int:
        count = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        self._unlink_after_commit += [name for (name,) in connection.execute(
            "SELECT file FROM raw WHERE file IS NOT NULL")]
        connection.execute("DELETE FROM messages")
        connection.execute("DELETE FROM raw")
        connection.execute("DELETE FROM message_text")
        connection.execute("DELETE FROM message_addresses")
        self._count = 0
        self._unread = 0
        return count

    def _do_mark_read(self, connection: sqlite3.Connection, ids: list[str], read: bool) -> list[str]:
        changed = []
        for message_id in ids:
            # "is_read != ?" so that only real changes count (and move the unread counter).
            cursor = connection.execute(
                "UPDATE messages SET is_read = ? WHERE id = ? AND is_read != ?",
                (int(read), message_id, int(read)))
            if cursor.rowcount:
                changed.append(message_id)
        self._unread += -len(changed) if read else len(changed)
        return changed

    def _do_mark_all_read(self, connection: sqlite3.Connection, read: bool) -> int:
        cursor = connection.execute("UPDATE messages SET is_read = ? WHERE is_read != ?",
                                    (int(read), int(read)))
        self._unread = 0 if read else self._count
        return cursor.rowcount

    def _delete_seqs(self, connection: sqlite3.Connection, seqs: list[int]) -> None:
        marks = ",".join("?" * len(seqs))
        self._unread -= connection.execute(
            f"SELECT count(*) FROM messages WHERE is_read = 0 AND seq IN ({marks})",
            seqs).fetchone()[0]
        self._unlink_after_commit += [name for (name,) in connection.execute(
            f"SELECT file FROM raw WHERE seq IN ({marks}) AND file IS NOT NULL", seqs)]
        connection.execute(f"DELETE FROM messages WHERE seq IN ({marks})", seqs)
        connection.execute(f"DELETE FROM raw WHERE seq IN ({marks})", seqs)
        connection.execute(f"DELETE FROM message_text WHERE rowid IN ({marks})", seqs)
        connection.execute(f"DELETE FROM message_addresses WHERE rowid IN ({marks})", seqs)
        self._count -= len(seqs)

    def _excess(self) -> int:
        return self._count - self.max_messages if self.max_messages else 0

    def _prune(self, connection: sqlite3.Connection) -> list[str]:
        """Retention: drop the oldest messages past ``max_messages``."""
        excess = min(self._excess(), PRUNE_CHUNK)
        if excess <= 0:
            return []
        rows = connection.execute("SELECT seq, id FROM messages ORDER BY seq LIMIT ?",
                                  (excess,)).fetchall()
        self._delete_seqs(connection, [seq for seq, _ in rows])
        return [message_id for _, message_id in rows]

    def _index_some(self, connection: sqlite3.Connection, limit: int) -> int:
        """Full-parse up to ``limit`` unindexed messages; return how many."""
        rows = connection.execute(
            "SELECT m.seq, m.subject, m.from_addr, m.to_addrs, m.cc_addrs, m.envelope,"
            " r.data, r.file FROM messages m JOIN raw r ON r.seq = m.seq"
            " WHERE m.indexed = 0 ORDER BY m.seq LIMIT ?", (limit,)).fetchall()
        if not rows:
            self._unindexed = 0
            return 0
        updates = []
        address_rows: list[tuple[int, str, str]] = []
        assert self.files is not None
        for seq, subject, from_addr, to_addrs, cc_addrs, envelope_json, data, file in rows:
            envelope = json.loads(envelope_json)
            try:
                head = data if file is None else self.files.read(file, mime.INDEX_LIMIT)
                text, attachments = mime.index_fields(head)
                if file is not None:
                    attachments += self._count_attachments_past_head(file)
            except Exception:  # a parser bug must never wedge the indexer
                log.exception("could not parse message %s", seq)
                text, attachments = "", 0
            sender = f"{from_addr} {envelope.get('mail_from', '')}"
            recipients = ", ".join([*json.loads(to_addrs), *json.loads(cc_addrs),
                                    *envelope.get("rcpt_tos", [])])
            sender, recipients, subject, text = (
                _valid_text(value) for value in (sender, recipients, subject, text))
            addresses = f"{sender} {recipients}"
            updates.append((seq, subject, addresses, text,
                            text[:mime.SNIPPET_LENGTH], attachments))
            address_rows.append((seq, sender, recipients))
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO message_text (rowid, subject, addresses, body) VALUES (?,?,?,?)",
            [(seq, subject, addresses, text) for seq, subject, addresses, text, _, _ in updates])
        connection.executemany(
            "INSERT INTO message_addresses (rowid, sender, recipients) VALUES (?,?,?)",
            address_rows)
        connection.executemany(
            "UPDATE messages SET snippet = ?, attachments = ?, indexed = 1 WHERE seq = ?",
            [(snip, attachments, seq) for seq, _, _, _, snip, attachments in updates])
        connection.execute("COMMIT")
        self._unindexed = self._count_unindexed(connection)
        return len(rows)

    def _count_attachments_past_head(self, file_name: str) -> int:
        """Count attachment headers after the parsed head, a chunk at a time."""
        assert self.files is not None
        # 64 bytes of overlap, so a header cut by a chunk boundary is seen whole.
        return sum(mime.count_attachment_headers(chunk, end=READ_CHUNK) for chunk in
                   self.files.chunks(file_name, mime.INDEX_LIMIT, READ_CHUNK, overlap=64))

    # -- reads (a small thread pool, one connection per thread) ----------
    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            assert self.path is not None
            connection = self._local.connection = _connect(self.path, self._tempdir is None)
        return connection

    async def _read(self, function: Callable[[sqlite3.Connection], Any]) -> Any:
        assert self._loop is not None and self._reader_pool is not None
        return await self._loop.run_in_executor(
            self._reader_pool, lambda: function(self._reader()))

    def _raw_bytes(self, data: bytes, file_name: str | None) -> bytes:
        assert self.files is not None
        return bytes(data) if file_name is None else self.files.read(file_name)

    async def get(self, message_id: str) -> StoredMessage | None:
        await self.catch_up()

        def read(connection: sqlite3.Connection) -> StoredMessage | None:
            row = connection.execute(
                f"SELECT {SUMMARY_COLUMNS}, envelope, data, file FROM messages m"
                " JOIN raw r ON r.seq = m.seq WHERE m.id = ?", (message_id,)).fetchone()
            if row is None:
                return None
            return StoredMessage(_summary_from_row(row),
                                 Envelope.from_dict(json.loads(row[-3])),
                                 self._raw_bytes(row[-2], row[-1]))
        return await self._read(read)

    async def get_raw(self, message_id: str) -> bytes | None:
        def read(connection: sqlite3.Connection) -> bytes | None:
            row = connection.execute(
                "SELECT data, file FROM raw WHERE seq = (SELECT seq FROM messages WHERE id = ?)",
                (message_id,)).fetchone()
            return None if row is None else self._raw_bytes(*row)
        return await self._read(read)

    async def list(self, start: int = 0, limit: int = 50, query: str | None = None,
                   before: str | None = None, count_limit: int | None = None) -> Page:
        """Newest first. ``before`` (a message id) pages by key instead of by offset:
        rows older than that message, as fast on page 2,000 as on page 1.

        The total of a search is counted, which reads every match: ``count_limit``
        stops at that many (``Page.total_exact`` is then False; 0 does not count at
        all, for pages after the first). The unsearched
        total is a counter, always exact and free."""
        await self.catch_up()
        where, params = compile_query(query or "")
        cached_total = self._count if where == "1" else None

        def read(connection: sqlite3.Connection) -> Page:
            conditions, values = where, list(params)
            if before is not None:
                row = connection.execute("SELECT seq FROM messages WHERE id = ?",
                                         (before,)).fetchone()
                if row is None:
                    raise ValueError(f"before: no message with id {before!r} (deleted?)")
                conditions, values = f"m.seq < ? AND ({where})", [row[0], *params]
            total, exact = cached_total, True
            if total is None and count_limit and before is None:
                # One pass finds the newest count_limit + 1 matches: their number is the
                # (capped) total and the page is a slice of them, so the search runs once.
                seqs = [seq for (seq,) in connection.execute(
                    f"SELECT m.seq FROM messages m WHERE {where} ORDER BY m.seq DESC LIMIT ?",
                    (*params, count_limit + 1))]
                exact = len(seqs) <= count_limit
                total = min(len(seqs), count_limit)
                if exact or start + limit <= count_limit:
                    return Page(total, start, self._summaries(
                        connection, seqs[start:start + limit]), exact)
            elif total is None and count_limit == 0:
                total, exact = 0, False
            elif total is None and count_limit:
                total = connection.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM messages m WHERE {where} LIMIT ?)",
                    (*params, count_limit + 1)).fetchone()[0]
                exact = total <= count_limit
                total = min(total, count_limit)
            elif total is None:
                total = connection.execute(
                    f"SELECT count(*) FROM messages m WHERE {where}", params).fetchone()[0]
            rows = connection.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE {conditions}"
                " ORDER BY m.seq DESC LIMIT ? OFFSET ?", (*values, limit, start)).fetchall()
            return Page(total, start, [_summary_from_row(row) for row in rows], exact)
        return await self._read(read)

    async def get_many(self, message_ids: Sequence[str]) -> list[StoredMessage]:
        """The stored messages with these ids, in the order given (unknown ids left out)."""
        if not message_ids:
            return []
        await self.catch_up()
        ids = list(message_ids)

        def read(connection: sqlite3.Connection) -> list[StoredMessage]:
            found: dict[str, StoredMessage] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows = connection.execute(
                    f"SELECT {SUMMARY_COLUMNS}, envelope, data, file FROM messages m"
                    f" JOIN raw r ON r.seq = m.seq WHERE m.id IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
                for row in rows:
                    found[row[0]] = StoredMessage(_summary_from_row(row),
                                                  Envelope.from_dict(json.loads(row[-3])),
                                                  self._raw_bytes(row[-2], row[-1]))
            return [found[i] for i in ids if i in found]
        return await self._read(read)

    async def search_mailhog(self, kind: str, query: str, start: int = 0,
                             limit: int = 50) -> Page:
        """MailHog's search (``kind`` from/to/containing), newest first."""
        await self.catch_up()
        where, params = compile_mailhog_search(kind, query)

        def read(connection: sqlite3.Connection) -> Page:
            total = connection.execute(
                f"SELECT count(*) FROM messages m WHERE {where}", params).fetchone()[0]
            rows = connection.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE {where}"
                " ORDER BY m.seq DESC LIMIT ? OFFSET ?", (*params, limit, start)).fetchall()
            return Page(total, start, [_summary_from_row(row) for row in rows])
        return await self._read(read)
    @staticmethod
    def _summaries(connection: sqlite3.Connection, seqs: list[int]) -> list[Summary]:
        """The summaries of these messages, newest first."""
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        rows = connection.execute(f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.seq"
                                  f" IN ({marks}) ORDER BY m.seq DESC", seqs).fetchall()
        return [_summary_from_row(row) for row in rows]

    async def count(self) -> int:
        return await self._read(
            lambda connection: connection.execute("SELECT count(*) FROM messages").fetchone()[0])

    def counts(self) -> tuple[int, int]:
        """(messages, unread) from counters the writer keeps: free to call per event."""
        return max(self._count, 0), max(self._unread, 0)
