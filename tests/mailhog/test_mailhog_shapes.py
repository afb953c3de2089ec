"""The MailHog message JSON, field by field, against hand-written reference JSON."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from tests.mailhog.mailhog_helpers import SHAPES, reference

RECEIVED_DATE = re.compile(r"; ([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4})$")


def normalised(message: dict) -> dict:
    """The message with its ID, arrival time and Received date as the reference's placeholders."""
    message_id = message["ID"]
    created = message["Created"]
    # Go's RFC 3339 with fractional seconds: parseable, UTC here.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", created)
    dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    received = message["Content"]["Headers"]["Received"][-1]
    date = RECEIVED_DATE.search(received).group(1)
    text = json.dumps(message, ensure_ascii=False)
    text = text.replace(json.dumps(created)[1:-1], "{CREATED}")
    text = text.replace(date, "{DATE}").replace(message_id, "{ID}")
    return json.loads(text)


def key_order(value):
    """Every object's keys in order, recursively: Go's struct order matters to some clients."""
    if isinstance(value, dict):
        return [(key, key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_order(item) for item in value]
    return type(value).__name__


@pytest.mark.parametrize("name", SHAPES)
def test_message_json_matches_reference(sink, api, send_reference, name):
    expected = send_reference(sink, name)["message"]
    listing = api.get("/api/v2/messages").json()
    assert listing["total"] == 1 and listing["count"] == 1 and listing["start"] == 0
    from_v2 = listing["items"][0]
    from_v1 = api.get(f"/api/v1/messages/{from_v2['ID']}").json()
    assert from_v1 == from_v2
    assert api.get("/api/v1/messages").json() == [from_v2]
    actual = normalised(from_v2)
    assert actual == expected
    assert key_order(actual) == key_order(expected)


def test_stored_bytes_are_untouched(sink, api, send_reference):
    send_reference(sink, "bcc")
    item = api.get("/api/v2/messages").json()["items"][0]
    raw, _ = reference("bcc")
    download = api.get(f"/api/v1/messages/{item['ID']}/download")
    assert download.content == raw
    assert download.headers["content-type"] == "message/rfc822"
    assert download.headers["content-disposition"] == f'attachment; filename="{item["ID"]}.eml"'
    assert api.get(f"/api/v3/messages/{item['ID']}/raw").content == raw
    # The added Received/Return-Path/Message-ID live only in the JSON view.
    assert b"MailHog" not in raw and "MailHog" not in item["Raw"]["Data"]
