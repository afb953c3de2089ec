"""mailsink: a local SMTP test sink and inspector.

Public API: ``Settings`` (configuration) and the embeddable ``Sink`` for tests.
"""
from .embedded import Sink
from .settings import Settings

__all__ = ["Sink", "Settings"]
