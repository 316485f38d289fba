"""ftpc with folders, end to end against the real daemon: one-shot tree
commands and mirroring, Ctrl-C in the middle of a tree, resume of an
existing file. (The shell's folder commands: tests/test_ftpc_folders_shell.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess


from tests.harness import wait_until
from tests.ftpc_util import ftpc_command, ftpc_env, make_file, run_ftpc

OLD = 1_500_000_000        # a modification time that must survive both ways


def make_tree(top, files=3, size=1500):
    """top/a.bin, top/sub/deeper/..., top/sub/empty/: a little tree with an old file."""
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "sub" / "empty").mkdir()
    contents = {}
    for number in range(files):
        for rel in (f"f{number}.bin", f"sub/deeper/g{number}.txt"):
            contents[rel] = make_file(top / rel, size + number)
    os.utime(top / "f0.bin", (OLD, OLD))
    return contents


def tree_files(top):
    found = {}
    for dirpath, _, names in os.walk(top):
        for name in names:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, top)] = open(path, "rb").read()
    return found


def summary_of(result) -> str:
    text = (result.stdout + result.stderr).decode()
    return [line for line in text.splitlines() if " skipped (identical), " in line][-1]


def test_put_r_then_again_skips_everything_refuses_a_change_then_forces_it(daemon, home):
    contents = make_tree(home / "photos")
    first = run_ftpc(daemon.address, "put", "-r", "photos", home=home)
    assert first.returncode == 0, first.stderr
    assert summary_of(first).startswith("6 files sent, 0 skipped (identical), 0 failed; ")
    assert tree_files(daemon.root / "photos") == contents
    assert (daemon.root / "photos" / "sub" / "empty").is_dir()
    assert os.stat(daemon.root / "photos" / "f0.bin").st_mtime == OLD
    again = run_ftpc(daemon.address, "put", "-r", "photos", home=home)
    assert again.returncode == 0, again.stderr
    assert summary_of(again).startswith("0 files sent, 6 skipped (identical), 0 failed; 0 B in")
    changed = home / "photos" / "sub" / "deeper" / "g1.txt"
    changed.write_bytes(b"x" * len(changed.read_bytes()))      # same size, other bytes
    refused = run_ftpc(daemon.address, "put", "-r", "photos", home=home)
    assert refused.returncode == 2
    assert "/photos/sub/deeper/g1.txt: the copy on the other side differs; use --force" \
        in refused.stderr.decode()
    assert summary_of(refused).startswith("0 files sent, 5 skipped (identical), 1 failed")
    assert (daemon.root / "photos/sub/deeper/g1.txt").read_bytes() == contents["sub/deeper/g1.txt"]
    forced = run_ftpc(daemon.address, "put", "-r", "photos", "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    assert summary_of(forced).startswith("1 file sent, 5 skipped (identical), 0 failed")
    assert (daemon.root / "photos/sub/deeper/g1.txt").read_bytes() == changed.read_bytes()


def test_get_r_mirrors_keeps_times_skips_identical_and_refuses_a_local_change(daemon, home):
    contents = make_tree(daemon.root / "album")
    got = run_ftpc(daemon.address, "get", "-r", "album", "-o", "copy", home=home)
    assert got.returncode == 0, got.stderr
    assert summary_of(got).startswith("6 files received, 0 skipped (identical), 0 failed")
    assert tree_files(home / "copy") == contents
    assert (home / "copy" / "sub" / "empty").is_dir()
    assert os.stat(home / "copy" / "f0.bin").st_mtime == OLD
    again = run_ftpc(daemon.address, "get", "-r", "album", "-o", "copy", home=home)
    assert summary_of(again).startswith("0 files received, 6 skipped (identical), 0 failed")
    (home / "copy" / "f2.bin").write_bytes(b"mine")
    refused = run_ftpc(daemon.address, "get", "-r", "album", "-o", "copy", home=home)
    assert refused.returncode == 2 and b"use --force" in refused.stderr
    assert (home / "copy" / "f2.bin").read_bytes() == b"mine"
    forced = run_ftpc(daemon.address, "get", "-r", "/album", "-o", "copy", "-f", home=home)
    assert forced.returncode == 0, forced.stderr
    assert summary_of(forced).startswith("1 file received, 5 skipped (identical)")
    assert tree_files(home / "copy") == contents
    assert not [n for n in tree_files(home / "copy") if "ftpc-part" in n]


def test_get_r_continue_resumes_a_partial_file_and_a_shorter_local_copy(daemon, home):
    contents = make_tree(daemon.root / "album", files=2, size=200_000)
    (home / "album" / "sub" / "deeper").mkdir(parents=True)
    (home / "album" / "f1.bin").write_bytes(contents["f1.bin"][:70_000])
    (home / "album" / "sub" / "deeper" / ".g0.txt.ftpc-part").write_bytes(
        contents["sub/deeper/g0.txt"][:5000])
    refused = run_ftpc(daemon.address, "get", "-r", "album", home=home)
    assert refused.returncode == 2 and b"f1.bin" in refused.stderr
    resumed = run_ftpc(daemon.address, "get", "-r", "album", "--continue", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert tree_files(home / "album") == contents


def test_one_shot_folder_commands_and_json_types(daemon, home):
    assert run_ftpc(daemon.address, "mkdir", "a", home=home).returncode == 0
    nested = run_ftpc(daemon.address, "mkdir", "-p", "a/b/c", "x", home=home)
    assert nested.returncode == 0 and b"made /a/b/c" in nested.stdout
    assert run_ftpc(daemon.address, "mkdir", "a", home=home).returncode == 1     # 409
    make_file(daemon.root / "a" / "b" / "c" / "file.bin", 10)
    listed = json.loads(run_ftpc(daemon.address, "list", "a/b", "--json", home=home).stdout)
    assert listed == [{"name": "c/", "size": None, "mtime": listed[0]["mtime"], "type": "dir"}]
    files = json.loads(run_ftpc(daemon.address, "list", "/a/b/c", "--json", home=home).stdout)
    assert [(f["name"], f["type"]) for f in files] == [("file.bin", "file")]
    moved = run_ftpc(daemon.address, "mv", "a/b/c/file.bin", "x", home=home)
    assert moved.returncode == 0 and b"-> /x/file.bin" in moved.stdout
    assert (daemon.root / "x" / "file.bin").is_file()
    not_empty = run_ftpc(daemon.address, "rmdir", "a", home=home)
    assert not_empty.returncode == 1 and b"409" in not_empty.stderr
    unconfirmed = run_ftpc(daemon.address, "rm", "-r", "a", home=home)
    assert unconfirmed.returncode == 2 and b"--yes" in unconfirmed.stderr
    assert (daemon.root / "a" / "b" / "c").is_dir()
    assert run_ftpc(daemon.address, "rm", "-r", "--yes", "a", home=home).returncode == 0
    assert not (daemon.root / "a").exists()
    assert run_ftpc(daemon.address, "rm", "x/file.bin", home=home).returncode == 0
    assert run_ftpc(daemon.address, "rmdir", "x", home=home).returncode == 0
    assert os.listdir(daemon.root) == []
    missing = run_ftpc(daemon.address, "get", "-r", "nothing", home=home)
    assert missing.returncode == 1 and b"404" in missing.stderr


def test_get_continue_adopts_an_existing_shorter_file_or_sets_a_wrong_one_aside(daemon, home):
    data = make_file(daemon.root / "big.bin", 300_000)
    (home / "big.bin").write_bytes(data[:100_000])
    resumed = run_ftpc(daemon.address, "get", "big.bin", "--continue", home=home)
    assert resumed.returncode == 0, resumed.stderr
    assert b"resumed at byte 100000" in resumed.stdout
    assert (home / "big.bin").read_bytes() == data
    assert os.stat(home / "big.bin").st_mtime == int(os.stat(daemon.root / "big.bin").st_mtime)
    (home / "big.bin").write_bytes(b"not the server's start" * 10)
    mine = (home / "big.bin").read_bytes()
    wrong = run_ftpc(daemon.address, "get", "big.bin", "--continue", home=home)
    assert wrong.returncode == 4, wrong.stderr
    assert b"kept as" in wrong.stderr
    assert not (home / "big.bin").exists()
    assert (home / "big.bin.ftpc-kept").read_bytes() == mine
    assert not [n for n in os.listdir(home) if n.endswith("ftpc-part")]


def start_ftpc(daemon, home, *args):
    # SIGINT back to its default: the test runner's worker may ignore it
    return subprocess.Popen(ftpc_command(daemon.address, *args), cwd=home, env=ftpc_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_in_put_r_stops_after_the_current_file_and_says_what_was_done(daemon, home):
    local = home / "many"
    local.mkdir()
    contents = {f"n{i:04}.bin": make_file(local / f"n{i:04}.bin", 64 << 10) for i in range(400)}
    proc = start_ftpc(daemon, home, "put", "-r", "many")
    wait_until(lambda: len(os.listdir(daemon.root / "many")) >= 5
               if (daemon.root / "many").exists() else False, timeout=30, what="some files")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = summary_of(subprocess.CompletedProcess([], 0, out, err))
    assert "stopped by Ctrl-C after the current file" in line
    sent = int(line.split()[0])
    stored = os.listdir(daemon.root / "many")
    assert 5 <= sent == len(stored) < 400
    for name in stored:                   # whole files only under their names
        assert (daemon.root / "many" / name).read_bytes() == contents[name]
    again = run_ftpc(daemon.address, "put", "-r", "many", home=home)
    assert summary_of(again).startswith(f"{400 - sent} files sent, {sent} skipped (identical)")


def test_ctrl_c_in_get_r_keeps_only_whole_files_under_their_names(daemon, home):
    (daemon.root / "many").mkdir()
    contents = {f"n{i:04}.bin": make_file(daemon.root / "many" / f"n{i:04}.bin", 64 << 10)
                for i in range(400)}
    proc = start_ftpc(daemon, home, "get", "-r", "many")
    wait_until(lambda: len(os.listdir(home / "many")) >= 5 if (home / "many").exists()
               else False, timeout=30, what="some files")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = summary_of(subprocess.CompletedProcess([], 0, out, err))
    assert "Ctrl-C" in line
    received = int(line.split()[0])
    final = [n for n in os.listdir(home / "many") if not n.startswith(".")]
    assert 5 <= received == len(final) < 400
    for name in final:
        assert (home / "many" / name).read_bytes() == contents[name]
    rest = run_ftpc(daemon.address, "get", "-r", "many", home=home)
    assert rest.returncode == 0, rest.stderr
    assert tree_files(home / "many") == contents


def test_put_r_reports_names_the_server_cannot_hold(daemon, home):
    make_tree(home / "t", files=1)
    (home / "t" / ".hidden").write_bytes(b"x")
    result = run_ftpc(daemon.address, "put", "-r", "t", home=home)
    assert result.returncode == 2
    assert b".hidden: left out: a name must not begin with '.'" in result.stderr
    assert summary_of(result).startswith("2 files sent, 0 skipped (identical), 1 failed")
    digest = hashlib.sha256((home / "t" / "f0.bin").read_bytes()).hexdigest()
    hashed = run_ftpc(daemon.address, "hash", "t/f0.bin", home=home)
    assert hashed.stdout.decode().startswith(digest)
