"""Cluster configs: the shipped files, validation errors, the secret, and dump/load round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftreg.config import (
    CheckTuning,
    ClusterConfig,
    ConfigError,
    KVTuning,
    LeaseTuning,
    NodeConfig,
    RaftTuning,
    dump_config,
    load_config,
    split_hostport,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "cluster-configs"


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def nodes_toml(*nodes: tuple[str, str, str]) -> str:
    return "".join(f'\n[[nodes]]\nname = "{n}"\nhttp = "{h}"\nraft = "{r}"\n' for n, h, r in nodes)


THREE = (("n1", "127.0.0.1:8501", "127.0.0.1:7001"), ("n2", "127.0.0.1:8502", "127.0.0.1:7002"))


@pytest.mark.parametrize(
    ("file", "name", "count", "first_http", "first_raft"),
    [
        ("local-3.toml", "local-3", 3, "127.0.0.1:8501", "127.0.0.1:7001"),
        ("local-5.toml", "local-5", 5, "127.0.0.1:8511", "127.0.0.1:7011"),
        ("single.toml", "single", 1, "127.0.0.1:8500", "127.0.0.1:7000"),
    ],
)
def test_shipped_configs_load(file: str, name: str, count: int, first_http: str, first_raft: str) -> None:
    config = load_config(CONFIG_DIR / file)
    assert config.name == name
    assert len(config.nodes) == count
    assert [n.name for n in config.nodes] == [f"n{i}" for i in range(1, count + 1)]
    assert (config.nodes[0].http, config.nodes[0].raft) == (first_http, first_raft)
    assert config.nodes[0].http_url == f"http://{first_http}"
    assert config.data_dir == f"raftreg-data/{name}"
    assert config.secret_env == "RAFTREG_SECRET"
    assert config.secret_file is None
    assert config.raft == RaftTuning()
    assert config.raft.journal is True
    assert config.node(f"n{count}") is config.nodes[-1]
    assert config.node_data_dir("n1") == Path(f"raftreg-data/{name}/n1")
    assert config.node_data_dir("n1", base="/tmp/x") == Path("/tmp/x/n1")
    with pytest.raises(ConfigError, match="no node"):
        config.node("n99")


def test_shipped_configs_are_all_tested() -> None:
    assert sorted(p.name for p in CONFIG_DIR.glob("*.toml")) == ["local-3-plus-2.toml", "local-3.toml",
                                                                 "local-5.toml", "single.toml"]


def test_shipped_config_with_read_replicas_loads() -> None:
    config = load_config(CONFIG_DIR / "local-3-plus-2.toml")
    voters = load_config(CONFIG_DIR / "local-3.toml")
    assert config.voters == voters.nodes  # the same three voters as local-3
    assert [(n.name, n.role, n.http, n.raft, n.consul_http, n.dns) for n in config.replicas] == [
        ("r1", "replica", "127.0.0.1:8504", "127.0.0.1:7004", "127.0.0.1:8514", "127.0.0.1:8614"),
        ("r2", "replica", "127.0.0.1:8505", "127.0.0.1:7005", "127.0.0.1:8515", "127.0.0.1:8615"),
    ]


def test_roles_default_to_voter_and_a_cluster_needs_a_voter(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'name = "c"\n' + nodes_toml(*THREE)))
    assert [n.role for n in config.nodes] == ["voter", "voter"] and config.replicas == []
    replicas_only = 'name = "c"\n' + nodes_toml(*THREE).replace('raft = "', 'role = "replica"\nraft = "')
    with pytest.raises(ConfigError, match="at least one node with role"):
        load_config(write(tmp_path, replicas_only))
    with pytest.raises(ConfigError, match="role"):
        learner = nodes_toml(*THREE).replace('raft = "', 'role = "learner"\nraft = "', 1)
        load_config(write(tmp_path, 'name = "c"\n' + learner))


@pytest.mark.parametrize(("replica", "match"), [
    (("n1", "127.0.0.1:8509", "127.0.0.1:7009"), "names must be unique"),
    (("r1", "127.0.0.1:8501", "127.0.0.1:7009"), "http addresses must be unique"),
    (("r1", "127.0.0.1:8509", "127.0.0.1:7001"), "raft addresses must be unique"),
])
def test_replica_names_and_addresses_are_unique_like_voters(tmp_path: Path, replica: tuple[str, str, str],
                                                           match: str) -> None:
    name, http, raft = replica
    text = 'name = "c"\n' + nodes_toml(*THREE, (name, http, raft)) + 'role = "replica"\n'
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("period", ["0", "-0.5", "2.0"])
def test_a_tick_period_outside_0_to_1_second_is_refused(tmp_path: Path, period: str) -> None:
    text = f'name = "c"\n[raft]\ntick_period = {period}\n' + nodes_toml(*THREE)
    with pytest.raises(ConfigError, match=r"raft\.tick_period"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(("setting", "field"), [
    ("batch_wait = -0.001", "batch_wait"), ("batch_wait = 0.5", "batch_wait"),
    ("batch_wait_from = 1", "batch_wait_from"),
])
def test_a_batch_wait_out_of_range_is_refused_and_0_is_off(tmp_path: Path, setting: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"raft\.{field} must"):
        load_config(write(tmp_path, f'name = "c"\n[raft]\n{setting}\n' + nodes_toml(*THREE)))
    config = load_config(write(tmp_path, 'name = "c"\n[raft]\nbatch_wait = 0\n' + nodes_toml(*THREE)))
    assert config.raft.batch_wait == 0


def test_entry_compression_is_off_at_0_and_refused_below(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'name = "c"\n[raft]\ncompress_entries_from_bytes = 0\n' + nodes_toml(*THREE)))
    assert config.raft.compress_entries_from_bytes == 0
    text = 'name = "c"\n[raft]\ncompress_entries_from_bytes = -1\n' + nodes_toml(*THREE)
    with pytest.raises(ConfigError, match=r"raft\.compress_entries_from_bytes must be 0 \(off\) or more"):
        load_config(write(tmp_path, text))


def test_raft_tuning_overrides(tmp_path: Path) -> None:
    text = 'name = "c"\n[raft]\ncommit_timeout = 2.5\njournal = false\nmax_batch_commands = 10\n' + nodes_toml(*THREE)
    config = load_config(write(tmp_path, text))
    assert config.raft.commit_timeout == 2.5
    assert config.raft.journal is False
    assert config.raft.max_batch_commands == 10
    assert config.raft.raft_min_timeout == RaftTuning().raft_min_timeout


@pytest.mark.parametrize(
    ("nodes", "match"),
    [
        ((("n1", "h:1", "h:2"), ("n1", "h:3", "h:4")), "names"),
        ((("n1", "h:1", "h:2"), ("n2", "h:1", "h:4")), "http"),
        ((("n1", "h:1", "h:2"), ("n2", "h:3", "h:2")), "raft"),
        ((), "at least one node"),
    ],
    ids=["dup-name", "dup-http", "dup-raft", "no-nodes"],
)
def test_inconsistent_nodes_raise(tmp_path: Path, nodes: tuple[tuple[str, str, str], ...], match: str) -> None:
    text = 'name = "c"\nnodes = []\n' if not nodes else 'name = "c"\n' + nodes_toml(*nodes)
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.0.0.1:", ":8500", "h:0", "h:65536", "h:abc", "h:-1", "h:80 ", ""])
@pytest.mark.parametrize("attr", ["http", "raft"])
def test_bad_host_port_raises(tmp_path: Path, addr: str, attr: str) -> None:
    node = {"name": "n1", "http": "h:1", "raft": "h:2", attr: addr}
    text = f'name = "c"\n[[nodes]]\nname = "n1"\nhttp = "{node["http"]}"\nraft = "{node["raft"]}"\n'
    with pytest.raises(ConfigError, match="host:port"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:8500", ("127.0.0.1", 8500)),
        ("h:1", ("h", 1)),
        ("h:65535", ("h", 65535)),
        ("[::1]:80", ("[::1]", 80)),
    ],
)
def test_split_hostport(addr: str, expected: tuple[str, int]) -> None:
    assert split_hostport(addr) == expected


def test_split_hostport_rejects_non_ascii_digits() -> None:
    with pytest.raises(ConfigError):
        split_hostport("h:²")


@pytest.mark.parametrize(
    "text",
    [
        'name = "c"\nbogus = 1\n' + nodes_toml(*THREE),  # unknown top-level field
        'name = "c"\n' + nodes_toml(*THREE) + "[raft]\nno_such_knob = 1\n",
        'name = "c"\n[[nodes]]\nname = "n1"\nhttp = "h:1"\n',  # missing raft address
        nodes_toml(*THREE),  # no cluster name
        "name = 3\n" + nodes_toml(*THREE),
        'name = "c"\n[raft]\ncommit_timeout = "soon"\n' + nodes_toml(*THREE),
        "this is = not toml [",
    ],
    ids=["unknown-field", "unknown-raft-knob", "missing-raft", "missing-name", "name-type", "tuning-type", "not-toml"],
)
def test_invalid_files_raise_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text))


def test_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


# ---- the secret --------------------------------------------------------------------------------
def config_with(secret_env: str = "RAFTREG_TEST_SECRET", secret_file: str | None = None) -> ClusterConfig:
    return ClusterConfig(
        name="c", nodes=[NodeConfig("n1", "h:1", "h:2")], secret_env=secret_env, secret_file=secret_file
    )


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAFTREG_TEST_SECRET", "s3cret")
    assert config_with().read_secret() == "s3cret"


def test_secret_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAFTREG_TEST_SECRET", raising=False)
    secret = tmp_path / "secret"
    secret.write_text("  from-file\n")
    assert config_with(secret_file=str(secret)).read_secret() == "from-file"


def test_env_wins_over_file_and_empty_env_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file")
    config = config_with(secret_file=str(secret))
    monkeypatch.setenv("RAFTREG_TEST_SECRET", "from-env")
    assert config.read_secret() == "from-env"
    monkeypatch.setenv("RAFTREG_TEST_SECRET", "")
    assert config.read_secret() == "from-file"


def test_no_secret_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAFTREG_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="RAFTREG_TEST_SECRET"):
        config_with().read_secret()
    empty = tmp_path / "empty"
    empty.write_text("\n  \n")
    with pytest.raises(ConfigError, match="no cluster secret"):
        config_with(secret_file=str(empty)).read_secret()
    with pytest.raises(ConfigError, match="cannot read secret_file"):
        config_with(secret_file=str(tmp_path / "absent")).read_secret()


def test_secret_env_name_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAFTREG_TEST_SECRET", raising=False)
    monkeypatch.setenv("OTHER_SECRET_VAR", "other")
    assert config_with(secret_env="OTHER_SECRET_VAR").read_secret() == "other"


# ---- dump/load -----------------------------------------------------------------------------------
@pytest.mark.parametrize("file", ["local-3.toml", "local-5.toml", "single.toml", "local-3-plus-2.toml"])
def test_dump_round_trips_shipped_configs(tmp_path: Path, file: str) -> None:
    config = load_config(CONFIG_DIR / file)
    assert load_config(write(tmp_path, dump_config(config))) == config


def test_dump_round_trips_every_field(tmp_path: Path) -> None:
    config = ClusterConfig(
        name="generated",
        nodes=[NodeConfig(f"node-{i}", f"10.0.0.{i}:85{i:02d}", f"10.0.0.{i}:70{i:02d}") for i in range(1, 4)],
        data_dir="/tmp/raftreg data",
        secret_env="GEN_SECRET",
        secret_file="/run/secrets/raftreg",
        raft=RaftTuning(
            append_entries_use_batch=True,
            append_entries_period=0.05,
            raft_min_timeout=0.2,
            raft_max_timeout=0.4,
            connection_timeout=5.0,
            leader_fallback_timeout=1.5,
            log_compaction_min_entries=100,
            log_compaction_min_time=1.0,
            commands_queue_size=50,
            journal=False,
            commit_timeout=2.5,
            max_batch_commands=7,
        ),
        leases=LeaseTuning(grace=2.0, gossip_period=0.5, mass_expiry_share=0.7, mass_expiry_rate=9.0),
        checks=CheckTuning(max_concurrent=16, reconcile_period=0.25),
        kv=KVTuning(history=3),
    )
    text = dump_config(config)
    loaded = load_config(write(tmp_path, text))
    assert loaded == config
    assert dump_config(loaded) == text


@pytest.mark.parametrize("tuning", ["raft_min_timeout = 0.3\nappend_entries_period = 0.1",
                                    "raft_min_timeout = 1.0\nraft_max_timeout = 0.8"])
def test_election_timeouts_pysyncobj_would_assert_on_are_config_errors(tmp_path: Path, tuning: str) -> None:
    text = 'name = "x"\n[[nodes]]\nname = "n1"\nhttp = "127.0.0.1:1"\nraft = "127.0.0.1:2"\n[raft]\n' + tuning
    with pytest.raises(ConfigError, match="raft_m"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(("section", "field"), [("raft", "max_queued_commands"), ("raft", "max_batch_commands"),
                                                ("raft", "max_inflight_entries"), ("leases", "forward_queue"),
                                                ("leases", "forward_batch")])
def test_queue_bounds_must_be_positive(tmp_path: Path, section: str, field: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'name = "x"\n[[nodes]]\nname = "n1"\nhttp = "127.0.0.1:1"\nraft = "127.0.0.1:2"\n'
                    f"[{section}]\n{field} = 0\n")
    with pytest.raises(ConfigError, match=field):
        load_config(path)


def test_kv_history_defaults_to_ten_and_is_bounded(tmp_path: Path) -> None:
    base = 'name = "x"\n[[nodes]]\nname = "n1"\nhttp = "127.0.0.1:1"\nraft = "127.0.0.1:2"\n'
    assert load_config(write(tmp_path, base)).kv.history == 10
    assert load_config(write(tmp_path, base + "[kv]\nhistory = 0\n")).kv.history == 0
    for bad in ("-1", "1001"):
        with pytest.raises(ConfigError, match=r"kv\.history"):
            load_config(write(tmp_path, base + f"[kv]\nhistory = {bad}\n"))


def test_consul_http_and_datacenter(tmp_path: Path) -> None:
    """``consul_http`` per node (off when absent) and the cluster's ``datacenter`` round-trip; the
    shipped local-3 config serves the Consul API on 8511-8513."""
    local = load_config(CONFIG_DIR / "local-3.toml")
    assert [n.consul_http for n in local.nodes] == [f"127.0.0.1:851{i}" for i in (1, 2, 3)]
    assert local.datacenter == "dc1"
    config = ClusterConfig(name="c", datacenter="east-1", nodes=[
        NodeConfig("n1", "127.0.0.1:1", "127.0.0.1:2", consul_http="127.0.0.1:3"), NodeConfig("n2", "h:4", "h:5")])
    assert load_config(write(tmp_path, dump_config(config))) == config


@pytest.mark.parametrize(("extra", "match"), [
    ('consul_http = "nohost"', "not host:port"),
    ('consul_http = "127.0.0.1:99999"', "not host:port"),
])
def test_bad_consul_http_is_a_config_error(tmp_path: Path, extra: str, match: str) -> None:
    text = 'name = "x"\n[[nodes]]\nname = "n1"\nhttp = "127.0.0.1:1"\nraft = "127.0.0.1:2"\n' + extra + "\n"
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_consul_http_addresses_are_unique_and_datacenter_is_a_label(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="consul_http addresses must be unique"):
        ClusterConfig(name="c", nodes=[NodeConfig("n1", "h:1", "h:2", consul_http="h:9"),
                                       NodeConfig("n2", "h:3", "h:4", consul_http="h:9")])
    with pytest.raises(ConfigError, match="datacenter"):
        ClusterConfig(name="c", datacenter="Not A Label", nodes=[NodeConfig("n1", "h:1", "h:2")])
