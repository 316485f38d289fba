"""The settings table, config parsing and validation, and what documents them."""

import dataclasses
import subprocess
import sys

import pytest

from ftpd import config
from ftpd.config import ConfigError
from tests.harness import PROJECT, ftpd_argv, project_env, run_ftpd, write_config


def test_defaults_without_any_file(tmp_path):
    cfg = config.load(None, environ={})
    assert cfg.server.listen == (("127.0.0.1", 8021),)
    assert cfg.server.max_clients == 200
    assert cfg.server.max_clients_per_ip == 50
    assert cfg.server.idle_timeout == 300
    assert cfg.server.data_timeout == 60
    assert cfg.server.backlog == 1024
    assert cfg.files.max_file_size == 0
    assert cfg.files.min_free_space == 64 << 20
    assert cfg.files.overwrite is True and cfg.files.fsync is True
    assert cfg.access.anonymous == "write"
    assert cfg.server.root.endswith("/library")


def test_config_is_frozen():
    cfg = config.load(None, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server.max_clients = 5


def test_lookup_order(tmp_path):
    explicit = write_config(tmp_path / "a.conf", {"server": {"max_clients": 7}})
    env = write_config(tmp_path / "b.conf", {"server": {"max_clients": 9}})
    assert config.locate(str(explicit), {"FTPD_CONFIG": str(env)}) == str(explicit)
    assert config.locate(None, {"FTPD_CONFIG": str(env)}) == str(env)
    assert config.load(None, environ={"FTPD_CONFIG": str(env)}).server.max_clients == 9


def test_values_are_parsed(tmp_path):
    path = write_config(tmp_path / "c.conf", {
        "server": {"listen": "127.0.0.1:1, [::1]:2", "root": tmp_path},
        "files": {"max_file_size": "10M", "min_free_space": "1k", "overwrite": "no"},
        "access": {"anonymous": "READ"}})
    cfg = config.load(str(path))
    assert cfg.server.listen == (("127.0.0.1", 1), ("::1", 2))
    assert cfg.files.max_file_size == 10 << 20
    assert cfg.files.min_free_space == 1024
    assert cfg.files.overwrite is False
    assert cfg.access.anonymous == "read"
    assert cfg.source == str(path)


@pytest.mark.parametrize("section, key, value", [
    ("server", "max_clients", "many"),
    ("server", "max_clients", "0"),
    ("server", "listen", "localhost"),
    ("server", "listen", "1.2.3.4:70000"),
    ("server", "listen", "::1:8021"),
    ("server", "idle_timeout", "-1"),
    ("server", "idle_timeout", "nan"),
    ("files", "max_file_size", "12Q"),
    ("files", "overwrite", "maybe"),
    ("access", "anonymous", "admin"),
])
def test_bad_values_name_file_section_and_key(tmp_path, section, key, value):
    path = write_config(tmp_path / "bad.conf", {section: {key: value}})
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    message = str(info.value)
    assert str(path) in message and f"[{section}]" in message and key in message


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    path = write_config(tmp_path / "bad.conf", {"server": {"root": tmp_path / "f"}})
    with pytest.raises(ConfigError, match=r"\[server\] root"):
        config.load(str(path))


def test_unknown_section_and_key_are_errors(tmp_path):
    path = write_config(tmp_path / "u.conf", {"nonsense": {"a": 1}})
    with pytest.raises(ConfigError, match=r"\[nonsense\]: unknown section"):
        config.load(str(path))
    path = write_config(tmp_path / "k.conf", {"server": {"max_client": 3}})
    with pytest.raises(ConfigError, match=r"\[server\] max_client: unknown key"):
        config.load(str(path))


def test_syntax_errors_and_missing_files_are_config_errors(tmp_path):
    broken = tmp_path / "broken.conf"
    broken.write_text("no section header here\n")
    with pytest.raises(ConfigError, match="broken.conf"):
        config.load(str(broken))
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.conf"))


def test_command_line_overrides_are_validated_too():
    with pytest.raises(ConfigError, match=r"command line: \[server\] listen"):
        config.load(None, {("server", "listen"): "nope"}, environ={})
    cfg = config.load(None, {("server", "listen"): "127.0.0.2:9"}, environ={})
    assert cfg.server.listen == (("127.0.0.2", 9),)


@pytest.mark.parametrize("text, value", [("0", 0), ("64M", 64 << 20), ("2g", 2 << 30),
                                         ("1T", 1 << 40), ("5 K", 5120), ("3MiB", 3 << 20)])
def test_sizes(text, value):
    assert config.parse_size(text) == value


def test_bad_config_exits_78_with_a_clear_message(tmp_path):
    path = write_config(tmp_path / "bad.conf", {"server": {"backlog": "huge"}})
    for command in (["check"], ["serve"], []):
        result = run_ftpd("-c", str(path), *command)
        assert result.returncode == 78
        assert f"{path}: [server] backlog:" in result.stderr
        assert "Traceback" not in result.stderr


def test_check_accepts_a_good_file(tmp_path):
    path = write_config(tmp_path / "ok.conf", {"server": {"max_clients": 3}})
    result = run_ftpd("-c", str(path), "check")
    assert result.returncode == 0, result.stderr


def test_shipped_config_and_readme_are_generated_from_the_table(tmp_path):
    sys.path.insert(0, str(PROJECT / "tools"))
    try:
        import gen_docs
    finally:
        sys.path.pop(0)
    conf = (PROJECT / "etc" / "ftpd.conf").read_text()
    assert conf == gen_docs.shipped_conf(), "run python3 tools/gen_docs.py"
    for setting in config.SETTINGS:
        assert f"# {setting.help}\n#{setting.key} = {setting.default}\n" in conf
    readme = (PROJECT / "README.md").read_text()
    assert readme == gen_docs.readme_with_reference(readme), "run python3 tools/gen_docs.py"
    assert config.reference_markdown() in readme
    shipped = config.load(str(PROJECT / "etc" / "ftpd.conf"))
    assert shipped.access.anonymous == "none" and shipped.access.users_file
    assert shipped.server.user == "ftpd"


def test_help_lists_every_setting_with_its_default():
    helptext = run_ftpd("--help").stdout
    for setting in config.SETTINGS:
        assert f"[{setting.section}] {setting.key} = {setting.default}" in helptext


def test_command_line_listen_and_root_override_the_file(tmp_path):
    import signal as sig
    from tests.harness import wait_until
    path = write_config(tmp_path / "f.conf", {"server": {"listen": "127.0.0.1:1",
                                                         "root": tmp_path / "ignored"}})
    log = tmp_path / "log"
    (tmp_path / "lib").mkdir()      # a root that is not the built-in default must exist
    with open(log, "wb") as out:
        proc = subprocess.Popen(ftpd_argv("-c", str(path), "serve", "--listen", "127.0.0.1:0",
                                          "--root", str(tmp_path / "lib")),
                                stdout=out, stderr=out, env=project_env(), cwd=tmp_path)
    try:
        wait_until(lambda: "ftpd serving" in log.read_text(), what="the server")
        text = log.read_text()
        assert f"serving {tmp_path / 'lib'} on 127.0.0.1:" in text
        assert not (tmp_path / "ignored").exists()
    finally:
        proc.send_signal(sig.SIGTERM)
        assert proc.wait(20) == 0


def test_no_subcommand_means_serve_with_built_in_defaults(tmp_path):
    import signal as sig
    from tests.harness import wait_until
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(ftpd_argv("--listen", "127.0.0.1:0"),
                                stdout=out, stderr=out, env=project_env(), cwd=tmp_path)
    try:
        wait_until(lambda: "ftpd serving" in log.read_text(), what="the server")
        assert (tmp_path / "library").is_dir()     # the built-in ./library
    finally:
        proc.send_signal(sig.SIGTERM)
        assert proc.wait(20) == 0


def test_typed_sections_and_the_settings_table_agree():
    # The dataclasses give the types; the table gives defaults and help. Every
    # row has exactly one field and every field one row, in the same order.
    import dataclasses as dc
    from ftpd.config import SECTION_TYPES, SECTIONS, SETTINGS, Config
    assert [f.name for f in dc.fields(Config)
            if f.name not in ("source", "from_file", "from_command_line")] == list(SECTIONS)
    for section, cls in SECTION_TYPES.items():
        table = [s.key for s in SETTINGS if s.section == section]
        assert [f.name for f in dc.fields(cls)] == sorted(table, key=table.index)
        assert sorted(f.name for f in dc.fields(cls)) == sorted(table)


def test_every_default_parses_to_its_declared_type():
    import dataclasses as dc
    import typing
    from ftpd import config as cfg_mod
    built = cfg_mod.build({})
    for section, cls in cfg_mod.SECTION_TYPES.items():
        hints = typing.get_type_hints(cls, vars(cfg_mod))
        for field in dc.fields(cls):
            value = getattr(getattr(built, section), field.name)
            hint = hints[field.name]
            origin = typing.get_origin(hint)
            # Optional[int]: the value is one of the union's members (Tuple[...]: a tuple)
            expected = tuple(typing.get_origin(arg) or arg for arg in typing.get_args(hint)) \
                if origin is typing.Union else (origin or hint)
            assert isinstance(value, expected), (section, field.name, value)


def test_a_home_that_climbs_out_of_the_library_is_refused():
    from ftpd import config as cfg_mod
    with pytest.raises(cfg_mod.ConfigError, match=r"\[access\] anonymous_home"):
        cfg_mod.build({("access", "anonymous_home"): "pub/../../etc"})
    built = cfg_mod.build({("access", "anonymous_home"): "pub/in box"})
    assert built.access.anonymous_home == "pub/in box"


# --- the file's syntax: every message names file, line, section and key -----------

def load_text(tmp_path, text, encoding="utf-8"):
    path = tmp_path / "syntax.conf"
    path.write_bytes(text.encode(encoding))
    return path, config.load(str(path))


def syntax_error(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value).removeprefix(str(tmp_path / "syntax.conf"))


def test_a_utf8_bom_is_accepted(tmp_path):
    _, cfg = load_text(tmp_path, "\ufeff[server]\nmax_clients = 7\n")
    assert cfg.server.max_clients == 7


def test_what_configparser_accepted_still_reads(tmp_path):
    _, cfg = load_text(tmp_path, "# top\n[server]\n  ; indented comment\nMax_Clients : 9\n"
                                 "\n[files]\nmin_free_space =\t1M\n")
    assert cfg.server.max_clients == 9 and cfg.files.min_free_space == 1 << 20
    assert cfg.from_file == {("server", "max_clients"), ("files", "min_free_space")}


@pytest.mark.parametrize("text, expected", [
    ("listen = 127.0.0.1:21\n[server]\n",
     ":1: listen: a setting before any [section] header; it belongs under [server] or "
     "[metrics]"),
    ("[server]\nmax_clients = 5\n  backlog = 3\n",
     ":3: [server] max_clients: an indented line would continue this value; values are one "
     "line: remove the indentation of line 3"),
    ("[files]\nmin_free_space = 64M  # leave room\n",
     ":2: [files] min_free_space: comments are not allowed after a value (it would read "
     "'64M  # leave room'): put '# leave room' on a line of its own"),
    ("[log]\nfile = /var/log/ftpd.log ; main\n",
     ":2: [log] file: comments are not allowed after a value"),
    ("[server]\nmax_clients = 5\n\nmax_clients = 6\n",
     ":4: [server] max_clients: set twice (first on line 2)"),
    ("[server]\n[files]\n[server]\n", ":3: [server]: section appears twice (first on line 1)"),
    ("[server]\njust words\n", ":2: [server]: 'just words' is not key = value"),
    ("[server] listen = 1.2.3.4:5\n", ":1: nothing may follow a [section] header"),
    ("[srv]\n", ":1: [srv]: unknown section (known: server, files"),
    ("[server]\nmax_client = 3\n", ":2: [server] max_client: unknown key"),
])
def test_syntax_errors_name_line_section_and_key(tmp_path, text, expected):
    assert syntax_error(tmp_path, text).startswith(expected)


def test_a_key_in_the_wrong_section_says_where_it_belongs(tmp_path):
    message = syntax_error(tmp_path, "[server]\nmax_rate = 4M\n")
    assert message == ":2: [server] max_rate: unknown key in [server]: it belongs under [files]"


def test_a_removed_key_is_named_as_removed(tmp_path):
    # [server] spare_children came in 8a647c6 and was reverted before 0.1.0.
    message = syntax_error(tmp_path, "[server]\nmax_clients = 5\nspare_children = 4\n")
    assert message.startswith(":3: [server] spare_children: was removed")
    assert "delete the line" in message


def test_every_retired_key_is_really_gone():
    from ftpd.conffile import KNOWN, RETIRED
    assert RETIRED and not set(RETIRED) & KNOWN


def test_text_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin.conf"
    path.write_bytes("[server]\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.conf:2: is not UTF-8"):
        config.load(str(path))


def test_origin_tells_file_command_line_and_default_apart(tmp_path):
    path = write_config(tmp_path / "o.conf", {"server": {"max_clients": 3}})
    cfg = config.load(str(path), {("server", "root"): str(tmp_path)})
    assert cfg.origin("server", "max_clients") == str(path)
    assert cfg.origin("server", "root") == "command line"
    assert cfg.origin("server", "listen") is None
