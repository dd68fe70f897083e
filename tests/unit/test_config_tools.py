"""``raftreg config init`` and ``config check`` (raftreg.config_init, raftreg.config_check), and
the secret from a systemd credential (ClusterConfig.read_secret)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from raftreg.cli.main import cli
from raftreg.config import ClusterConfig, NodeConfig, dump_config, load_config
from raftreg.config_check import check_config
from raftreg.config_init import Member, Ports, parse_member, render_config, write_secret

MEMBERS = [Member("n1", "10.0.0.1", "voter"), Member("n2", "10.0.0.2", "voter"), Member("n3", "10.0.0.3", "voter")]


def test_rendered_config_loads_with_every_member_and_its_paths(tmp_path: Path) -> None:
    text = render_config("prod", [*MEMBERS, Member("r1", "10.0.0.9", "replica")], ports=Ports(8500, 8300, 8511, 8600),
                         install_dir="/etc/raftreg", tls=True)
    (tmp_path / "prod.toml").write_text(text)
    config = load_config(tmp_path / "prod.toml")
    assert config.name == "prod" and config.data_dir == "/var/lib/raftreg"
    assert config.secret_file == "/etc/raftreg/secret"
    assert [(n.name, n.http, n.raft, n.consul_http, n.dns, n.role) for n in config.nodes] == [
        ("n1", "10.0.0.1:8500", "10.0.0.1:8300", "10.0.0.1:8511", "10.0.0.1:8600", "voter"),
        ("n2", "10.0.0.2:8500", "10.0.0.2:8300", "10.0.0.2:8511", "10.0.0.2:8600", "voter"),
        ("n3", "10.0.0.3:8500", "10.0.0.3:8300", "10.0.0.3:8511", "10.0.0.3:8600", "voter"),
        ("r1", "10.0.0.9:8500", "10.0.0.9:8300", "10.0.0.9:8511", "10.0.0.9:8600", "replica"),
    ]
    assert config.tls is not None and config.tls.node_files("n2") == ("/etc/raftreg/tls/n2.pem",
                                                                       "/etc/raftreg/tls/n2-key.pem")
    assert config.tls.ca_file == "/etc/raftreg/tls/ca.pem"


def test_ipv6_hosts_are_bracketed() -> None:
    member = parse_member("n1=[fd00::1]")
    text = render_config("v6", [member])
    assert 'http = "[fd00::1]:8500"' in text


@pytest.mark.parametrize("text", ["n1", "=10.0.0.1", "n1=", "n 1=10.0.0.1", "n1=a b"])
def test_a_bad_member_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not name=host"):
        parse_member(text)


def test_the_secret_is_mode_600_and_never_replaced(tmp_path: Path) -> None:
    write_secret(tmp_path / "secret")
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert len((tmp_path / "secret").read_text().strip()) >= 40
    with pytest.raises(FileExistsError):
        write_secret(tmp_path / "secret")


def test_init_writes_the_files_and_check_accepts_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["config", "init", "--name", "prod", "--node", "n1=10.0.0.1", "--node", "n2=10.0.0.2", "--node",
            "n3=10.0.0.3", "--tls", "--out-dir", "out", "--install-dir", str(tmp_path / "out")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    (tmp_path / "prod.toml").write_text(result.stdout)
    assert stat.S_IMODE((tmp_path / "out" / "secret").stat().st_mode) == 0o600
    for name in ("ca.pem", "n1.pem", "n1-key.pem", "n3-key.pem"):
        assert (tmp_path / "out" / "tls" / name).is_file()
    assert stat.S_IMODE((tmp_path / "out" / "tls" / "n2-key.pem").stat().st_mode) == 0o600
    assert check_config(tmp_path / "prod.toml", {}) == []
    checked = runner.invoke(cli, ["config", "check", "prod.toml"])
    assert (checked.exit_code, checked.stdout) == (0, "prod.toml: ok\n")
    again = runner.invoke(cli, args)  # never replaces the secret of an existing cluster by accident
    assert again.exit_code == 2 and "exists" in again.output
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0


def test_init_refuses_duplicate_members_before_writing_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "init", "--name", "p", "--node", "n1=10.0.0.1", "--node",
                                      "n1=10.0.0.2", "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and "node names must be unique" in result.output
    assert not (tmp_path / "out").exists()


def test_init_refuses_node_names_that_would_overwrite_a_certificate(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "init", "--name", "p", "--node", "ca=10.0.0.1", "--tls",
                                      "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and "cannot be called 'ca'" in result.output
    assert not (tmp_path / "out").exists()


def lines(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "c.toml").write_text(text)
    return [str(p) for p in check_config(tmp_path / "c.toml", {"RAFTREG_SECRET": "s"} if env is None else env)]


def node(name: str, http: str, raft: str, extra: str = "") -> str:
    return f'\n[[nodes]]\nname = "{name}"\nhttp = "{http}"\nraft = "{raft}"\n{extra}'


def test_check_reports_every_problem_in_one_line_each(tmp_path: Path) -> None:
    text = ('name = "bad"\nsecret_file = "missing-secret"\n[raft]\nappend_entries_period = 0.3\n'
            'raft_max_timeout = 0.5\n'
            + node("n1", "10.0.0.1:8500", "10.0.0.1:8500") + node("n1", "10.0.0.2:8500", "10.0.0.1:8300")
            + node("n3", "10.0.0.3:8500", "10.0.0.3:8300", 'role = "replica"\n')
            + node("n4", "10.0.0.1:8300", "nohost", 'role = "replica"\n'))
    assert lines(tmp_path, text) == [
        "error: node name 'n1' is used by 2 nodes",
        "error: node 'n4' raft: address 'nohost' is not host:port",
        "error: 10.0.0.1:8500 is used by n1.http and n1.raft: only one of them can listen there",
        "error: 10.0.0.1:8300 is used by n1.raft and n4.http: only one of them can listen there",
        "warning: 2 voters: an even count tolerates no more failures than 1 and can split evenly (use an odd number)",
        "error: raft.raft_min_timeout = 0.6 must be more than 3 x raft.append_entries_period (0.9): "
        "pysyncobj refuses to start",
        "error: raft.raft_max_timeout = 0.5 must be at least raft.raft_min_timeout (0.6)",
        "error: secret_file missing-secret: No such file or directory",
    ]


def test_check_without_voters_or_nodes(tmp_path: Path) -> None:
    assert lines(tmp_path, 'name = "x"\n' + node("r", "h:1", "h:2", 'role = "replica"\n')) == [
        'error: no voter: at least one node must have role = "voter"']
    assert lines(tmp_path, 'name = "x"\n') == ["error: no [[nodes]]: a cluster needs at least one node"]


def test_check_names_the_loaders_error_and_missing_tls_files(tmp_path: Path) -> None:
    assert lines(tmp_path, 'name = "x"\ncolour = "red"\n' + node("n1", "h:1", "h:2")) == [
        "error: Object contains unknown field `colour`"]
    text = 'name = "x"\n[tls]\ncert_file = "t/{node}.pem"\nkey_file = "t/{node}-key.pem"\n' + node("n1", "h:1", "h:2")
    assert lines(tmp_path, text) == ["error: tls.cert_file of n1: t/n1.pem does not exist",
                                     "error: tls.key_file of n1: t/n1-key.pem does not exist"]
    assert lines(tmp_path, "name = \n") [0].startswith("error: ")
    assert lines(tmp_path, 'name = "x"\n' + node("n1", "h:1", "h:2"), env={}) == [
        "warning: no secret_file: every node needs $RAFTREG_SECRET (or a raftreg-secret systemd credential)"]


def test_check_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "warn.toml").write_text('name = "x"\n' + node("n1", "h:1", "h:2") + node("n2", "h:3", "h:4"))
    warned = runner.invoke(cli, ["config", "check", str(tmp_path / "warn.toml")], env={"RAFTREG_SECRET": "s"})
    assert warned.exit_code == 0 and "warning: 2 voters" in warned.stdout
    strict = runner.invoke(cli, ["config", "check", "--strict", str(tmp_path / "warn.toml")],
                           env={"RAFTREG_SECRET": "s"})
    assert strict.exit_code == 1
    missing = runner.invoke(cli, ["config", "check", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1 and "cannot read" in missing.stdout


def test_the_secret_comes_from_the_systemd_credential_before_the_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    config = ClusterConfig(name="c", nodes=[NodeConfig("n1", "h:1", "h:2")], secret_file=str(tmp_path / "secret"))
    monkeypatch.delenv("RAFTREG_SECRET", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert config.read_secret() == "from-file"  # no credential of that name: the file
    (creds / "raftreg-secret").write_text("from-credential\n")
    assert config.read_secret() == "from-credential"
    monkeypatch.setenv("RAFTREG_SECRET", "from-env")
    assert config.read_secret() == "from-env"


def test_dump_config_keeps_a_replicas_role(tmp_path: Path) -> None:
    replica = NodeConfig("r1", "h:3", "h:4", role="replica")
    config = ClusterConfig(name="c", nodes=[NodeConfig("n1", "h:1", "h:2"), replica])
    (tmp_path / "c.toml").write_text(dump_config(config))
    assert [n.role for n in load_config(tmp_path / "c.toml").nodes] == ["voter", "replica"]
