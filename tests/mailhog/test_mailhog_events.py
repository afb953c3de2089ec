"""Live events: MailHog's SSE stream (/api/v1/events) and WebSocket (/api/v2/websocket)."""
from __future__ import annotations

import json
import threading

import httpx
import pytest
import websockets.sync.client as ws_client


def _send_later(send, sink, subject: str) -> threading.Thread:
    raw = f"From: a@example.com\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()
    thread = threading.Thread(target=send, args=(sink, raw, "a@example.com", ["b@example.org"]))
    thread.start()
    return thread


def test_sse_sends_each_new_message(sink, send):
    with httpx.Client(base_url=sink.http_url, timeout=10) as api:
        with api.stream("GET", "/api/v1/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            _send_later(send, sink, "first").join()
            _send_later(send, sink, "second").join()
            events, data = [], []
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    data.append(line[len("data: "):])
                elif line == "" and data:
                    events.append(json.loads("\n".join(data)))
                    data = []
                    if len(events) == 2:
                        break
    assert [e["Content"]["Headers"]["Subject"] for e in events] == [["first"], ["second"]]
    stored = httpx.get(f"{sink.http_url}/api/v1/messages/{events[0]['ID']}").json()
    assert stored == events[0]


def test_websocket_sends_each_new_message_as_one_frame(sink, send):
    url = sink.http_url.replace("http://", "ws://") + "/api/v2/websocket"
    with ws_client.connect(url, open_timeout=5) as socket:
        _send_later(send, sink, "over the socket").join()
        frame = json.loads(socket.recv(timeout=10))
    assert frame["Content"]["Headers"]["Subject"] == ["over the socket"]
    assert list(frame) == ["ID", "From", "To", "Content", "Created", "MIME", "Raw"]


def test_websocket_refuses_other_sites(sink):
    url = sink.http_url.replace("http://", "ws://") + "/api/v2/websocket"
    with pytest.raises(Exception):
        with ws_client.connect(url, origin="http://evil.example", open_timeout=5) as socket:
            socket.recv(timeout=5)


def test_websocket_client_leaving_unsubscribes(sink):
    url = sink.http_url.replace("http://", "ws://") + "/api/v2/websocket"
    with ws_client.connect(url, open_timeout=5):
        pass
    events = sink.server.events
    for _ in range(100):
        if events.subscriber_count == 0:
            break
        threading.Event().wait(0.02)
    assert events.subscriber_count == 0


def test_sse_client_leaving_unsubscribes(sink):
    with httpx.Client(base_url=sink.http_url, timeout=10) as api:
        with api.stream("GET", "/api/v1/events") as stream:
            assert stream.status_code == 200
            assert sink.server.events.subscriber_count == 1
    for _ in range(100):
        if sink.server.events.subscriber_count == 0:
            break
        threading.Event().wait(0.02)
    assert sink.server.events.subscriber_count == 0


def test_open_streams_end_when_the_sink_stops():
    import time

    from sink import Sink
    sink = Sink().start()
    url = sink.http_url.replace("http://", "ws://") + "/api/v2/websocket"
    with ws_client.connect(url, open_timeout=5) as socket, \
            httpx.Client(base_url=sink.http_url, timeout=10) as api, \
            api.stream("GET", "/api/v1/events") as stream:
        started = time.monotonic()
        sink.stop()
        assert list(stream.iter_lines()) == []  # the stream ends instead of hanging
        with pytest.raises(Exception):
            socket.recv(timeout=5)
        assert time.monotonic() - started < 5
