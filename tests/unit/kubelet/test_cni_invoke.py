"""The kubelet's CNI caller against fake plugins: config choice, chaining, DEL order, errors.

The fake plugins are small Python scripts in the test's bin dir. Each
appends what it was given (CNI_* environment and stdin) to a journal and
answers as a real plugin would: `fakebridge` prints a result with an IP,
`fakechain` hands its prevResult on with one more interface, `fakefail`
exits 1 with a CNI error object. No root, no namespaces.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from kubelet.errors import NetworkNotReady
from kubelet.runtime.cni_invoke import (
    CNIError,
    CNIInvoker,
    PodNetworkArgs,
    load_config,
    parse_config,
    plugin_input,
    result_ip,
)
from kubelet.runtime.interface import PortMapping

PLUGIN = """#!{python}
import json, os, sys
data = json.loads(sys.stdin.read())
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
with open({journal!r}, "a") as f:
    f.write(json.dumps({{"plugin": {name!r}, "env": env, "stdin": data}}) + "\\n")
kind = {name!r}
if kind == "fakefail" and env["CNI_COMMAND"] == "ADD":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "no room", "details": "pool"}}))
    sys.exit(1)
if env["CNI_COMMAND"] == "DEL":
    sys.exit(0)
if kind == "fakebridge":
    print(json.dumps({{"cniVersion": data["cniVersion"], "interfaces": [{{"name": "eth0"}}],
                       "ips": [{{"address": "10.1.0.5/24", "interface": 0}}]}}))
elif kind in ("fakechain", "fakeportmap"):
    result = dict(data["prevResult"])
    result["interfaces"] = result["interfaces"] + [{{"name": "chained"}}]
    print(json.dumps(result))
else:
    print(json.dumps({{"cniVersion": data["cniVersion"]}}))
"""


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    out = {name: tmp_path / name for name in ("conf", "bin", "cache")}
    for path in out.values():
        path.mkdir()
    journal = tmp_path / "journal"
    for name in ("fakebridge", "fakechain", "fakefail", "fakenoip", "fakeportmap"):
        script = out["bin"] / name
        script.write_text(PLUGIN.format(python=sys.executable, journal=str(journal), name=name))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    out["journal"] = journal
    return out


def conflist(*types: str) -> str:
    return json.dumps(
        {"cniVersion": "1.0.0", "name": "podnet", "plugins": [{"type": t, "k": t} for t in types]}
    )


def journal(dirs: dict[str, Path]) -> list[dict[str, Any]]:
    if not dirs["journal"].exists():
        return []
    return [json.loads(line) for line in dirs["journal"].read_text().splitlines()]


def invoker(dirs: dict[str, Path]) -> CNIInvoker:
    return CNIInvoker(dirs["conf"], str(dirs["bin"]), dirs["cache"])


ARGS = PodNetworkArgs("default", "web", "abc")


def test_first_config_file_by_name(dirs: dict[str, Path]) -> None:
    (dirs["conf"] / "20-second.conflist").write_text(conflist("fakechain"))
    (dirs["conf"] / "10-first.conflist").write_text(conflist("fakebridge"))
    (dirs["conf"] / "00-ignored.txt").write_text("not a config")
    network = load_config(dirs["conf"])
    assert network.path.endswith("10-first.conflist")
    assert [p["type"] for p in network.plugins] == ["fakebridge"]


def test_single_plugin_conf_is_a_list_of_one() -> None:
    network = parse_config({"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "b"})
    assert network.plugins == ({"type": "bridge", "bridge": "b"},)
    assert network.cni_version == "0.4.0"


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ([], "expected a JSON object"),
        ({"name": "n"}, "neither 'plugins' nor 'type'"),
        ({"plugins": [{"type": "x"}]}, "'name' is missing"),
        ({"name": "n", "plugins": []}, "non-empty list"),
        ({"name": "n", "plugins": [{"bridge": "b"}]}, "plugins[0] has no 'type'"),
    ],
)
def test_bad_config_names_the_problem(doc: Any, words: str) -> None:
    with pytest.raises(NetworkNotReady, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_config(doc, "/etc/cni/net.d/10-x.conflist")


def test_no_config_is_network_not_ready(dirs: dict[str, Path]) -> None:
    ready, message = invoker(dirs).ready()
    assert not ready and "no CNI configuration file" in message
    (dirs["conf"] / "10-x.conflist").write_text("{broken")
    ready, message = invoker(dirs).ready()
    assert not ready and "unreadable" in message
    (dirs["conf"] / "10-x.conflist").write_text(conflist("fakebridge"))
    assert invoker(dirs).ready() == (True, "")


def test_plugin_input_carries_version_name_and_prev_result() -> None:
    network = parse_config(json.loads(conflist("a", "b")))
    doc = json.loads(plugin_input(network, network.plugins[1], {"ips": []}))
    assert doc == {
        "type": "b",
        "k": "b",
        "cniVersion": "1.0.0",
        "name": "podnet",
        "prevResult": {"ips": []},
    }
    assert "prevResult" not in json.loads(plugin_input(network, network.plugins[0], None))


def test_result_ip_formats() -> None:
    assert result_ip({"ips": [{"address": "10.1.0.7/24"}]}) == "10.1.0.7"
    assert result_ip({"ip4": {"ip": "10.2.0.9/16"}}) == "10.2.0.9"  # CNI 0.2
    assert result_ip({}) == ""


async def test_add_chains_results_and_del_reverses(dirs: dict[str, Path]) -> None:
    (dirs["conf"] / "10-net.conflist").write_text(conflist("fakebridge", "fakechain"))
    cni = invoker(dirs)
    result = await cni.add("abc", "/proc/42/ns/net", ARGS)
    assert result.ip == "10.1.0.5"
    assert [i["name"] for i in result.raw["interfaces"]] == ["eth0", "chained"]
    calls = journal(dirs)
    assert [c["plugin"] for c in calls] == ["fakebridge", "fakechain"]
    env = calls[0]["env"]
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "abc"
    assert env["CNI_NETNS"] == "/proc/42/ns/net" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_PATH"] == str(dirs["bin"])
    assert "K8S_POD_NAMESPACE=default" in env["CNI_ARGS"] and "K8S_POD_NAME=web" in env["CNI_ARGS"]
    assert "prevResult" not in calls[0]["stdin"]
    assert calls[1]["stdin"]["prevResult"]["ips"][0]["address"] == "10.1.0.5/24"
    # The result is cached (libcni's layout): a new invoker (a restarted kubelet) knows the IP.
    assert (dirs["cache"] / "podnet-abc-eth0").exists()
    assert invoker(dirs).cached_ip("abc") == "10.1.0.5"

    dirs["journal"].unlink()
    await cni.delete("abc", "", ARGS)
    calls = journal(dirs)
    assert [c["plugin"] for c in calls] == ["fakechain", "fakebridge"]
    assert all(c["env"]["CNI_COMMAND"] == "DEL" and c["env"]["CNI_NETNS"] == "" for c in calls)
    assert calls[0]["stdin"]["prevResult"]["interfaces"][-1]["name"] == "chained"
    assert cni.cached_ip("abc") == ""
    await cni.delete("abc", "", ARGS)  # repeatable


async def test_failed_add_reports_the_plugin_message_and_is_undone(dirs: dict[str, Path]) -> None:
    (dirs["conf"] / "10-net.conflist").write_text(conflist("fakebridge", "fakefail"))
    with pytest.raises(CNIError) as caught:
        await invoker(dirs).add("abc", "/proc/42/ns/net", ARGS)
    assert "plugin fakefail failed (ADD): no room: pool" in str(caught.value)
    assert caught.value.code == 11
    commands = [(c["plugin"], c["env"]["CNI_COMMAND"]) for c in journal(dirs)]
    assert commands == [
        ("fakebridge", "ADD"),
        ("fakefail", "ADD"),
        ("fakefail", "DEL"),
        ("fakebridge", "DEL"),
    ]
    assert not list(dirs["cache"].iterdir())


async def test_missing_plugin_and_missing_ip(dirs: dict[str, Path]) -> None:
    (dirs["conf"] / "10-net.conflist").write_text(conflist("nosuchplugin"))
    with pytest.raises(CNIError, match='failed to find plugin "nosuchplugin"'):
        await invoker(dirs).add("abc", "/proc/42/ns/net", ARGS)
    (dirs["conf"] / "10-net.conflist").write_text(conflist("fakenoip"))
    with pytest.raises(CNIError, match="no IP address"):
        await invoker(dirs).add("abc", "/proc/42/ns/net", ARGS)


async def test_delete_without_config_forgets_the_cache(dirs: dict[str, Path]) -> None:
    (dirs["conf"] / "10-net.conflist").write_text(conflist("fakebridge"))
    cni = invoker(dirs)
    await cni.add("abc", "/proc/42/ns/net", ARGS)
    (dirs["conf"] / "10-net.conflist").unlink()
    await cni.delete("abc", "", ARGS)
    assert cni.cached_result("abc") is None


def test_bin_dirs_split_on_path_separator(dirs: dict[str, Path]) -> None:
    cni = CNIInvoker(dirs["conf"], f"/nonexistent{os.pathsep}{dirs['bin']}", dirs["cache"])
    assert cni.bin_dirs == ("/nonexistent", str(dirs["bin"]))


async def test_port_mappings_reach_only_plugins_declaring_the_capability(
    dirs: dict[str, Path],
) -> None:
    doc = json.loads(conflist("fakebridge"))
    doc["plugins"].append({"type": "fakeportmap", "capabilities": {"portMappings": True}})
    (dirs["conf"] / "10-net.conflist").write_text(json.dumps(doc))
    ports = (
        PortMapping(80, "TCP", 8080),
        PortMapping(53, "UDP"),
        PortMapping(9, "UDP", 9, "1.2.3.4"),
    )
    args = PodNetworkArgs("default", "web", "abc", ports)
    await invoker(dirs).add("abc", "/proc/42/ns/net", args)
    expected = {
        "portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 9, "containerPort": 9, "protocol": "udp", "hostIP": "1.2.3.4"},
        ]
    }
    calls = journal(dirs)
    assert "runtimeConfig" not in calls[0]["stdin"]
    assert calls[1]["stdin"]["runtimeConfig"] == expected
    entry = json.loads((dirs["cache"] / "podnet-abc-eth0").read_text())
    assert entry["kind"] == "cniCacheV1" and entry["capabilityArgs"] == expected
    # DEL after a restart knows the ports from the cache alone.
    dirs["journal"].unlink()
    await invoker(dirs).delete("abc", "", PodNetworkArgs("default", "web", "abc"))
    dels = journal(dirs)
    assert dels[0]["plugin"] == "fakeportmap" and dels[0]["stdin"]["runtimeConfig"] == expected
