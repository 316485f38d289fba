"""Landlock: a session process may read and write below its library and
touch no other file, whatever path a bug might build.

The kernel's ABI is probed once in the parent (`abi()`); each forked
session then restricts itself (`restrict_to`) after no_new_privs and
before the seccomp filter, which does not allow these calls. The rule
hangs on the library's directory fd, so it holds with or without chroot:
it matters most without one (ftpd not started as root), where it is the
only thing between a path-resolution bug and the rest of the file system.
Files already open (the log) stay usable; Landlock checks opens.

Plain syscalls through ctypes: the numbers are the same on every
architecture (asm-generic), and nothing here loads a file after chroot.
"""

from __future__ import annotations

import ctypes
import os

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1

# LANDLOCK_ACCESS_FS_* bits, by the ABI version that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
HANDLED_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
# What a session does in its library: list, read, store (temp + link or
# rename, also across directories: REFER), truncate, make and remove.
SESSION_ACCESS = (READ_FILE | READ_DIR | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR
                  | MAKE_REG | REFER | TRUNCATE)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall(number: int, *args: object) -> int:
    result = _LIBC.syscall(ctypes.c_long(number), *args)
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"landlock syscall {number}: {os.strerror(error)}")
    return int(result)


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is off)."""
    try:
        return _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(CREATE_RULESET_VERSION))
    except OSError:
        return 0


def handled_for(version: int) -> int:
    """Every file-system right `version` knows: all of them are denied
    unless a rule grants them."""
    known = max((v for v in HANDLED_BY_ABI if v <= version), default=0)
    return HANDLED_BY_ABI.get(known, 0)


def restrict_to(directory_fd: int, version: int) -> None:
    """This thread, and what it starts, may from now on only open below
    `directory_fd`, with SESSION_ACCESS. OSError if the kernel refuses."""
    handled = handled_for(version)
    ruleset = _RulesetAttr(handled)
    ruleset_fd = _syscall(SYS_CREATE_RULESET, ctypes.byref(ruleset),
                          ctypes.c_size_t(ctypes.sizeof(ruleset)), ctypes.c_uint32(0))
    try:
        rule = _PathBeneathAttr(SESSION_ACCESS & handled, directory_fd)
        _syscall(SYS_ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(RULE_PATH_BENEATH),
                 ctypes.byref(rule), ctypes.c_uint32(0))
        _syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
    finally:
        os.close(ruleset_fd)


def describe(version: int) -> str:
    if version:
        return f"landlock active (ABI {version}): sessions may open files only in the library"
    return "landlock not offered by this kernel: sessions rely on chroot and path checks"
