"""The pytest plugin, run the way a user's suite runs it (pytester), with the examples."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    result.assert_outcomes(passed=4)


def test_django_example(project):
    pytest.importorskip("django")  # in the test extra: installed wherever the suite runs
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
    pytest.importorskip("xdist")  # in the test extra
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
