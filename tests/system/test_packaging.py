"""How ftpd is packaged: man pages and completion from the code, the Debian
package built for real (dpkg-buildpackage in a temporary copy) and checked by
lintian, and the checkout's own launchers."""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests.harness import PROJECT

sys.path.insert(0, str(PROJECT / "tools"))
import build_deb  # noqa: E402
import gen_completion  # noqa: E402
import gen_docs  # noqa: E402
import gen_man  # noqa: E402

from ftpd import __version__, config  # noqa: E402
from ftpd import cli as ftpd_cli  # noqa: E402
from ftpd.ftpc import cli as ftpc_cli  # noqa: E402

COMPLETION = PROJECT / "completion"
GROFF = shutil.which("groff")
ZSH = shutil.which("zsh")


def subparsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def option_strings(parser: argparse.ArgumentParser) -> List[str]:
    return [flag for action in parser._actions for flag in action.option_strings]


# -- shell completion ------------------------------------------------------------------

def test_committed_completion_is_what_the_generator_renders():
    for name, text in gen_completion.scripts().items():
        assert (COMPLETION / name).read_text() == text, \
            f"completion/{name} has drifted: run python3 tools/gen_completion.py"
    assert sorted(p.name for p in COMPLETION.iterdir()) == sorted(gen_completion.scripts())


def bash_complete(program: str, words: List[str], env: Dict[str, str] = None,
                  cwd: Path = PROJECT) -> List[str]:
    """COMPREPLY of the generated function for the last word of `words`."""
    script = (f'source "{COMPLETION / (program + ".bash")}"\n'
              f'COMP_WORDS=({" ".join(_bash_quote(w) for w in words)})\n'
              f'COMP_CWORD={len(words) - 1}\n'
              f'_{program}\nprintf "%s\\n" "${{COMPREPLY[@]}}"\n')
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                            capture_output=True, text=True, timeout=30, cwd=cwd,
                            env=dict(os.environ, **(env or {})))
    assert result.returncode == 0 and not result.stderr, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def _bash_quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def test_bash_completes_ftpd_subcommands_and_every_option():
    parser = ftpd_cli.build_parser()
    assert bash_complete("ftpd", ["ftpd", "pa"]) == ["passwd"]
    assert bash_complete("ftpd", ["ftpd", ""]) == list(subparsers(parser))
    assert bash_complete("ftpd", ["ftpd", "-"]) == option_strings(parser)
    for name, sub in subparsers(parser).items():
        assert bash_complete("ftpd", ["ftpd", "-c", "x.conf", name, "-"]) == \
            option_strings(sub), name
    assert bash_complete("ftpd", ["ftpd", "passwd", "--access", ""]) == ["read", "write"]
    assert bash_complete("ftpd", ["ftpd", "serve", "--da"]) == ["--daemon"]


def make_accounts(tmp_path: Path) -> Path:
    """A config whose users file holds alice and bob, written by `ftpd passwd`."""
    conf = tmp_path / "ftpd.conf"
    conf.write_text(f"[server]\nroot = {tmp_path}\n\n[access]\n"
                    f"users_file = {tmp_path / 'users'}\n")
    for user in ("alice", "bob"):
        result = subprocess.run([sys.executable, "-m", "ftpd", "-c", str(conf), "passwd", user],
                                input="secret-pw\n", capture_output=True, text=True,
                                timeout=60, env=dict(os.environ, PYTHONPATH=str(PROJECT)))
        assert result.returncode == 0, result.stderr
    return conf


def test_bash_completes_account_names_for_passwd_delete(tmp_path):
    conf = make_accounts(tmp_path)
    line = ["ftpd", "-c", str(conf), "passwd", "--delete", ""]
    assert bash_complete("ftpd", line) == ["alice", "bob"]
    assert bash_complete("ftpd", line[:-1] + ["b"]) == ["bob"]
    assert bash_complete("ftpd", ["ftpd", "--config", "=", str(conf), "passwd", "a"]) == \
        ["alice"]
    # No -c: $FTPD_CONFIG names the config, as it does for ftpd itself.
    assert bash_complete("ftpd", ["ftpd", "passwd", "--delete", ""],
                         env={"FTPD_CONFIG": str(conf)}) == ["alice", "bob"]
    # An unreadable or missing config completes nothing, and says nothing.
    assert bash_complete("ftpd", ["ftpd", "-c", str(tmp_path / "nope"), "passwd", ""]) == []


def test_bash_completes_ftpc_host_then_commands_and_files(tmp_path):
    parser = ftpc_cli.build_parser()
    assert "localhost" in bash_complete("ftpc", ["ftpc", "localh"])
    assert bash_complete("ftpc", ["ftpc", "-u", "bob", "host", ""]) == list(subparsers(parser))
    assert bash_complete("ftpc", ["ftpc", "host", "get", "-"]) == \
        option_strings(subparsers(parser)["get"])
    (tmp_path / "notes.txt").write_text("x")
    assert bash_complete("ftpc", ["ftpc", "host", "put", "no"], cwd=tmp_path) == ["notes.txt"]
    assert bash_complete("ftpc", ["ftpc", "--cafile", "no"], cwd=tmp_path) == ["notes.txt"]


@pytest.mark.skipif(ZSH is None, reason="zsh is not installed (apt-get install zsh)")
def test_zsh_completes_in_a_real_shell(tmp_path):
    import pexpect

    conf = make_accounts(tmp_path)
    shell = pexpect.spawn(ZSH, ["-f", "-i"], encoding="utf-8", timeout=20, cwd=str(tmp_path),
                          env=dict(os.environ, TERM="dumb", PS1="> "), dimensions=(40, 200))
    try:
        shell.sendline(f"fpath=({COMPLETION} $fpath); autoload -U compinit; compinit -u; "
                       "PS1='READY''> '")
        shell.expect("READY> ")
        for typed, completed in (("ftpd pa", "ftpd passwd "),
                                 ("ftpd serve --da", "ftpd serve --daemon "),
                                 (f"ftpd -c {conf} passwd --delete a",
                                  f"ftpd -c {conf} passwd --delete alice "),
                                 ("ftpc host g", "ftpc host get ")):
            shell.send(typed + "\t")
            shell.expect_exact(completed)
            shell.send("\x03")               # abandon the line
            shell.expect("READY> ")
    finally:
        shell.close(force=True)


# -- man pages -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages() -> Dict[str, str]:
    return gen_man.pages()


def plain(page: str) -> str:
    """A page's text with roff's escapes undone (enough to search it)."""
    return re.sub(r"\\f[BIR]|\\&", "", page).replace("\\-", "-").replace("\\e", "\\")


def assert_page_has_every_option(text: str, parser: argparse.ArgumentParser,
                                 synopsis: str) -> None:
    """Every option of the program and of each subcommand, and a synopsis line
    (`synopsis` with the subcommand's name for {name}) for each subcommand."""
    for flag in option_strings(parser):
        assert flag in text, flag
    for name, sub in subparsers(parser).items():
        assert synopsis.format(name=name) in text, name
        for flag in option_strings(sub):
            assert flag in text, (name, flag)


def test_ftpd_page_has_every_command_and_option(pages):
    text = plain(pages["ftpd.8"])
    assert_page_has_every_option(text, ftpd_cli.build_parser(), "ftpd [-c PATH] {name}")
    for value in gen_docs.SHIPPED.values():
        if value.startswith("/"):                # the packaged paths, under FILES
            assert value in text.split(".SH FILES")[1], value
    assert f'"ftpd {__version__}"' in text
    assert ".TP\n78\nconfig error" in text.replace("\\fB", "")


def test_conf_page_documents_every_setting_with_its_default(pages):
    text = plain(pages["ftpd.conf.5"])
    for section in config.SECTIONS:
        assert f".SH [{section}]" in text
    for setting in config.SETTINGS:
        default = setting.default or "(empty)"
        assert f".TP\n{setting.key} = {default}\n{setting.help}" in text, setting.key
    for (section, key), value in gen_docs.SHIPPED.items():
        assert f"[{section}] {key} = {value}" in text


def test_ftpc_page_has_every_command_option_and_exit_status(pages):
    text = plain(pages["ftpc.1"])
    assert_page_has_every_option(text, ftpc_cli.build_parser(),
                                 "ftpc [-u USER] HOST[:PORT] {name}")
    from ftpd.ftpc import status
    assert ".SH EXIT STATUS" in text
    for code, meaning in status.TABLE:
        assert f"{code} {' '.join(meaning.split())}" in " ".join(text.split()), code


@pytest.mark.skipif(GROFF is None, reason="groff is not installed")
def test_man_pages_format_without_warnings(pages, tmp_path):
    for name, page in pages.items():
        path = tmp_path / name
        path.write_text(page)
        result = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-z", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stderr == "", (name, result.stderr)
        shown = subprocess.run([GROFF, "-man", "-Tutf8", str(path)], capture_output=True,
                               timeout=60).stdout.decode("utf-8", "replace")
        assert re.sub(r".\x08", "", shown).count("NAME") >= 1


def test_package_version_is_the_programs():
    changelog = PROJECT / "debian" / "changelog"
    assert build_deb.changelog_version(changelog) == __version__


# -- the Debian package ----------------------------------------------------------------

@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    reason = build_deb.missing_tools()
    if reason:
        pytest.skip(f"cannot build the Debian package: {reason}")
    out = tmp_path_factory.mktemp("deb")
    deb = build_deb.build(out, log=out / "build.log")
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True, timeout=60)
    return deb


def tree(deb: Path) -> Path:
    return deb.parent / "tree"


@pytest.mark.timeout(900)
def test_lintian_finds_no_errors(package):
    lintian = shutil.which("lintian", path="/usr/bin:/bin")
    if lintian is None:
        pytest.skip("lintian is not installed (apt-get install lintian)")
    changes = next(package.parent.glob("*.changes"))
    result = subprocess.run([lintian, "--no-tag-display-limit", str(changes)],
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin"))
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_holds_the_generated_pages_and_completion(package):
    root = tree(package)
    stamp = subprocess.run(["dpkg-parsechangelog", "-l", str(PROJECT / "debian/changelog"),
                            "-STimestamp"], capture_output=True, text=True, check=True,
                           timeout=60).stdout.strip()
    os.environ["SOURCE_DATE_EPOCH"] = stamp
    try:
        expected = gen_man.pages()
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    for name, text in expected.items():
        section = name.rsplit(".", 1)[1]
        packed = root / "usr/share/man" / f"man{section}" / f"{name}.gz"
        assert gzip.decompress(packed.read_bytes()).decode() == text, name
    for program in ("ftpd", "ftpc"):
        assert (root / "usr/share/bash-completion/completions" / program).read_text() == \
            (COMPLETION / f"{program}.bash").read_text()
        assert (root / "usr/share/zsh/vendor-completions" / f"_{program}").read_text() == \
            (COMPLETION / f"_{program}").read_text()


def test_package_layout_conffiles_and_examples(package):
    root = tree(package)
    assert (root / "DEBIAN/conffiles").read_text().split() == \
        ["/etc/ftpd/ftpd.conf", "/etc/logrotate.d/ftpd"]
    assert (root / "etc/ftpd/ftpd.conf").read_text() == (PROJECT / "etc/ftpd.conf").read_text()
    assert (root / "etc/logrotate.d/ftpd").read_text() == \
        (PROJECT / "deploy/logrotate.d/ftpd").read_text()
    for kind in ("sysusers.d", "tmpfiles.d"):
        assert (root / "usr/lib" / kind / "ftpd.conf").read_text() == \
            (PROJECT / "deploy" / kind / "ftpd.conf").read_text()
    examples = root / "usr/share/doc/ftpd/examples/fail2ban"
    for rel in ("filter.d/ftpd.conf", "jail.d/ftpd.conf"):
        assert (examples / rel).read_text() == (PROJECT / "etc/fail2ban" / rel).read_text()
    assert not (root / "etc/fail2ban").exists()          # an example, not enabled
    assert (root / "usr/share/doc/ftpd/README.Debian").exists()
    assert (root / "usr/share/doc/ftpd/copyright").exists()
    for program in ("ftpd", "ftpc"):
        assert (root / "usr/bin" / program).read_text().startswith("#!/usr/bin/python3")
    control = (root / "DEBIAN/control").read_text()
    for dependency in ("python3-psutil", "python3-setproctitle", "python3-daemon",
                       "python3-tqdm"):
        assert re.search(rf"Depends:.*\b{dependency}\b", control), dependency


def test_packaged_units_differ_only_in_the_program_path(package):
    root = tree(package)
    for unit in ("ftpd.service", "ftpd.socket", "ftpd-metrics.socket"):
        ours = (PROJECT / "systemd" / unit).read_text().splitlines()
        packed = (root / "lib/systemd/system" / unit).read_text().splitlines()
        assert len(ours) == len(packed)
        changed = [(a, b) for a, b in zip(ours, packed, strict=False) if a != b]
        for upstream, shipped in changed:
            if upstream.startswith("Documentation="):
                assert shipped == "Documentation=man:ftpd(8) man:ftpd.conf(5)"
            else:
                assert shipped == upstream.replace("/opt/ftpd/bin/ftpd", "/usr/bin/ftpd")
        assert "/opt/ftpd" not in "\n".join(packed)
    service = (root / "lib/systemd/system/ftpd.service").read_text()
    assert "ExecStart=/usr/bin/ftpd -c /etc/ftpd/ftpd.conf serve" in service


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_packaged_service_keeps_its_sandbox_rating(package):
    def rating(unit: Path) -> float:
        result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                                 "--threshold=20", str(unit)], capture_output=True,
                                text=True, timeout=60)
        match = re.search(r"Overall exposure level for ftpd.service: (\d+\.\d)", result.stdout)
        assert match, result.stdout + result.stderr
        return float(match.group(1))
    packed = rating(tree(package) / "lib/systemd/system/ftpd.service")
    assert packed == rating(PROJECT / "systemd/ftpd.service") and packed <= 1.6


def test_upgrade_restarts_the_service_but_not_the_socket(package):
    """The maintainer scripts as built: enable and start both units; on upgrade
    only `try-restart ftpd.service` (the deployment test runs it for real)."""
    scripts = tree(package) / "DEBIAN"
    postinst = (scripts / "postinst").read_text()
    assert "deb-systemd-helper enable 'ftpd.service'" in postinst
    assert "deb-systemd-helper enable 'ftpd.socket'" in postinst
    # Shipped off: enabled again on upgrade only if the admin had enabled it,
    # never started by the package, and in the state that a purge cleans.
    assert "was-enabled 'ftpd-metrics.socket'" in postinst
    assert "update-state 'ftpd-metrics.socket'" in postinst
    assert not [line for line in postinst.splitlines()
                if "ftpd-metrics.socket" in line and ("start" in line or "restart" in line)]
    assert "systemd-sysusers" in postinst.split("systemd-tmpfiles")[0]   # user first
    restarts = [line.strip() for line in postinst.splitlines() if "restart" in line
                and not line.strip().startswith("#")]
    assert restarts == ["deb-systemd-invoke try-restart ftpd.service >/dev/null || true"]
    assert "stop" not in (scripts / "prerm").read_text().split('"$1" = remove')[0]
    assert "rm -rf /var/log/ftpd" in (scripts / "postrm").read_text()


# -- the checkout's launchers ----------------------------------------------------------

@pytest.mark.parametrize("launcher", ["ftpd", "ftpc"])
def test_bin_launchers_use_the_checkouts_venv(launcher, tmp_path):
    if not (PROJECT / ".venv" / "bin" / "python").exists():
        pytest.skip("this checkout has no .venv")
    broken = tmp_path / "python3"            # a python3 on PATH that must not be used
    broken.write_text("#!/bin/sh\necho 'not the venv' >&2\nexit 97\n")
    broken.chmod(0o755)
    result = subprocess.run([str(PROJECT / "bin" / launcher), "--version"],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PATH=f"{tmp_path}:/usr/bin:/bin"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{launcher} {__version__}"
