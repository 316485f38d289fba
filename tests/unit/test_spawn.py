"""Spawner bookkeeping with a fake process layer: no real fork needed."""

import os
import signal
from types import SimpleNamespace

import pytest

from ftpd.server.child import StopFlag
from ftpd.server.library import Library, temp_name
from ftpd.server.spawn import (Child, Finished, ForkSpawner, ProcessOps, ThreadSpawner,
                               spawner_for)


class FakeOps(ProcessOps):
    def __init__(self, waits):
        self.waits = list(waits)     # what successive waitpid calls return/raise
        self.next_pid = 100
        self.killed = []

    def fork(self):
        self.next_pid += 1
        return self.next_pid

    def waitpid(self, pid, options):
        assert (pid, options) == (-1, os.WNOHANG)
        result = self.waits.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result

    def kill(self, pid, signum):
        if pid == 102:
            raise ProcessLookupError()
        self.killed.append((pid, signum))


def make(waits):
    ops = FakeOps(waits)
    return ForkSpawner(lambda: None, ops), ops


START = None     # what a child would take along; the parent side never reads it


def exit_status(code):
    return code << 8


def test_spawn_counts_per_ip():
    spawner, _ = make([])
    assert spawner.spawn(None, ("10.0.0.1", 1), START) == 101
    spawner.spawn(None, ("10.0.0.1", 2), START)
    spawner.spawn(None, ("10.0.0.2", 3), START)
    assert len(spawner) == 3
    assert spawner.count_ip("10.0.0.1") == 2
    assert spawner.count_ip("10.0.0.9") == 0


def test_reap_loops_until_zero_and_reports_each():
    spawner, ops = make([(101, exit_status(0)), (102, signal.SIGKILL), (0, 0)])
    spawner.spawn(None, ("a", 1), START)
    spawner.spawn(None, ("a", 2), START)
    spawner.spawn(None, ("b", 3), START)
    finished = spawner.reap()
    assert [(f.child.ident, f.status, f.clean) for f in finished] == [
        (101, "exit 0", True), (102, "signal 9", False)]
    assert list(spawner.children) == [103]
    assert spawner.count_ip("a") == 0 and "a" not in spawner.per_ip
    assert ops.waits == []


def test_reap_stops_on_echild_and_ignores_unknown_pids():
    spawner, ops = make([(999, 0), InterruptedError(), (101, exit_status(3)),
                         ChildProcessError()])
    spawner.spawn(None, ("a", 1), START)
    finished = spawner.reap()
    assert [(f.child.ident, f.status, f.clean) for f in finished] == [(101, "exit 3", False)]
    assert len(spawner) == 0


def test_signal_all_tolerates_already_dead_children():
    spawner, ops = make([])
    for port in (1, 2, 3):
        spawner.spawn(None, ("a", port), START)
    spawner.terminate_all()
    spawner.kill_all()
    assert ops.killed == [(101, signal.SIGTERM), (103, signal.SIGTERM),
                          (101, signal.SIGKILL), (103, signal.SIGKILL)]


def test_stop_flag_is_level_triggered_and_pollable():
    flag = StopFlag()
    try:
        assert not flag.is_set()
        flag.trigger()
        flag.trigger()
        assert flag.is_set() and flag.is_set()
        assert isinstance(flag.fileno(), int)
    finally:
        flag.close()


def test_the_concurrency_setting_picks_the_model():
    assert isinstance(spawner_for("fork", lambda: None, lambda: None), ForkSpawner)
    threaded = spawner_for("thread", lambda: None, lambda: None)
    assert isinstance(threaded, ThreadSpawner)
    threaded.stop.close()


@pytest.mark.parametrize("chroot, uid, warned", [(False, None, False), (True, None, True),
                                                 (False, 1000, True)])
def test_only_the_thread_model_warns_that_it_cannot_confine(chroot, uid, warned):
    guard = SimpleNamespace(plan=SimpleNamespace(chroot=chroot, uid=uid), seccomp="no",
                            landlock_abi=0)
    spawner, _ = make([])
    assert spawner.caveats(guard) == []
    threaded = ThreadSpawner(lambda: None)
    assert bool(threaded.caveats(guard)) == warned
    threaded.stop.close()


@pytest.mark.parametrize("seccomp, landlock, expected", [
    ("no", 0, []), ("yes", 0, ["seccomp = yes has no effect"]),
    ("log", 3, ["seccomp = log has no effect", "not restricted by Landlock"]),
    ("no", 1, ["not restricted by Landlock"])])
def test_the_thread_model_warns_that_it_has_no_sandbox(seccomp, landlock, expected):
    guard = SimpleNamespace(plan=SimpleNamespace(chroot=False, uid=None), seccomp=seccomp,
                            landlock_abi=landlock)
    spawner, _ = make([])
    assert spawner.caveats(guard) == []
    threaded = ThreadSpawner(lambda: None)
    caveats = threaded.caveats(guard)
    assert len(caveats) == len(expected)
    for caveat, words in zip(caveats, expected, strict=True):
        assert words in caveat
    threaded.stop.close()


def test_a_dead_child_pid_names_the_temps_to_remove_a_thread_ident_none(tmp_path):
    library = Library(str(tmp_path))
    try:
        mine, other = (temp_name(library.node_pid, pid) for pid in (4242, 4343))
        for name in (mine, other):
            (tmp_path / name).write_bytes(b"half")
        dead = Finished(Child(4242, ("a", 1)), "signal 9", False)
        threaded = ThreadSpawner(lambda: None)
        threaded.tidy(dead, library)
        threaded.stop.close()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine, other])
        make([])[0].tidy(dead, library)
        assert [p.name for p in tmp_path.iterdir()] == [other]
    finally:
        library.close()
