"""A Django project's conftest: mail goes out through Django's SMTP backend to mailsink.

Django is configured in-process here; a real project has its settings module (and
with pytest-django, which switches to the in-memory backend for tests, set
``settings.EMAIL_BACKEND`` back to the SMTP one in this fixture).
"""
import django
import pytest
from django.conf import settings
from django.test.utils import override_settings

settings.configure(
    EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
    DEFAULT_FROM_EMAIL="Shop <shop@example.com>",
)
django.setup()


@pytest.fixture(autouse=True)
def mail_goes_to_mailsink(mailsink):
    """Point Django's SMTP settings at this test's sink."""
    with override_settings(EMAIL_HOST=mailsink.smtp_host, EMAIL_PORT=mailsink.smtp_port):
        yield
