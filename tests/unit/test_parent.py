"""The parent's life as one State, and its signal handlers driving a fake spawner
(no fork, no thread): what each signal does to the state and the sessions."""

import socket

import pytest

from ftpd import config as config_mod
from ftpd.server.parent import REAP_INTERVAL, Phase, Server, State
from ftpd.server.spawn import Child, Finished, Spawner


# -- the state alone -------------------------------------------------------------------

def test_a_new_server_serves_and_polls_at_the_reap_interval():
    state = State()
    assert state.phase is Phase.SERVING and state.accepting
    assert not state.finished(0) and not state.overdue(float("inf"))
    assert state.poll_timeout(now=100.0) == REAP_INTERVAL


def test_term_drains_until_its_deadline_and_a_second_term_keeps_it():
    draining = State().drain(deadline=130.0)
    assert draining == State(Phase.DRAINING, 130.0) and not draining.accepting
    assert draining.drain(deadline=999.0) is draining
    assert draining.poll_timeout(now=100.0) == 1.0           # wakes to watch the deadline
    assert draining.poll_timeout(now=129.5) == 0.5
    assert draining.poll_timeout(now=140.0) == 0.0
    assert not draining.overdue(now=129.9) and draining.overdue(now=130.0)
    assert not draining.finished(1) and draining.finished(0)


@pytest.mark.parametrize("before", [State(), State().drain(5.0), State().stop()])
def test_stop_is_reachable_from_every_state_and_never_overdue(before):
    stopping = before.stop()
    assert stopping.phase is Phase.STOPPING and not stopping.accepting
    assert not stopping.overdue(now=float("inf"))
    assert stopping.poll_timeout(now=0.0) == REAP_INTERVAL
    assert not stopping.finished(2) and stopping.finished(0)


def test_term_after_int_does_not_start_a_drain():
    stopping = State().stop()
    assert stopping.drain(deadline=1.0) is stopping


# -- the handlers --------------------------------------------------------------------

class FakeSpawner(Spawner):
    """Sessions that end only when told to, and a record of what was asked."""

    def __init__(self, sessions=0, obey=True):
        super().__init__()
        self.calls = []
        self.obey = obey            # False: the sessions ignore SIGTERM
        self.ended = []
        for ident in range(1, sessions + 1):
            self._add(Child(ident, ("127.0.0.1", 40000 + ident)))

    def spawn(self, conn, peer, start):
        raise AssertionError("no client connects in these tests")

    def reap(self):
        self.calls.append("reap")
        done = [Finished(self._remove(ident), status, clean) for ident, status, clean in self.ended]
        self.ended = []
        return done

    def end_all(self, status, clean):
        self.ended = [(ident, status, clean) for ident in self.children]

    def terminate_all(self):
        self.calls.append("terminate_all")
        if self.obey:
            self.end_all("exit 0", True)

    def kill_all(self):
        self.calls.append("kill_all")
        self.end_all("signal 9", False)

    def retire(self, release):
        release()

    def caveats(self, guard):
        return []

    def tidy(self, finished, library):
        self.calls.append(f"tidy {finished.child.ident}")


@pytest.fixture
def make_server(tmp_path):
    servers = []

    def make(spawner, shutdown_timeout="30"):
        config = config_mod.build({("server", "root"): str(tmp_path / "library"),
                                   ("server", "shutdown_timeout"): shutdown_timeout})
        listener = socket.create_server(("127.0.0.1", 0))
        notes = []
        server = Server(config, reload_config=lambda: config,
                        bound={("127.0.0.1", 0): [listener]}, notify=notes.append)
        server.spawner = spawner
        servers.append(server)
        return server, listener, notes

    yield make
    for server in servers:
        server.close()


def test_sigterm_closes_the_listeners_and_asks_the_sessions_to_finish(make_server):
    spawner = FakeSpawner(sessions=2, obey=False)
    server, listener, notes = make_server(spawner)
    server.handle_sigterm()
    assert server.state.phase is Phase.DRAINING
    assert listener.fileno() == -1 and server.sockets() == []
    assert notes == ["STOPPING=1"] and spawner.calls == ["terminate_all"]
    server.handle_sigterm()                                   # a second TERM: nothing more
    assert notes == ["STOPPING=1"] and spawner.calls == ["terminate_all"]
    server.check_drain_deadline()                             # 30 s are not over
    assert server.state.phase is Phase.DRAINING and len(spawner) == 2


def test_a_drain_past_its_deadline_kills_and_stops(make_server):
    spawner = FakeSpawner(sessions=2, obey=False)
    server, _, _ = make_server(spawner, shutdown_timeout="0")
    server.handle_sigterm()
    server.check_drain_deadline()
    assert server.state.phase is Phase.STOPPING
    assert spawner.calls == ["terminate_all", "kill_all", "reap", "tidy 1", "tidy 2"]
    assert server.state.finished(len(spawner))


def test_sessions_that_obey_the_drain_end_it_without_a_kill(make_server):
    spawner = FakeSpawner(sessions=2)
    server, _, _ = make_server(spawner, shutdown_timeout="0")
    server.handle_sigterm()
    server.handle_sigchld()
    server.check_drain_deadline()                             # nobody left to kill
    assert spawner.calls == ["terminate_all", "reap"]         # clean ends: nothing to tidy
    assert server.state.phase is Phase.DRAINING and server.state.finished(len(spawner))


def test_sigint_during_a_drain_kills_at_once(make_server):
    spawner = FakeSpawner(sessions=1, obey=False)
    server, _, notes = make_server(spawner)
    server.handle_sigterm()
    server.handle_sigint()
    assert server.state.phase is Phase.STOPPING
    assert spawner.calls == ["terminate_all", "kill_all", "reap", "tidy 1"]
    assert notes == ["STOPPING=1", "STOPPING=1"]
    server.handle_sigterm()                                   # too late to drain
    assert server.state.phase is Phase.STOPPING and spawner.calls[-1] == "tidy 1"
