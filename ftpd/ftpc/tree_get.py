"""`get -r DIR [LOCAL]`: a tree from the server, as a mirror.

The remote tree is listed with the pipelined walk; files whose local copy
has the same size are compared by pipelined H and skipped when identical.
The downloads travel as a sliding window of H+G pairs sent ahead, so
10,000 small files do not cost 10,000 round trips and the server never
waits for the next request. Each file is written to its hidden
part file, verified by SHA-256, given the server's modification time and
only then, once durable, renamed to its final name (a batch of files at a
time after one syncfs: see Committer).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Set, Tuple

from ftpd import protocol
from ftpd.client import Client, Entry, IntegrityError, LocalError, ServerError
from ftpd.client.local import Discard, Hashing, make_durable, prefix_digest
from ftpd.client.overlap import OverlappedDigest
from ftpd.ftpc.paths import join, absolute
from ftpd.ftpc.transfer import (ASIDE_SUFFIX, Cancelled, LocalFileError, ProgressFactory,
                                commit_part, no_bar, open_part, part_path)
from ftpd.ftpc.tree import (FatalErrors, Interrupts, KeepGoing, Say, Summary, TreeOptions,
                            abort, differs, file_digest, finish)

WINDOW_BYTES = 16 << 10      # H+G requests in flight at most, in request bytes
COMMIT_FILES = 256           # verified files made durable together, then renamed
COMMIT_BYTES = 64 << 20


@dataclass(frozen=True)
class Job:
    remote: str                 # wire path
    target: str                 # local final path
    entry: Entry
    offset: int = 0             # bytes already held (part file, or adopted local file)
    replace: bool = False       # the final name may be replaced (--force, --continue)
    adopt: bool = False         # the existing local file is the prefix (--continue)


def get_tree(client: Client, remote_root: str, local_root: str, options: TreeOptions,
             bar: ProgressFactory, say: Say) -> Summary:
    summary = Summary("received")
    dirs, files = remote_listing(client, remote_root)
    local_root = os.path.expanduser(local_root)
    broken = make_local_dirs(local_root, dirs, summary, say)
    with Interrupts() as interrupts:
        try:
            jobs = plan(client, remote_root, local_root, files, broken, options, summary, say,
                        interrupts)
            receive_all(client, jobs, bar if jobs else no_bar, summary, say, interrupts)
        except FatalErrors as exc:
            if isinstance(exc, KeyboardInterrupt):
                client.close()      # file bytes may be in flight
            abort(summary, exc, say)
            if isinstance(exc, KeyboardInterrupt):
                raise Cancelled("get -r aborted; the files received last stay in their "
                                "hidden part files, completed by the next get -r") from exc
            raise
    return finish(summary, interrupts, say)


def remote_listing(client: Client, remote_root: str) -> Tuple[List[str], List[Tuple[str, Entry]]]:
    """(directories parents first, (relative path, Entry) of each file)."""
    cut = len(remote_root) + 1 if remote_root else 0
    dirs: List[str] = []
    files: List[Tuple[str, Entry]] = []
    for dirpath, dirnames, found in client.walk(remote_root or None):
        rel_dir = dirpath[cut:]
        dirs += [join(rel_dir, name) for name in dirnames]
        files += [(join(rel_dir, entry.name), entry) for entry in found]
    return dirs, files


def local_path(local_root: str, rel: str) -> str:
    return os.path.join(local_root, *rel.split("/")) if rel else local_root


def make_local_dirs(local_root: str, dirs: List[str], summary: Summary, say: Say) -> Set[str]:
    try:
        os.makedirs(local_root, exist_ok=True)
    except OSError as exc:
        raise LocalFileError(f"cannot create {local_root}: {exc.strerror}") from exc
    broken: Set[str] = set()
    for rel in dirs:
        if rel.rpartition("/")[0] in broken:
            broken.add(rel)
            continue
        try:
            os.makedirs(local_path(local_root, rel), exist_ok=True)
        except OSError as exc:
            broken.add(rel)
            summary.fail(local_path(local_root, rel), exc, say)
    return broken


def plan(client: Client, remote_root: str, local_root: str, files: List[Tuple[str, Entry]],
         broken: Set[str], options: TreeOptions, summary: Summary, say: Say,
         interrupts: Interrupts) -> List[Job]:
    """The downloads to make; same-size local files are compared by SHA-256
    (H pipelined) and skipped when identical (their time set to the server's)."""
    jobs: List[Job] = []
    compare: List[Job] = []
    for rel, entry in files:
        if rel.rpartition("/")[0] in broken:
            summary.failed += 1          # its directory's failure was reported
            continue
        job = Job(join(remote_root, rel), local_path(local_root, rel), entry)
        try:
            decided = decide(job, options)
        except KeepGoing as exc:
            summary.fail(job.target, exc, say)
            continue
        (jobs if decided is not None else compare).append(decided or job)
    outcomes = client.batch([("H", protocol.encode_path(job.remote)) for job in compare])
    for job, outcome in zip(compare, outcomes, strict=True):
        if interrupts.stop_asked():
            return []
        try:
            if isinstance(outcome, ServerError):
                raise outcome
            if client.hash_reply(outcome)[1] == file_digest(job.target):
                summary.skipped += 1
                os.utime(job.target, (job.entry.mtime, job.entry.mtime))
            elif options.force:
                jobs.append(Job(job.remote, job.target, job.entry, 0, replace=True))
            else:
                raise differs()
        except KeepGoing as exc:
            summary.fail(job.target, exc, say)
    return jobs


def decide(job: Job, options: TreeOptions) -> Optional[Job]:
    """The job to run, or None when the local file must be compared first."""
    size = job.entry.size or 0
    if not os.path.lexists(job.target):
        part = part_path(job.target)
        held = os.lstat(part).st_size if os.path.lexists(part) else 0
        return Job(job.remote, job.target, job.entry, held if held <= size else 0)
    if os.path.islink(job.target) or not os.path.isfile(job.target):
        raise LocalFileError("in the way: not a regular file")
    held = os.path.getsize(job.target)
    if held == size:
        return None
    if options.resume and held < size:
        return Job(job.remote, job.target, job.entry, held, replace=True, adopt=True)
    if options.force:
        return Job(job.remote, job.target, job.entry, 0, replace=True)
    raise differs()


def _requests(job: Job) -> List[Tuple[str, ...]]:
    field = protocol.encode_path(job.remote)
    return [("H", field), ("G", field) + ((str(job.offset),) if job.offset else ())]


def _cost(job: Job) -> int:
    return 2 * len(job.remote) + 24


def receive_all(client: Client, jobs: List[Job], bar: ProgressFactory, summary: Summary,
                say: Say, interrupts: Interrupts) -> None:
    """A sliding window of H+G pairs: whenever half of WINDOW_BYTES of
    requests were answered, the next ones go out before the current file is
    read, so the server streams file after file and never waits for us.
    The requests in flight stay far below any socket buffer: sending them
    never waits for replies nobody reads yet."""
    total = sum((job.entry.size or 0) - job.offset for job in jobs)
    progress = bar("get -r", total, 0)
    waiting = deque(jobs)
    sent: Deque[Job] = deque()
    in_flight = 0
    committer = Committer(summary, say)
    interrupted = False
    try:
        while waiting or sent:
            if in_flight <= WINDOW_BYTES // 2 and waiting:
                in_flight += _send_window(client, waiting, sent, WINDOW_BYTES - in_flight)
            job = sent.popleft()
            in_flight -= _cost(job)
            receive_one(client, job, progress.update, committer, summary, say)
            if interrupts.stop_asked():
                if sent:
                    client.close()          # the rest of the window is in flight
                return
    except KeyboardInterrupt:
        interrupted = True      # abort at once: verified parts wait for the next get -r
        raise
    finally:
        progress.close()
        if not interrupted:
            committer.flush()


def _send_window(client: Client, waiting: Deque[Job], sent: Deque[Job], room: int) -> int:
    """Send the requests of the next jobs that fit in `room` (at least one)."""
    requests: List[Tuple[str, ...]] = []
    used = 0
    while waiting and (not requests or used + _cost(waiting[0]) <= room):
        job = waiting.popleft()
        requests += _requests(job)
        sent.append(job)
        used += _cost(job)
    client.send_requests(requests)
    return used


def receive_one(client: Client, job: Job, progress: object, committer: "Committer",
                summary: Summary, say: Say) -> None:
    """Read one H+G pair's replies; the file lands under its final name
    only when whole and verified."""
    try:
        expected: "Tuple[int, str] | ServerError" = client.hash_reply(client.read_reply())
    except ServerError as exc:
        if client.closed:
            raise
        expected = exc
    try:
        count = client.read_count()
    except ServerError as exc:
        if client.closed:
            raise
        summary.fail(absolute(job.remote), expected if isinstance(expected, ServerError)
                     else exc, say)
        return
    if isinstance(expected, ServerError):
        client.receive(Discard(), count)
        summary.fail(absolute(job.remote), expected, say)
        return
    try:
        part = store(client, job, count, expected, progress)
    except KeepGoing as exc:
        if client.closed:
            raise
        summary.fail(job.target, exc, say)
        return
    committer.add(job, part, count)


def store(client: Client, job: Job, count: int, expected: Tuple[int, str],
          progress: object) -> str:
    """Receive into the part file and verify it; returns the part, whole,
    closed and with the server's time, for the Committer to rename."""
    part = part_path(job.target)
    try:
        if job.adopt:
            os.replace(job.target, part)
        handle = open_part(part, job.offset)
    except OSError as exc:
        client.receive(Discard(), count)    # keep the session in step
        raise LocalFileError(f"cannot write {part}: {exc.strerror}") from exc
    with handle:
        digest = OverlappedDigest(prefix_digest(handle, job.offset))
        client.receive(Hashing(handle, digest), count, progress)   # type: ignore[arg-type]
        handle.flush()
        got = (job.offset + count, digest.hexdigest())
        if got != expected:
            handle.close()
            raise mismatch(job, part)
    os.utime(part, (job.entry.mtime, job.entry.mtime))
    return part


class Committer:
    """Verified part files wait here for their final names, a batch at a
    time: one make_durable (a single syncfs) for the batch, then the
    renames. Each name still appears only once its data is on stable
    storage, as with an fsync per file before its rename, which cost a
    journal commit per file (1-2 ms each on a disk: more than the whole
    transfer of a small file). A file is counted when it has its name."""

    def __init__(self, summary: Summary, say: Say):
        self.summary, self.say = summary, say
        self.waiting: List[Tuple[Job, str, int]] = []
        self.size = 0

    def add(self, job: Job, part: str, count: int) -> None:
        self.waiting.append((job, part, count))
        self.size += count
        if len(self.waiting) >= COMMIT_FILES or self.size >= COMMIT_BYTES:
            self.flush()

    def flush(self) -> None:
        waiting, self.waiting, self.size = self.waiting, [], 0
        try:
            make_durable([part for _, part, _ in waiting])
        except LocalError as exc:
            for job, _, _ in waiting:   # left in their part files: the next run resumes
                self.summary.fail(job.target, exc, self.say)
            return
        for job, part, count in waiting:
            try:
                commit_part(part, job.target, job.replace)
            except KeepGoing as exc:
                self.summary.fail(job.target, exc, self.say)
                continue
            self.summary.done += 1
            self.summary.size += count


def mismatch(job: Job, part: str) -> IntegrityError:
    """Nothing unverified is kept; a local file that was continued is given
    back, as it was, beside its name."""
    if job.adopt:
        aside = job.target + ASIDE_SUFFIX
        os.truncate(part, job.offset)
        os.replace(part, aside)
        return IntegrityError(f"{job.target} was not the start of the server's file; "
                              f"it was kept as {aside}")
    os.unlink(part)
    return IntegrityError(f"{job.target}: the data does not match the server's SHA-256; "
                          "nothing was kept")
