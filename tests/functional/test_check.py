"""`ftpd check`: exit 0, or 78 naming file, section and key."""

import pytest

from tests.harness import run_ftpd


def check(path):
    return run_ftpd("-c", str(path), "check")


def test_a_good_config_passes(tmp_path):
    conf = tmp_path / "ftpd.conf"
    conf.write_text("[server]\nlisten = 127.0.0.1:8021\npidfile = /run/ftpd/ftpd.pid\n"
                    "[log]\nlevel = debug\ntransfer_log = /var/log/ftpd/transfer.log\n")
    result = check(conf)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{conf}: ok")


@pytest.mark.parametrize("text, where", [
    ("[server]\nmax_clients = many\n", "[server] max_clients: 'many' is not a whole number"),
    ("[server]\nlisten_on = 1.2.3.4:21\n", "[server] listen_on: unknown key"),
    ("[srv]\nlisten = 127.0.0.1:1\n", "[srv]: unknown section"),
    ("[log]\nlevel = loud\n", "[log] level: 'loud' is not one of"),
    ("[server]\nlisten = nowhere\n", "[server] listen: 'nowhere' is not host:port"),
])
def test_errors_exit_78_and_name_file_section_key(tmp_path, text, where):
    conf = tmp_path / "ftpd.conf"
    conf.write_text(text)
    result = check(conf)
    assert result.returncode == 78
    assert f"{conf}: {where}" in result.stderr


def test_a_missing_file_exits_78(tmp_path):
    result = check(tmp_path / "absent.conf")
    assert result.returncode == 78
    assert "absent.conf: cannot read" in result.stderr
