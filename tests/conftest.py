"""Shared fixtures over tests/harness.py, and the suite's markers.

The daemon listens on port 0 and the fixture reads the port it got from the
"listening on" log line, so parallel runs never race for a free port.
Every test is marked `unit`, `functional` or `system` by its directory
(`pytest -m unit` runs the fast in-process ones).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.harness import (SUMMARY_KEY, Daemon, LocalSession, add_summary_line, start_daemons,
                           summary_lines)

TESTS = Path(__file__).resolve().parent
KINDS = ("unit", "functional", "system")


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background by a non-interactive shell (`cmd &`,
    nohup) inherits SIGINT ignored, and so would every ftpc it starts: the
    Ctrl-C tests need it as a terminal gives it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Mark each test by its directory, unless it says its kind itself (a
    functional file's test that needs root is `system`)."""
    for item in items:
        kind = item.path.relative_to(TESTS).parts[0]
        if kind in KINDS and not any(item.get_closest_marker(k) for k in KINDS):
            item.add_marker(getattr(pytest.mark, kind))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist: keep the summary lines a worker had for the controller's terminal."""
    for line in getattr(node, "workeroutput", {}).get(SUMMARY_KEY, []):
        add_summary_line(node.config, line)


def pytest_terminal_summary(terminalreporter, config) -> None:
    for line in summary_lines(config):
        terminalreporter.write_line(line)


@pytest.fixture(params=["fork", "thread"])
def concurrency(request) -> str:
    """Every daemon test runs in both session models. A test that only makes
    sense for one uses @fork_only, or passes [server] concurrency itself."""
    return request.param


@pytest.fixture
def make_daemon(tmp_path, concurrency) -> Iterator:
    """Factory: make_daemon(settings={...}) starts a daemon; all are cleaned up."""
    started: List[Daemon] = []

    def factory(settings=None, args=None, env=None, start=True, name="d") -> Daemon:
        return start_daemons(tmp_path, concurrency, started, settings, args, env, start, name)

    yield factory
    for daemon in started:
        daemon.kill_everything()


@pytest.fixture
def daemon(make_daemon) -> Daemon:
    return make_daemon()


@pytest.fixture
def home(tmp_path) -> Path:
    """A HOME of its own for ftpc (its history file, its config)."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def local_session(tmp_path) -> Iterator[LocalSession]:
    """A Session in this process over a socketpair, on an empty library."""
    with LocalSession(tmp_path / "library") as session:
        yield session
