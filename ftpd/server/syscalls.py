"""The system calls a confined session may make: one reviewed table, and
the seccomp filter built from it ([server] seccomp = yes | no | log).

The table comes from tracing real sessions (strace -f over the functional
tests in fork mode, plaintext and TLS, every verb, timeouts, drains) and
keeping what a session process makes after it has confined itself. Anything
else kills the whole process (SCMP_ACT_KILL_PROCESS: the parent logs
"signal 31"), or with `log` is allowed and logged by the kernel's audit.
Deliberately absent: execve/execveat, socket/connect/bind/listen/accept,
ptrace, mount, chroot, pivot_root, the setuid family, bpf, module loading,
keyctl, process_vm_*; thread or process creation fails with EPERM instead
of killing, because the upload hasher falls back to hashing inline.

The filter is built and compiled to BPF in the parent (where libseccomp
can still be found); each child only hands the finished program to one
seccomp(2) call. libseccomp's own load would generate the program again
in every session: 0.5 MiB of copied heap per session and half a
millisecond before its greeting (docs/concurrency.md).
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any, Optional, Tuple

seccomp: Any
try:
    # libseccomp's own bindings where the distribution ships them (Debian's
    # python3-seccomp), else pyseccomp (PyPI: the same API over ctypes).
    import seccomp  # type: ignore[import-not-found, no-redef]
except ImportError:
    try:
        import pyseccomp as seccomp  # type: ignore[import-untyped, no-redef]
    except (ImportError, OSError, RuntimeError):     # no libseccomp.so.2 on this system
        seccomp = None

MODES = ("yes", "no", "log")

ALLOWED: Tuple[str, ...] = (
    # reading and writing the client socket, files and pipes
    "read", "write", "readv", "writev", "pread64", "pwrite64", "sendfile",
    "recvfrom", "sendto", "recvmsg", "sendmsg", "shutdown", "getsockopt", "setsockopt",
    "getsockname", "getpeername", "close", "dup", "dup2", "dup3", "fcntl", "ioctl",
    "lseek", "fsync", "fdatasync", "ftruncate", "fallocate",
    # waiting: select.poll, socket timeouts, the stop pipe, thread locks
    "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "futex", "nanosleep", "clock_nanosleep", "sched_yield", "pipe2",
    # the library: paths resolved below a directory fd (library.py), listings
    "openat", "open", "newfstatat", "fstat", "stat", "lstat", "statx", "statfs",
    "fstatfs", "getdents64", "mkdirat", "mkdir", "unlinkat", "unlink", "rmdir",
    "linkat", "link", "renameat", "renameat2", "rename", "readlinkat", "readlink", "utimensat",
    "fchmod", "fchmodat", "fchown", "fchdir", "chdir", "getcwd", "faccessat", "access",
    "faccessat2", "flock", "umask",
    # the digest kept with each file (digests.py): user.ftpd.sha256 on the open fd
    "fgetxattr", "fsetxattr", "fremovexattr", "flistxattr",
    # memory: the allocator, mmap'd reads, hashlib and OpenSSL
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
    # signals: the stop flag's wake-up fd, SIGTERM, SIGXFSZ, thread masks
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "kill", "tgkill",
    # who am I, what time is it, limits (reading them only lowers nothing)
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getresuid", "getresgid", "getgroups", "clock_gettime", "gettimeofday", "time",
    "getrandom", "getrlimit", "prlimit64", "uname", "sysinfo", "getrusage",
    "sched_getaffinity", "prctl", "set_robust_list", "rseq", "restart_syscall",
    # leaving
    "exit", "exit_group",
)

# Refused with EPERM rather than killed: the hasher's thread start, which
# RLIMIT_NPROC 0 already refuses, fails cleanly and hashing goes inline.
REFUSED: Tuple[str, ...] = ("clone", "clone3", "fork", "vfork")


SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1      # the threads started before confinement too
_LIBC = ctypes.CDLL(None, use_errno=True)    # dlopen(NULL): no file to read
_LIBC.syscall.restype = ctypes.c_long


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Program:
    """A compiled filter: its BPF instructions and the arguments of the one
    seccomp(2) call that loads them, all made before the fork."""

    def __init__(self, code: bytes, syscall_number: int) -> None:
        self.code = code
        self._instructions = ctypes.create_string_buffer(code, len(code))
        self._fprog = _SockFprog(len(code) // 8, ctypes.addressof(self._instructions))
        self._args = (ctypes.c_long(syscall_number), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                      ctypes.c_long(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(self._fprog))

    def load(self) -> None:
        """In the child, after no_new_privs; OSError if the kernel refuses."""
        result = _LIBC.syscall(*self._args)
        if result != 0:      # > 0: a thread that could not be synchronised
            error = ctypes.get_errno() if result < 0 else errno.ESRCH
            raise OSError(error, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(error)}")


class SeccompUnavailable(Exception):
    """[server] seccomp is on but libseccomp cannot be loaded."""


def available() -> bool:
    return seccomp is not None


def build(mode: str) -> Optional[Program]:
    """The filter for `mode`, compiled and ready to load; None for `no`."""
    if mode == "no":
        return None
    if seccomp is None:
        raise SeccompUnavailable("[server] seccomp needs libseccomp (libseccomp2) "
                                 "and the pyseccomp module")
    default = seccomp.LOG if mode == "log" else seccomp.KILL_PROCESS
    try:
        flt = seccomp.SyscallFilter(default)
    except (RuntimeError, OSError) as exc:    # e.g. seccomp(2) itself filtered by a sandbox
        raise SeccompUnavailable(f"[server] seccomp: libseccomp cannot build a filter here "
                                 f"({exc}); set seccomp = no, or allow seccomp(2)") from exc
    for name in ALLOWED:
        try:
            flt.add_rule(seccomp.ALLOW, name)
        except OSError:
            continue        # not a call on this architecture (e.g. open on arm64)
    for name in REFUSED:
        try:
            flt.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except OSError:
            continue
    number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, "seccomp")
    if number < 0:
        raise SeccompUnavailable("[server] seccomp: this architecture has no seccomp(2)")
    return Program(_export(flt), number)


def _export(flt: Any) -> bytes:
    """The BPF program libseccomp generates for `flt` (8 bytes an instruction)."""
    with open(os.memfd_create("ftpd-seccomp", os.MFD_CLOEXEC), "w+b") as sink:
        flt.export_bpf(sink)
        sink.seek(0)
        return sink.read()


def install(program: Optional[Program]) -> None:
    """In the child, last step of confinement; OSError if the kernel refuses."""
    if program is not None:
        program.load()
