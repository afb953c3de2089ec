"""The OpenAPI 3.1 description of ``/api/v3``, served as JSON and as a readable page.

Written by hand next to the routes in ``api.py``; ``tests/sink/test_api.py``
checks that every route is described and every described path answers.
"""
from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = {"$ref": "#/components/responses/Error"}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
      "description": "message id"}
READ_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["read"], "properties": {
        "read": {"type": "boolean"},
        "ids": {"type": "array", "items": {"type": "string"},
                "description": "messages to change; omit for every message"}}}}}}

DESCRIPTION: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mailsink API",
        "version": "3",
        "description": (
            "Every message the sink caught: list and search, details, parts, raw source, "
            "read state, deletion, and a live event stream. Errors are JSON "
            '{"error": "..."} with a 4xx/5xx status. With --ui-auth-file every call '
            "needs HTTP basic auth."),
    },
    "paths": {
        "/api/v3/messages": {
            "get": {
                "summary": "List messages, newest first, optionally searched",
                "parameters": [
                    {"name": "query", "in": "query", "schema": {"type": "string"},
                     "description": "search: free text, \"phrase\", from:, to:, subject:, "
                                    "has:attachment, is:read, is:unread, before:DATE, "
                                    "after:DATE, -term to negate"},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
                    {"name": "before", "in": "query", "schema": {"type": "string"},
                     "description": "a message id: only messages older than it (fast paging; "
                                    "pass the previous page's next_before)"},
                    {"name": "start", "in": "query",
                     "schema": {"type": "integer", "minimum": 0, "default": 0},
                     "description": "offset (slow deep into a big mailbox; prefer before)"},
                ],
                "responses": {"200": _json(_ref("MessageList")), "400": ERROR},
            },
            "delete": {
                "summary": "Delete the listed messages, or every message when there is no body",
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "ids": {"type": "array", "items": {"type": "string"}}}}}}},
                "responses": {"200": _json({"type": "object", "properties": {
                    "deleted": {"oneOf": [{"type": "integer"},
                                          {"type": "array", "items": {"type": "string"}}]}}}),
                    "400": ERROR},
            },
            "patch": {
                "summary": "Mark the listed messages (or all) read or unread",
                "requestBody": READ_BODY,
                "responses": {"200": _json({"type": "object", "properties": {
                    "changed": {"oneOf": [{"type": "integer"},
                                          {"type": "array", "items": {"type": "string"}}]}}}),
                    "400": ERROR},
            },
        },
        "/api/v3/messages/{id}": {
            "parameters": [ID],
            "get": {"summary": "One message: summary, envelope, headers, bodies, MIME parts",
                    "responses": {"200": _json(_ref("Message")), "404": ERROR}},
            "patch": {"summary": "Mark one message read or unread",
                      "requestBody": {"required": True, "content": {"application/json": {
                          "schema": {"type": "object", "required": ["read"],
                                     "properties": {"read": {"type": "boolean"}}}}}},
                      "responses": {"200": _json({"type": "object"}), "400": ERROR,
                                    "404": ERROR}},
            "delete": {"summary": "Delete one message",
                       "responses": {"200": _json({"type": "object"}), "404": ERROR}},
        },
        "/api/v3/messages/{id}/raw": {
            "parameters": [ID],
            "get": {"summary": "The exact bytes received (.eml)",
                    "parameters": [{"name": "download", "in": "query",
                                    "schema": {"type": "string"},
                                    "description": "set to download as <id>.eml"}],
                    "responses": {"200": {"description": "the message",
                                          "content": {"message/rfc822": {}}},
                                  "404": ERROR}},
        },
        "/api/v3/messages/{id}/parts/{index}": {
            "parameters": [ID, {"name": "index", "in": "path", "required": True,
                                "schema": {"type": "integer"},
                                "description": "part index from the message's parts list"}],
            "get": {"summary": "One MIME part, decoded (attachments byte-exact)",
                    "parameters": [{"name": "inline", "in": "query", "schema": {"type": "string"},
                                    "description": "set to show instead of download"}],
                    "responses": {"200": {"description": "the part's bytes, with its type"},
                                  "400": ERROR, "404": ERROR}},
        },
        "/api/v3/events": {
            "get": {"summary": "Server-sent events: counts, new, deleted, read, unread",
                    "description": (
                        "`text/event-stream`. First a `counts` event, then `new` "
                        '(`{"id"}`), `deleted` (`{"ids"}` or `{"all": true}`), `read` / '
                        '`unread` (`{"ids"}` or `{"all": true}`); every event carries '
                        "`total` and `unread`. The same events come over a WebSocket at "
                        "`/api/v3/ws`, one JSON object each with the kind in `event`."),
                    "responses": {"200": {"description": "the stream",
                                          "content": {"text/event-stream": {}}}}},
        },
        "/api/v3/openapi.json": {
            "get": {"summary": "This description", "responses": {"200": _json({"type": "object"})}},
        },
    },
    "components": {
        "responses": {"Error": _json({"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}}}, "an error, explained")},
        "schemas": {
            "Summary": {"type": "object", "properties": {
                "id": {"type": "string"}, "received_at": {"type": "number"},
                "size": {"type": "integer"}, "from": {"type": "string"},
                "to": {"type": "array", "items": {"type": "string"}},
                "cc": {"type": "array", "items": {"type": "string"}},
                "subject": {"type": "string"}, "date": {"type": "string"},
                "message_id": {"type": "string"}, "snippet": {"type": "string"},
                "attachments": {"type": "integer"}, "read": {"type": "boolean"}}},
            "MessageList": {"type": "object", "properties": {
                "total": {"type": "integer", "description": "messages matching the query (a search is counted up to 10,000)"},
                "total_exact": {"type": "boolean", "description": "false when more than total match"},
                "unread": {"type": "integer", "description": "unread messages in the sink"},
                "start": {"type": "integer"}, "count": {"type": "integer"},
                "next_before": {"type": ["string", "null"],
                                "description": "pass as before= for the next page"},
                "messages": {"type": "array", "items": _ref("Summary")}}},
            "Envelope": {"type": "object", "properties": {
                "mail_from": {"type": "string"},
                "rcpt_tos": {"type": "array", "items": {"type": "string"}},
                "bcc": {"type": "array", "items": {"type": "string"},
                        "description": "recipients no To/Cc header names"},
                "helo": {"type": "string"}, "peer": {"type": "string"},
                "received_at": {"type": "number"},
                "tls_version": {"type": ["string", "null"]},
                "tls_cipher": {"type": ["string", "null"]},
                "auth_user": {"type": ["string", "null"]},
                "auth_mechanism": {"type": ["string", "null"]},
                "smtputf8": {"type": "boolean"}}},
            "Part": {"type": "object", "properties": {
                "index": {"type": "integer"}, "content_type": {"type": "string"},
                "charset": {"type": ["string", "null"]}, "encoding": {"type": ["string", "null"]},
                "disposition": {"type": ["string", "null"]},
                "filename": {"type": ["string", "null"]},
                "content_id": {"type": ["string", "null"]},
                "size": {"type": "integer", "description": "decoded bytes"},
                "encoded_size": {"type": "integer"}, "depth": {"type": "integer"},
                "is_multipart": {"type": "boolean"},
                "defects": {"type": "array", "items": {"type": "string"}},
                "url": {"type": "string", "description": "download URL (leaf parts)"}}},
            "Message": {"allOf": [_ref("Summary"), {"type": "object", "properties": {
                "envelope": _ref("Envelope"),
                "headers": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "value": {"type": "string"}}}},
                "text": {"type": ["string", "null"]}, "html": {"type": ["string", "null"]},
                "parts": {"type": "array", "items": _ref("Part")},
                "attachment_parts": {"type": "array", "items": _ref("Part"),
                                     "description": "the parts that are attachments"},
                "defects": {"type": "array", "items": {"type": "string"}},
                "parse_error": {"type": ["string", "null"]},
                "raw_url": {"type": "string"}}}]},
        },
    },
}
