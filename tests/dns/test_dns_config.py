"""The DNS parts of the cluster config: ``dns`` per node and the ``[dns]`` table."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from raftreg.config import ClusterConfig, ConfigError, DnsSettings, NodeConfig, dump_config, load_config

ROOT = Path(__file__).resolve().parents[2]


def node(i: int, dns: str | None = None) -> NodeConfig:
    return NodeConfig(name=f"n{i}", http=f"127.0.0.1:{8500 + i}", raft=f"127.0.0.1:{7000 + i}", dns=dns)


def test_defaults_follow_consul() -> None:
    settings = DnsSettings()
    assert (settings.domain, settings.ttl, settings.only_passing, settings.enable_truncate) == ("consul", 0, True, True)
    assert settings.udp_answer_limit == 0
    assert node(1).dns is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"domain": "Consul"}, "dns.domain"), ({"domain": "consul."}, "dns.domain"), ({"domain": ""}, "dns.domain"),
    ({"domain": "-bad.consul"}, "dns.domain"), ({"ttl": -1}, "dns.ttl"), ({"udp_answer_limit": -1}, "udp_answer_limit"),
    ({"tcp_idle_timeout": 0}, "dns.tcp_idle_timeout"), ({"max_tcp_connections": 0}, "max_tcp_connections"),
])
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        DnsSettings(**kwargs)  # type: ignore[arg-type]


def test_dns_addresses_are_validated_and_unique() -> None:
    with pytest.raises(ConfigError, match="not host:port"):
        ClusterConfig(name="c", nodes=[node(1, "127.0.0.1")])
    with pytest.raises(ConfigError, match="dns addresses must be unique"):
        ClusterConfig(name="c", nodes=[node(1, "127.0.0.1:8600"), node(2, "127.0.0.1:8600")])
    ClusterConfig(name="c", nodes=[node(1, "127.0.0.1:8600"), node(2)])  # a node may serve no DNS


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    config = ClusterConfig(name="c", nodes=[node(1, "127.0.0.1:8611"), node(2)],
                           dns=DnsSettings(domain="reg.internal", ttl=5, only_passing=False, udp_answer_limit=3))
    path = tmp_path / "c.toml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_unknown_dns_setting_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"unknown field `bogus` - at `\$\.dns`"):
        msgspec.convert({"name": "c", "nodes": [msgspec.to_builtins(node(1))], "dns": {"bogus": 1}}, ClusterConfig)


def test_the_dev_cluster_serves_dns_on_8611_to_8613() -> None:
    config = load_config(ROOT / "cluster-configs" / "local-3.toml")
    assert [n.dns for n in config.nodes] == ["127.0.0.1:8611", "127.0.0.1:8612", "127.0.0.1:8613"]
