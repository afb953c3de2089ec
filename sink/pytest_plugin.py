"""pytest plugin (auto-loaded through the ``pytest11`` entry point): the ``mailsink`` fixture.

``mailsink`` is a running ``Sink`` on free loopback ports. One sink serves the whole
test session (one per xdist worker) and is cleared before each test, so a test pays
milliseconds, not a server start. Options are the settings of ``mailsink serve``:
``mailsink_<name>`` ini options configure the session's sink, and
``@pytest.mark.mailsink(name=value, ...)`` asks for different ones for a test, which
then gets a sink of its own (shared with, and cleared between, tests that ask for the
same options). When a test that used the fixture fails, its report lists the mail
the sink caught.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from .caught import listing
from .embedded import Sink
from .settings import OPTIONS, Option, Settings, SettingsError

INI_PREFIX = "mailsink_"
MARKER = "mailsink"
_SINK_KEY = pytest.StashKey[Sink]()
_SETTINGS_KEY = pytest.StashKey[Settings]()
_OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


def pytest_addoption(parser: pytest.Parser) -> None:
    for option in OPTIONS:
        parser.addini(INI_PREFIX + option.name, default=None,
                      help=f"mailsink fixture: {option.help}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**options): give this test's mailsink fixture a sink with these "
        "options (any `mailsink serve` setting, e.g. max_size=1000)")


def _parsed(option: Option, value: Any, source: str) -> Any:
    if value is None:
        return None
    try:
        return option.parse(str(value))
    except ValueError as error:
        raise pytest.UsageError(f"{source}: {option.name}={value!r}: {error}") from None


def session_settings(config: pytest.Config) -> Settings:
    """The session sink's settings: free loopback ports, then the ``mailsink_*`` ini options."""
    if _SETTINGS_KEY in config.stash:
        return config.stash[_SETTINGS_KEY]
    changes = {}
    for option in OPTIONS:
        value = config.getini(INI_PREFIX + option.name)
        if value not in (None, ""):
            changes[option.name] = _parsed(option, value, f"ini option {INI_PREFIX}{option.name}")
    settings = config.stash[_SETTINGS_KEY] = Settings(smtp_port=0, http_port=0).replace(**changes)
    return settings


def marker_settings(base: Settings, marker: pytest.Mark | None) -> Settings:
    """``base`` with the marker's keyword options applied (validated like the CLI)."""
    if marker is None:
        return base
    if marker.args:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword options only, "
                                f"e.g. @pytest.mark.{MARKER}(max_size=1000)")
    changes = {}
    for name, value in marker.kwargs.items():
        option = _OPTIONS_BY_NAME.get(name)
        if option is None:
            raise pytest.UsageError(f"@pytest.mark.{MARKER}: unknown option {name!r}; known: "
                                    + ", ".join(_OPTIONS_BY_NAME))
        changes[name] = _parsed(option, value, f"@pytest.mark.{MARKER}")
    return base.replace(**changes)


class _SinkPool:
    """The session's sinks, one per distinct set of options, started when first asked for."""

    def __init__(self) -> None:
        self._sinks: dict[str, Sink] = {}

    def get(self, settings: Settings) -> Sink:
        key = repr(settings)
        sink = self._sinks.get(key)
        if sink is None:
            try:
                sink = Sink(settings).start()
            except (OSError, RuntimeError, SettingsError) as error:
                pytest.fail(f"mailsink: the sink did not start: {error}", pytrace=False)
            self._sinks[key] = sink
        return sink

    def stop_all(self) -> None:
        for sink in self._sinks.values():
            sink.stop()
        self._sinks.clear()


@pytest.fixture(scope="session")
def _mailsink_pool() -> Iterator[_SinkPool]:
    pool = _SinkPool()
    yield pool
    pool.stop_all()


@pytest.fixture
def mailsink(request: pytest.FixtureRequest, _mailsink_pool: _SinkPool) -> Iterator[Sink]:
    """A running, empty ``Sink``: ``smtp_host``, ``smtp_port``, ``messages``, ``wait_for``..."""
    settings = marker_settings(session_settings(request.config),
                               request.node.get_closest_marker(MARKER))
    sink = _mailsink_pool.get(settings)
    sink.clear()
    request.node.stash[_SINK_KEY] = sink
    yield sink


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    sink = item.stash.get(_SINK_KEY, None)
    if sink is not None and report.failed and report.when == "call":
        try:
            caught = listing(sink.messages)
        except Exception as error:  # the report must not fail because the sink did
            caught = f"  (could not read the sink: {error})"
        report.sections.append(("mailsink: caught mail", caught))
    return report
