"""mailsink: a local SMTP test sink and inspector.

Public API: ``Settings`` (configuration) and the embeddable ``Sink`` for tests, with
the ``CaughtMessage`` records it returns and the ``MailNotReceived`` it raises.
"""
from .caught import Attachment, CaughtMessage, MailNotReceived
from .embedded import Sink
from .settings import Settings

__all__ = ["Sink", "Settings", "CaughtMessage", "Attachment", "MailNotReceived"]
