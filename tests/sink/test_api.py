"""/api/v3 over real HTTP against a running sink (mail delivered over real SMTP)."""
from __future__ import annotations

import base64
import json
import queue
import re
import threading
from email.message import EmailMessage

import httpx
import pytest

from tests.sink.ui_helpers import listing, send, simple


def api(sink, path: str) -> str:
    return f"{sink.http_url}/api/v3{path}"


def rich_message() -> EmailMessage:
    message = simple("Rich", "plain part", to="Bob <bob@example.com>")
    message["Cc"] = "carol@example.com"
    message.add_alternative('<p>html <img src="cid:pic@x"></p>', subtype="html")
    message.get_payload()[1].add_related(b"\x89PNG\r\n\x1a\nfake", maintype="image",
                                         subtype="png", cid="<pic@x>")
    message.add_attachment(bytes(range(256)) * 40, maintype="application",
                           subtype="octet-stream", filename="blob.bin")
    return message


def test_detail_has_envelope_headers_and_parts_with_ids(sink):
    send(sink, rich_message(), rcpt=["bob@example.com", "carol@example.com", "bcc@example.com"])
    summary = listing(sink)["messages"][0]
    detail = httpx.get(api(sink, f"/messages/{summary['id']}")).json()
    assert detail["subject"] == "Rich" and detail["attachments"] == 1
    assert detail["envelope"]["rcpt_tos"] == ["bob@example.com", "carol@example.com",
                                              "bcc@example.com"]
    assert detail["envelope"]["bcc"] == ["bcc@example.com"]
    assert [h["name"] for h in detail["headers"]][:3] == ["From", "To", "Subject"]
    assert {"name": "Cc", "value": "carol@example.com"} in detail["headers"]
    assert detail["text"].strip() == "plain part"
    assert "cid:pic@x" in detail["html"]
    types = [p["content_type"] for p in detail["parts"]]
    assert types == ["multipart/mixed", "multipart/alternative", "text/plain",
                     "multipart/related", "text/html", "image/png", "application/octet-stream"]
    assert [p["index"] for p in detail["parts"]] == list(range(7))
    (attachment,) = detail["attachment_parts"]
    assert attachment["filename"] == "blob.bin" and attachment["size"] == 256 * 40
    assert "url" not in detail["parts"][0]                    # containers have no bytes


def test_part_download_is_byte_exact(sink):
    send(sink, rich_message())
    detail = httpx.get(api(sink, f"/messages/{listing(sink)['messages'][0]['id']}")).json()
    (attachment,) = detail["attachment_parts"]
    response = httpx.get(sink.http_url + attachment["url"])
    assert response.status_code == 200
    assert response.content == bytes(range(256)) * 40
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith('attachment; filename="blob.bin"')
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    image = httpx.get(sink.http_url + detail["parts"][5]["url"], params={"inline": 1})
    assert image.content == b"\x89PNG\r\n\x1a\nfake"
    assert image.headers["content-disposition"].startswith("inline")


def test_part_errors(sink):
    send(sink, simple("one"))
    message_id = listing(sink)["messages"][0]["id"]
    for path, status in [(f"/messages/{message_id}/parts/99", 404),
                         (f"/messages/{message_id}/parts/x", 400),
                         ("/messages/nope/parts/0", 404)]:
        response = httpx.get(api(sink, path))
        assert response.status_code == status
        assert "error" in response.json()


def test_hostile_filename_is_neutralised(sink):
    # RFC 2231 lets a filename carry anything, CR LF and slashes included.
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: evil name\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
           b"--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XX\r\n"
           b"Content-Type: text/html\r\nContent-Disposition: attachment;"
           b" filename*=utf-8''..%2F..%2Fetc%2F%22passwd%0D%0AX-Evil%3A%201.html\r\n\r\n"
           b"<script>alert(1)</script>\r\n--XX--\r\n")
    send(sink, raw, rcpt=["b@example.com"])
    detail = httpx.get(api(sink, f"/messages/{listing(sink)['messages'][0]['id']}")).json()
    response = httpx.get(sink.http_url + detail["attachment_parts"][0]["url"])
    disposition = response.headers["content-disposition"]
    assert "/" not in disposition.split("filename*=")[0] and "\r" not in disposition
    assert "x-evil" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "sandbox" in response.headers["content-security-policy"]


def test_raw_download(sink):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: raw\r\n\r\nbody\r\n"
    send(sink, raw, rcpt=["b@example.com"])
    message_id = listing(sink)["messages"][0]["id"]
    response = httpx.get(api(sink, f"/messages/{message_id}/raw"), params={"download": 1})
    assert response.content == raw
    assert response.headers["content-type"] == "message/rfc822"
    assert f'filename="{message_id}.eml"' in response.headers["content-disposition"]


def test_keyset_paging_walks_everything_once(sink):
    for n in range(7):
        send(sink, simple(f"m{n}"))
    seen, before = [], None
    while True:
        page = listing(sink, limit=3, **({"before": before} if before else {}))
        assert page["total"] == 7
        seen += [m["subject"] for m in page["messages"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == [f"m{n}" for n in reversed(range(7))]
    assert [m["subject"] for m in listing(sink, limit=2, start=5)["messages"]] == ["m1", "m0"]


def test_paging_errors_are_json_400(sink):
    for params in [{"limit": 0}, {"limit": "x"}, {"start": -1}, {"before": "no-such-id"},
                   {"limit": 5000}]:
        response = httpx.get(api(sink, "/messages"), params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]


def test_read_state_one_many_all(sink):
    for n in range(3):
        send(sink, simple(f"r{n}"))
    ids = [m["id"] for m in listing(sink)["messages"]]
    assert listing(sink)["unread"] == 3
    response = httpx.patch(api(sink, f"/messages/{ids[0]}"), json={"read": True})
    assert response.json() == {"changed": [ids[0]]}
    assert httpx.patch(api(sink, f"/messages/{ids[0]}"), json={"read": True}).json() == \
        {"changed": []}                                   # already read: no change
    assert listing(sink)["unread"] == 2
    httpx.patch(api(sink, "/messages"), json={"ids": ids[1:], "read": True})
    assert listing(sink)["unread"] == 0
    assert httpx.patch(api(sink, "/messages"), json={"read": False}).json() == {"changed": 3}
    assert [m["read"] for m in listing(sink)["messages"]] == [False] * 3
    assert httpx.patch(api(sink, "/messages/nope"), json={"read": True}).status_code == 404
    for body in ['{"read": "yes"}', "[1]", "not json", "{}"]:
        response = httpx.patch(api(sink, f"/messages/{ids[0]}"), content=body)
        assert response.status_code == 400 and response.json()["error"]


def test_delete_one_many_all(sink):
    for n in range(5):
        send(sink, simple(f"d{n}"))
    ids = [m["id"] for m in listing(sink)["messages"]]
    assert httpx.delete(api(sink, f"/messages/{ids[0]}")).json() == {"deleted": [ids[0]]}
    assert httpx.delete(api(sink, f"/messages/{ids[0]}")).status_code == 404
    response = httpx.request("DELETE", api(sink, "/messages"),
                             json={"ids": [ids[1], ids[2], "unknown"]})
    assert response.json() == {"deleted": [ids[1], ids[2]]}
    assert listing(sink)["total"] == 2
    bad = httpx.request("DELETE", api(sink, "/messages"), content="{oops")
    assert bad.status_code == 400
    assert listing(sink)["total"] == 2                    # a bad body deletes nothing
    assert httpx.delete(api(sink, "/messages")).json() == {"deleted": 2}
    assert listing(sink) | {"messages": None} == {
        "total": 0, "total_exact": True, "unread": 0, "start": 0, "count": 0,
        "next_before": None, "messages": None}


class EventReader:
    """Reads /api/v3/events in a thread; ``next()`` returns (kind, data)."""

    def __init__(self, url: str):
        self.events: queue.Queue = queue.Queue()
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self.thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self.thread.start()
        assert self.next()[0] == "counts"

    def _run(self, url: str) -> None:
        try:
            with self.client.stream("GET", url) as response:
                kind = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        self.events.put((kind, json.loads(line[6:])))
        except httpx.HTTPError:
            pass

    def next(self, timeout: float = 5) -> tuple[str, dict]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.client.close()


def test_event_stream_reports_new_read_deleted(sink):
    reader = EventReader(api(sink, "/events"))
    try:
        send(sink, simple("live"))
        kind, data = reader.next()
        assert kind == "new" and data["total"] == 1 and data["unread"] == 1
        message_id = data["id"]
        httpx.patch(api(sink, f"/messages/{message_id}"), json={"read": True})
        assert reader.next() == ("read", {"ids": [message_id], "total": 1, "unread": 0})
        httpx.delete(api(sink, f"/messages/{message_id}"))
        assert reader.next() == ("deleted", {"ids": [message_id], "total": 0, "unread": 0})
        send(sink, simple("again"))
        assert reader.next()[0] == "new"
        httpx.delete(api(sink, "/messages"))
        assert reader.next() == ("deleted", {"all": True, "total": 0, "unread": 0})
    finally:
        reader.close()


def test_event_stream_ends_when_the_sink_stops():
    from sink import Sink
    running = Sink().start()
    reader = EventReader(f"{running.http_url}/api/v3/events")
    try:
        running.stop()                       # must not hang on the open stream
        reader.thread.join(timeout=5)
        assert not reader.thread.is_alive()
    finally:
        reader.close()


def test_openapi_describes_every_route(sink):
    spec = httpx.get(api(sink, "/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, item in spec["paths"].items()
                 for method in item if method != "parameters"}
    from sink.web.api import create_api
    from sink.events import EventBus
    routes = {("/api/v3" + re.sub(r"\{(\w+)\}", r"{\1}", route.path), method)
              for route in create_api(sink.server.store, EventBus()).routes
              for method in getattr(route, "methods", {"GET"}) - {"HEAD"}
              if route.path not in ("/", "/docs", "/ws")}
    assert routes == described
    docs = httpx.get(api(sink, "/docs"))
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    for path, method in described:
        assert f"<code>{path}</code>" in docs.text
    assert httpx.get(api(sink, "/"), follow_redirects=True).url.path == "/api/v3/docs"


@pytest.mark.parametrize("path", ["/messages/nope", "/messages/nope/raw", "/nothing-here"])
def test_errors_are_json(sink, path):
    response = httpx.get(api(sink, path))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]


def test_websocket_carries_the_same_events(sink):
    from websockets.sync.client import connect

    with connect(sink.http_url.replace("http://", "ws://") + "/api/v3/ws") as socket:
        assert json.loads(socket.recv(timeout=5)) == {"event": "counts", "total": 0, "unread": 0}
        send(sink, simple("over a socket"))
        event = json.loads(socket.recv(timeout=5))
        assert event["event"] == "new" and event["total"] == 1
        httpx.delete(api(sink, f"/messages/{event['id']}"))
        assert json.loads(socket.recv(timeout=5)) == {
            "event": "deleted", "ids": [event["id"]], "total": 0, "unread": 0}


def test_websocket_needs_credentials_too(tmp_path):
    import bcrypt
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from sink import Sink

    users = tmp_path / "users"
    users.write_text("dev:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode() + "\n")
    with Sink(ui_auth_file=str(users)) as sink:
        url = sink.http_url.replace("http://", "ws://") + "/api/v3/ws"
        with pytest.raises(InvalidStatus):
            connect(url, open_timeout=5)
        token = base64.b64encode(b"dev:pw").decode()
        with connect(url, additional_headers={"Authorization": f"Basic {token}"}) as socket:
            assert json.loads(socket.recv(timeout=5))["event"] == "counts"
