"""The pytest plugin, run the way a user's suite runs it (pytester), with the examples."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
# cryptography cannot be imported twice in one process (its Rust extension keeps the
# classes of the first import), and pytester forgets the modules an inline run
# imported. So import what sink.smtp.tls imports lazily here, before any run.
from cryptography import x509  # noqa: F401
from cryptography.hazmat.primitives import hashes, serialization  # noqa: F401
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: F401
from cryptography.x509 import oid  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# The runs below load only the plugins they name: the same with or without mailsink
# installed (its pytest11 entry point is checked by the wheel test in test_docker.py),
# and no time spent on whatever other plugins this machine has.
PLUGIN = ["-p", "sink.pytest_plugin"]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's project directory; subprocess runs find ``sink`` without installing it."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return pytester


def copy_example(project: pytest.Pytester, name: str) -> None:
    for source in sorted((EXAMPLES / name).glob("*.py")):
        (project.path / source.name).write_text(source.read_text())


def test_smtplib_example(project):
    copy_example(project, "pytest-smtplib")
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(passed=5)


def test_django_example(project):
    import django  # noqa: F401  (the test extra has it: a missing one fails, never skips)
    copy_example(project, "pytest-django")
    # A subprocess: Django's settings are global to the process that configures them.
    result = project.runpytest_subprocess(*PLUGIN)
    result.assert_outcomes(passed=3)


def test_one_sink_per_session_cleared_before_each_test(project):
    project.makepyfile(test_session="""
        import smtplib

        ports = []

        def send(sink):
            with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\\r\\n\\r\\nx\\r\\n")

        def test_first(mailsink):
            ports.append(mailsink.smtp_port)
            send(mailsink)
            send(mailsink)
            assert len(mailsink.wait_for(count=2)) == 2

        def test_second_starts_empty_on_the_same_server(mailsink):
            ports.append(mailsink.smtp_port)
            assert mailsink.messages == []
            send(mailsink)
            assert len(mailsink.messages) == 1

        def test_same_server_throughout():
            assert len(set(ports)) == 1
    """)
    project.runpytest(*PLUGIN).assert_outcomes(passed=3)


def test_marker_gives_a_sink_with_other_options(project):
    project.makepyfile(test_marker="""
        import smtplib
        import pytest

        seen = {}

        def ehlo(sink):
            with smtplib.SMTP(sink.smtp_host, sink.smtp_port) as client:
                return client.ehlo()[1].decode()

        def test_default(mailsink):
            seen["default"] = mailsink.smtp_port
            assert "SIZE 52428800" in ehlo(mailsink)

        @pytest.mark.mailsink(max_size=1000, hostname="marked.test")
        def test_marked(mailsink):
            seen["marked"] = mailsink.smtp_port
            reply = ehlo(mailsink)
            assert "SIZE 1000" in reply and "marked.test" in reply

        @pytest.mark.mailsink(max_size="1000", hostname="marked.test")
        def test_same_options_share_that_sink(mailsink):
            assert mailsink.smtp_port == seen["marked"] != seen["default"]
            assert mailsink.messages == []

        @pytest.mark.mailsink(max_size=52428800)
        def test_options_equal_to_the_default_use_the_session_sink(mailsink):
            assert mailsink.smtp_port == seen["default"]
    """)
    project.runpytest(*PLUGIN).assert_outcomes(passed=4)


def test_ini_options_configure_the_session_sink(project):
    project.makeini("""
        [pytest]
        mailsink_max_size = 2000
        mailsink_hostname = from-ini.test
    """)
    project.makepyfile(test_ini="""
        import smtplib

        def test_ini(mailsink):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                reply = client.ehlo()[1].decode()
            assert "SIZE 2000" in reply and "from-ini.test" in reply
            assert mailsink.settings.smtp_port == 0  # still a free port
    """)
    project.runpytest(*PLUGIN).assert_outcomes(passed=1)


def test_tls_and_auth_from_ini_and_marker(project):
    project.makeini("""
        [pytest]
        mailsink_auth = any
        mailsink_require_auth = true
    """)
    project.makepyfile(test_secure="""
        import smtplib
        import pytest

        def test_login_is_required(mailsink):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                client.starttls(context=mailsink.client_ssl_context())
                with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                    client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\\r\\n\\r\\nx\\r\\n")
                assert refused.value.smtp_code == 530
                client.login("app", "secret")
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\\r\\n\\r\\nx\\r\\n")
            [mail] = mailsink.wait_for()
            assert mail.envelope.auth_user == "app"

        @pytest.mark.mailsink(smtps_port=0)
        def test_implicit_tls_port(mailsink):
            assert mailsink.smtps_port
            with smtplib.SMTP_SSL(mailsink.smtp_host, mailsink.smtps_port,
                                  context=mailsink.client_ssl_context()) as client:
                client.login("app", "secret")
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: smtps\\r\\n\\r\\nx\\r\\n")
            [mail] = mailsink.wait_for(subject="smtps")
            assert mail.envelope.tls_version

        @pytest.mark.mailsink(auth="off", require_auth=False)
        def test_marker_turns_auth_off_again(mailsink):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: open\\r\\n\\r\\nx\\r\\n")
            assert [m.subject for m in mailsink.messages] == ["open"]
    """)
    project.runpytest(*PLUGIN).assert_outcomes(passed=3)


def test_contradictory_options_fail_the_test_clearly(project):
    project.makepyfile(test_bad="""
        import pytest

        @pytest.mark.mailsink(require_tls=True, no_starttls=True)
        def test_contradiction(mailsink):
            pass
    """)
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mailsink: the sink did not start: --require-tls needs STARTTLS*"])


def test_bad_options_are_usage_errors(project):
    project.makeini("""
        [pytest]
        mailsink_max_size = lots
    """)
    project.makepyfile(test_bad="def test_bad(mailsink): pass\n")
    result = project.runpytest(*PLUGIN)
    result.stdout.fnmatch_lines(["*ini option mailsink_max_size: max_size='lots'*"])
    assert result.ret != 0


def test_unknown_marker_option_names_the_known_ones(project):
    project.makepyfile(test_bad="""
        import pytest

        @pytest.mark.mailsink(max_sise=10)
        def test_typo(mailsink):
            pass
    """)
    result = project.runpytest(*PLUGIN)
    result.stdout.fnmatch_lines(["*unknown option 'max_sise'; known: listen, *max_size*"])
    assert result.ret != 0


def test_failure_report_lists_caught_mail(project):
    project.makepyfile(test_fails="""
        import smtplib

        def test_wrong_recipient(mailsink):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                client.sendmail("shop@example.com", ["ada@example.com"],
                                b"To: ada@example.com\\r\\nSubject: Your receipt\\r\\n\\r\\nx\\r\\n")
            mailsink.wait_for(to="grace@example.com", timeout=0.2)

        def test_plain_failure_after_mail(mailsink):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                client.sendmail("shop@example.com", ["bob@example.com"],
                                b"Subject: Hello Bob\\r\\n\\r\\nx\\r\\n")
            assert mailsink.messages[0].subject == "Goodbye"
    """)
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*MailNotReceived: expected 1 message matching to='grace@example.com' within 0.2 s, "
        "got 0; the sink holds 1:",
        "*1. shop@example.com -> ada@example.com  subject 'Your receipt'",
    ])
    result.stdout.fnmatch_lines([
        "*- mailsink: caught mail -*",
        "  1. shop@example.com -> bob@example.com  subject 'Hello Bob'",
    ])
    # The library's own frames stay out of the traceback.
    assert "embedded.py" not in result.stdout.str()


def test_one_sink_per_xdist_worker(project):
    import xdist  # noqa: F401  (the test extra has it: a missing one fails, never skips)
    project.makepyfile(test_workers="""
        import os
        import pathlib
        import smtplib
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_send(mailsink, n):
            with smtplib.SMTP(mailsink.smtp_host, mailsink.smtp_port) as client:
                client.sendmail("a@example.com", [f"n{n}@example.com"], b"Subject: x\\r\\n\\r\\nx\\r\\n")
            [mail] = mailsink.wait_for(timeout=2)
            assert mail.rcpt_tos == [f"n{n}@example.com"]
            with open(pathlib.Path(__file__).parent / "ports.txt", "a") as ports:
                ports.write(f"{os.environ['PYTEST_XDIST_WORKER']} {mailsink.smtp_port}\\n")
    """)
    result = project.runpytest_subprocess(*PLUGIN, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=8)
    lines = set((project.path / "ports.txt").read_text().splitlines())
    workers = {line.split()[0] for line in lines}
    assert len(workers) == 2 and len(lines) == 2, lines  # each worker: one sink, one port


def test_plugin_does_not_start_a_sink_unless_asked(project):
    project.makepyfile(test_plain="""
        import threading

        def test_no_sink_thread():
            assert not [t for t in threading.enumerate() if t.name == "mailsink"]
    """)
    project.runpytest(*PLUGIN).assert_outcomes(passed=1)
