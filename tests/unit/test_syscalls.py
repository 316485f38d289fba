"""The seccomp filter as the parent compiles it and a child loads it: one
BPF program made before the fork, loaded by a single seccomp(2) call."""

import _thread
import os
import signal
import socket

import pytest

from ftpd.server import confine, syscalls

needs_libseccomp = pytest.mark.skipif(not syscalls.available(), reason="no libseccomp")


def in_child(act) -> int:
    """Run `act` in a forked child; its wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            act()
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def test_no_filter_for_mode_no():
    assert syscalls.build("no") is None


@needs_libseccomp
def test_the_program_is_compiled_once_in_the_parent():
    strict, logging = syscalls.build("yes"), syscalls.build("log")
    assert strict.code and len(strict.code) % 8 == 0      # whole BPF instructions
    assert strict.code != logging.code                    # the default action differs


@needs_libseccomp
def test_a_loaded_program_allows_the_listed_calls_and_kills_on_the_others():
    program = syscalls.build("yes")

    def confined(then):
        def act():
            confine.no_new_privs()
            syscalls.install(program)
            then()
        return act

    status = in_child(confined(lambda: os.write(os.open(os.devnull, os.O_WRONLY), b"x")))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    status = in_child(confined(lambda: socket.socket().close()))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


@needs_libseccomp
def test_a_thread_started_before_the_filter_is_filtered_too():
    """The upload hasher starts before confinement: TSYNC must reach it."""
    program = syscalls.build("yes")

    def act():
        parked = _thread.allocate_lock()
        parked.acquire()
        _thread.start_new_thread(parked.acquire, ())
        confine.no_new_privs()
        syscalls.install(program)
        modes = []
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/status") as status:
                modes += [line.split()[1] for line in status if line.startswith("Seccomp:")]
        os._exit(0 if len(modes) == 2 and set(modes) == {"2"} else 1)

    status = in_child(act)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
