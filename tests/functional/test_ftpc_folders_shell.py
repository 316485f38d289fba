"""The shell's folder commands through a pty: cd and the prompt, ls PATH,
mkdir, mv, rm -r with its y/N question, get -r / put -r, mget / mput with
globs, and tab completion of remote paths through directories."""

from __future__ import annotations

import os
import re

import pytest

from tests.ftpc_util import make_file
from tests.functional.test_ftpc_shell import Screen


@pytest.fixture
def sh(daemon, home):
    screen = Screen(f"127.0.0.1:{daemon.port}", home)
    screen.prompt = re.escape(f"ftpc 127.0.0.1:{daemon.port}") + r"(:/[^>]*)?> "
    screen.wait_prompt()
    yield screen
    screen.close()


def test_cd_pwd_prompt_mkdir_ls_and_mv(daemon, sh):
    assert "made" not in sh.run("mkdir -p photos/2026/summer")
    assert (daemon.root / "photos" / "2026" / "summer").is_dir()
    sh.run("cd photos")
    assert sh.child.after.endswith(":/photos> ")
    assert "Remote directory: /photos" in sh.run("pwd")
    make_file(daemon.root / "photos" / "2026" / "beach.jpg", 3000)
    listing = sh.run("ls 2026")
    assert "beach.jpg" in listing and "summer/" in listing and "1 file, 1 directory" in listing
    sh.run("cd 2026/summer")
    assert sh.child.after.endswith(":/photos/2026/summer> ")
    sh.run("cd ..")
    assert sh.child.after.endswith(":/photos/2026> ")
    sh.run("cd -")
    assert sh.child.after.endswith(":/photos/2026/summer> ")
    assert "Moved /photos/2026/beach.jpg -> /photos/2026/summer/beach.jpg" in sh.run(
        "mv ../beach.jpg .")
    assert (daemon.root / "photos" / "2026" / "summer" / "beach.jpg").is_file()
    refused = sh.run("cd /nowhere")
    assert "code 404" in refused and sh.child.after.endswith(":/photos/2026/summer> ")
    sh.run("cd /")
    assert not sh.child.after.rstrip("> ").endswith("/")


def test_rm_r_asks_once_and_rmdir(daemon, sh):
    (daemon.root / "old" / "a").mkdir(parents=True)
    make_file(daemon.root / "old" / "a" / "x.bin", 10)
    make_file(daemon.root / "old" / "y.bin", 10)
    (daemon.root / "empty").mkdir()
    sh.child.sendline("rm -r old")
    sh.child.expect(re.escape("Remove /old and everything in it? [y/N] "))
    assert "Nothing removed." in sh.run("n")
    assert (daemon.root / "old" / "a" / "x.bin").exists()
    sh.child.sendline("rm -r old")
    sh.child.expect(re.escape("[y/N] "))
    assert "Removed /old (4 entries)." in sh.run("y")
    assert not (daemon.root / "old").exists()
    assert "code 409" not in sh.run("rmdir empty")
    assert os.listdir(daemon.root) == []


def test_put_r_get_r_mget_mput_in_the_shell(daemon, sh, home):
    (home / "trip" / "day1").mkdir(parents=True)
    data = {rel: make_file(home / "trip" / rel, 2000) for rel in ("a.jpg", "day1/b.jpg",
                                                                  "day1/c.txt")}
    out = sh.run("put -r trip")
    assert "3 files sent, 0 skipped (identical), 0 failed" in out
    assert "0 files sent, 3 skipped (identical), 0 failed" in sh.run("put -r trip")
    sh.run("cd trip")
    got = sh.run("get -r day1 back")
    assert "2 files received, 0 skipped (identical), 0 failed" in got
    assert (home / "back" / "b.jpg").read_bytes() == data["day1/b.jpg"]
    out = sh.run("mget day1/*.jpg a.*")
    assert "2 of 2 files received" in out
    assert (home / "b.jpg").read_bytes() == data["day1/b.jpg"]
    assert (home / "a.jpg").read_bytes() == data["a.jpg"]
    assert "no match" in sh.run("mget day1/*.png")
    make_file(home / "new1.dat", 10)
    make_file(home / "new2.dat", 20)
    assert "2 of 2 files sent" in sh.run("mput new*.dat")
    assert (daemon.root / "trip" / "new2.dat").stat().st_size == 20


def test_tab_completes_remote_paths_through_directories(daemon, sh, home):
    (daemon.root / "photos" / "2026").mkdir(parents=True)
    data = make_file(daemon.root / "photos" / "2026" / "beach day.jpg", 1234)
    sh.child.send("get pho\t")
    sh.child.expect(re.escape("photos/"))
    sh.child.send("20\t")
    sh.child.expect(re.escape("2026/"))
    sh.child.send("b\t")
    sh.child.expect(re.escape("beach\\ day.jpg"))
    out = sh.run("")
    assert "Saved beach day.jpg" in out
    assert (home / "beach day.jpg").read_bytes() == data
    sh.run("cd photos")
    sh.child.send("cd 2\t")
    sh.child.expect(re.escape("2026/"))
    sh.run("")
    assert sh.child.after.endswith(":/photos/2026> ")
    (home / "locdir").mkdir()
    sh.child.send("lcd loc\t")
    sh.child.expect(re.escape("locdir/"))
    assert "Local directory:" in sh.run("")
