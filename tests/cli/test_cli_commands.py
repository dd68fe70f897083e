"""The ``raftreg`` command line against a real single-node cluster, run as a subprocess."""

from __future__ import annotations

import json
import re

import pytest

from raftreg.testing import free_ports, http_json

pytestmark = pytest.mark.cluster

CLOSED_TCP = "127.0.0.1:1"  # a check against it keeps failing: the instance stays "critical"


@pytest.fixture(scope="module")
def http(cluster):
    base = cluster.url("n1")

    def call(path, method="GET", body=None):
        return http_json(base + path, method=method, body=body, timeout=10)

    return call


@pytest.fixture(scope="module")
def web(cli, http):
    """Service 'web': w1 (v1, blue, zone=a, weight 5), w2 (v1, zone=b), w3 (blue, zone=a, critical check)."""
    done = cli("register", "web", "w1", "--address", "10.0.0.1", "--port", "8080", "--tag", "v1", "--tag", "blue",
               "--meta", "zone=a", "--meta", "env=prod", "--weight", "5")
    assert done.returncode == 0, done.stderr
    done = cli("register", "web", "w2", "--address", "10.0.0.2", "--port", "8081", "--tag", "v1", "--meta", "zone=b")
    assert done.returncode == 0, done.stderr
    code, body = http("/v1/services/web/instances/w3", "PUT",
                      {"address": "10.0.0.3", "port": 8082, "tags": ["blue"], "meta": {"zone": "a"},
                       "check": {"tcp": CLOSED_TCP}})
    assert code == 200 and body["status"] == "critical", body
    return "web"


WEB_SUMMARY = {"name": "web", "instances": 3, "passing": 2, "warning": 0, "critical": 1, "tags": ["blue", "v1"]}


def lookup_json(cli, *args):
    done = cli("-o", "json", "lookup", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def single_error_line(done):
    """The command failed with exactly one 'error:' line on stderr, nothing on stdout, no traceback."""
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error:"), done.stderr
    assert done.stdout == ""
    return lines[0]


# ---- register -----------------------------------------------------------------------------------

def test_register_with_tags_meta_and_weight(cli, http):
    done = cli("register", "reg", "r1", "--address", "10.0.0.9", "--port", "9000", "--tag", "v2", "--tag", "canary",
               "--meta", "zone=a", "--meta", "url=http://x/y=z", "--weight", "7")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    match = re.fullmatch(r"registered reg/r1 at index (\d+)\n", done.stdout)
    assert match, done.stdout
    code, got = http("/v1/services/reg/instances/r1")
    assert code == 200, got
    assert got["address"] == "10.0.0.9"
    assert got["port"] == 9000
    assert got["tags"] == ["v2", "canary"]
    assert got["meta"] == {"zone": "a", "url": "http://x/y=z"}  # only the first '=' separates
    assert got["weight"] == 7
    assert got["modify_index"] == int(match.group(1))


def test_register_json_output(cli, http):
    done = cli("-o", "json", "register", "reg", "r2", "--address", "10.0.0.8", "--port", "80", "--ttl", "1h")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["service"], got["id"], got["address"], got["port"], got["weight"]) == ("reg", "r2", "10.0.0.8", 80,
                                                                                       100)
    assert got["ttl"] == 3600.0
    assert got["index"] == got["modify_index"] > 0
    assert http("/v1/services/reg/instances/r2")[0] == 200


# ---- lookup, services, status -----------------------------------------------------------------

def test_lookup_table(cli, web):
    done = cli("lookup", "web")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "ADDRESS", "STATUS", "WEIGHT", "TAGS", "META", "INDEX"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert set(rows) == {"w1", "w2", "w3"}
    assert rows["w1"].split()[:6] == ["w1", "10.0.0.1:8080", "passing", "5", "v1,blue", "env=prod,zone=a"]
    assert rows["w3"].split()[2] == "critical"
    assert re.fullmatch(r"\(3 instances, index \d+\)", lines[-1]), lines[-1]


def test_lookup_json(cli, web, http):
    got = lookup_json(cli, "web")
    assert got["service"] == "web"
    assert [i["id"] for i in got["instances"]] == ["w1", "w2", "w3"]
    w1 = got["instances"][0]
    assert (w1["address"], w1["port"], w1["weight"], w1["tags"], w1["meta"]) == (
        "10.0.0.1", 8080, 5, ["v1", "blue"], {"zone": "a", "env": "prod"})
    assert got["index"] == http("/v1/services/web")[1]["index"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--passing"], ["w1", "w2"]),
    (["--tag", "blue"], ["w1", "w3"]),
    (["--tag", "blue", "--tag", "v1"], ["w1"]),
    (["--tag", "blue", "--passing"], ["w1"]),
    (["--tag", "nope"], []),
    (["--meta", "zone=a"], ["w1", "w3"]),
    (["--meta", "zone=a", "--meta", "env=prod"], ["w1"]),
    (["--consistent"], ["w1", "w2", "w3"]),
])
def test_lookup_filters(cli, web, args, expected):
    assert [i["id"] for i in lookup_json(cli, "web", *args)["instances"]] == expected


def test_lookup_filters_in_the_table(cli, web):
    done = cli("lookup", "web", "--passing", "--tag", "blue")
    assert done.returncode == 0, done.stderr
    ids = [line.split()[0] for line in done.stdout.splitlines()[1:-1]]
    assert ids == ["w1"]
    assert done.stdout.splitlines()[-1].startswith("(1 instances, ")


def test_lookup_unknown_service_is_empty(cli):
    assert lookup_json(cli, "nothing-here")["instances"] == []


def test_services(cli, web):
    done = cli("services")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "INSTANCES", "PASSING"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["web"] == ["web", "3", "2"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == sorted(names)

    done = cli("-o", "json", "services")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert WEB_SUMMARY in got["services"]


def test_status(cli, cluster):
    done = cli("status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "LEADER"]
    assert lines[1].split()[:3] == ["n1", "leader", "n1"]

    done = cli("-o", "json", "status")
    assert done.returncode == 0, done.stderr
    [view] = json.loads(done.stdout)
    assert (view["node"], view["state"], view["leader"]) == ("n1", "leader", "n1")
    assert view["commit_index"] >= 1
    assert [m["name"] for m in view["members"]] == ["n1"]


# ---- deregister -------------------------------------------------------------------------------

def test_deregister(cli, http):
    assert cli("register", "dereg", "d1", "--address", "10.0.0.1", "--port", "80").returncode == 0
    done = cli("deregister", "dereg", "d1")
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"deregistered dereg/d1 at index (\d+)\n", done.stdout)
    assert match, done.stdout
    assert http("/v1/services/dereg/instances/d1")[0] == 404
    assert http("/v1/services/dereg")[1]["index"] == int(match.group(1))

    line = single_error_line(cli("deregister", "dereg", "d1"))
    assert "not_found" in line


def test_deregister_json(cli, http):
    assert cli("register", "dereg", "d2", "--address", "10.0.0.1", "--port", "80").returncode == 0
    done = cli("-o", "json", "deregister", "dereg", "d2")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["deleted"] is True and got["index"] > 0


# ---- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["0", "70000", "-1", "65536"])
def test_invalid_port_prints_one_error_line(cli, http, port):
    commit = http("/v1/cluster")[1]["commit_index"]
    line = single_error_line(cli("register", "badport", "b1", "--address", "10.0.0.1", "--port", port))
    assert "invalid_argument" in line and "port" in line
    assert http("/v1/services/badport/instances/b1")[0] == 404
    assert http("/v1/cluster")[1]["commit_index"] == commit


@pytest.mark.parametrize("args", [
    ["register", "Bad_Name", "b1", "--address", "10.0.0.1", "--port", "80"],
    ["register", "bad", ".b1", "--address", "10.0.0.1", "--port", "80"],
    ["register", "bad", "b1", "--address", "not a host", "--port", "80"],
    ["register", "bad", "b1", "--address", "10.0.0.1", "--port", "80", "--weight", "10001"],
    ["register", "bad", "b1", "--address", "10.0.0.1", "--port", "80", "--ttl", "abc"],
    ["register", "bad", "b1", "--address", "10.0.0.1", "--port", "80", "--ttl", "0.5s"],
    ["lookup", "Bad_Name"],
    ["deregister", "Bad_Name", "b1"],
])
def test_invalid_input_prints_one_error_line(cli, http, args):
    commit = http("/v1/cluster")[1]["commit_index"]
    single_error_line(cli(*args))
    assert http("/v1/services/bad")[1]["instances"] == []
    assert http("/v1/cluster")[1]["commit_index"] == commit


@pytest.mark.parametrize("args", [
    ["register", "bad", "b1", "--address", "10.0.0.1", "--port", "abc"],
    ["register", "bad", "b1", "--address", "10.0.0.1", "--port", "80", "--meta", "novalue"],
], ids=["port-not-an-integer", "meta-without-equals"])
def test_usage_errors_print_one_error_line(cli, args):
    single_error_line(cli(*args))


def dead_addr():
    """A port that was free a moment ago: nothing listens there."""
    return f"127.0.0.1:{free_ports(1)[0]}"


@pytest.mark.parametrize("args", [  # a read and a write: each retries the dead address until --timeout
    ["lookup", "web"],
    ["register", "web", "x1", "--address", "10.0.0.1", "--port", "80"],
])
def test_unreachable_address_prints_one_error_line(cli, args):
    line = single_error_line(cli("--timeout", "1s", *args, addr=dead_addr()))
    assert "unreachable" in line


def test_falls_back_to_the_next_address(cli, addr, http, web):
    both = f"{dead_addr()},{addr}"
    done = cli("-o", "json", "services", addr=both)
    assert done.returncode == 0, done.stderr
    assert WEB_SUMMARY in json.loads(done.stdout)["services"]

    done = cli("register", "fallback", "f1", "--address", "10.0.0.1", "--port", "80", addr=both)
    assert done.returncode == 0, done.stderr
    assert http("/v1/services/fallback/instances/f1")[0] == 200

    done = cli("-o", "json", "lookup", "fallback", addr=both)
    assert done.returncode == 0, done.stderr
    assert [i["id"] for i in json.loads(done.stdout)["instances"]] == ["f1"]

    done = cli("deregister", "fallback", "f1", addr=both)
    assert done.returncode == 0, done.stderr
    assert http("/v1/services/fallback/instances/f1")[0] == 404


def test_status_shows_a_dead_address_as_down(cli, addr):
    dead = dead_addr()
    done = cli("-o", "json", "status", addr=f"{dead},{addr}")
    assert done.returncode == 0, done.stderr
    views = json.loads(done.stdout)
    assert [v["state"] for v in views] == ["down", "leader"]
    assert views[0]["node"] == dead
