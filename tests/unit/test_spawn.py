"""Spawner bookkeeping with a fake process layer: no real fork needed."""

import os
import signal

from ftpd.server.spawn import ForkSpawner, ProcessOps, StopFlag


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
    return ForkSpawner(lambda *a: 0, lambda: None, ops), ops


def exit_status(code):
    return code << 8


def test_spawn_counts_per_ip():
    spawner, _ = make([])
    assert spawner.spawn(None, ("10.0.0.1", 1)) == 101
    spawner.spawn(None, ("10.0.0.1", 2))
    spawner.spawn(None, ("10.0.0.2", 3))
    assert len(spawner) == 3
    assert spawner.count_ip("10.0.0.1") == 2
    assert spawner.count_ip("10.0.0.9") == 0


def test_reap_loops_until_zero_and_reports_each():
    spawner, ops = make([(101, exit_status(0)), (102, signal.SIGKILL), (0, 0)])
    spawner.spawn(None, ("a", 1))
    spawner.spawn(None, ("a", 2))
    spawner.spawn(None, ("b", 3))
    finished = spawner.reap()
    assert [(f.child.ident, f.status, f.clean) for f in finished] == [
        (101, "exit 0", True), (102, "signal 9", False)]
    assert list(spawner.children) == [103]
    assert spawner.count_ip("a") == 0 and "a" not in spawner.per_ip
    assert ops.waits == []


def test_reap_stops_on_echild_and_ignores_unknown_pids():
    spawner, ops = make([(999, 0), InterruptedError(), (101, exit_status(3)),
                         ChildProcessError()])
    spawner.spawn(None, ("a", 1))
    finished = spawner.reap()
    assert [(f.child.ident, f.status, f.clean) for f in finished] == [(101, "exit 3", False)]
    assert len(spawner) == 0


def test_signal_all_tolerates_already_dead_children():
    spawner, ops = make([])
    for port in (1, 2, 3):
        spawner.spawn(None, ("a", port))
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
