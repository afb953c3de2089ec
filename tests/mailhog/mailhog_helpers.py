"""Shared helpers for the MailHog-compatibility tests (imported by name: no package)."""
from __future__ import annotations

import json
import pathlib

REFERENCE = pathlib.Path(__file__).parent / "reference"
SHAPES = ("plain", "alternative", "nested", "nonascii", "bcc")


def reference(name: str) -> tuple[bytes, dict]:
    """The raw message and its expected envelope + MailHog JSON."""
    raw = (REFERENCE / f"{name}.eml").read_bytes()
    return raw, json.loads((REFERENCE / f"{name}.json").read_text(encoding="utf-8"))
