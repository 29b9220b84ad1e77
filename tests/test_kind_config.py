"""The real-cluster recipe in kind-config/: checked as far as a machine without Docker allows.

kind-config/e2e.sh needs Docker and kind, so it cannot run here. What can be checked is: it
parses (`bash -n`) and passes ShellCheck; every repository path it names exists; the chart
accepts the values it passes (values.schema.json) and renders the ingress it relies on; the
names it waits for (CRDs, namespaces, Secret, Deployment, release) are the ones the CRDs and
examples/grafana.yaml define; the kind cluster config publishes 80/443 on an ingress-ready node;
and the script stops with a clear message when a tool is missing, before touching anything.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import crdkit
import helm_python
import yaml
from chartkit import CHART, ROOT

KIND_CONFIG = ROOT / "kind-config"
SCRIPT = KIND_CONFIG / "e2e.sh"


def _script() -> str:
    return SCRIPT.read_text()


def _assignment(name: str) -> str:
    match = re.search(rf'^{name}="(?:\$\{{{name}:-)?([^"}}]*)\}}?"', _script(), re.M)
    assert match, f"{name} is not assigned in e2e.sh"
    return match.group(1)


def test_the_script_parses_and_is_executable() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in _script()


def test_shellcheck_finds_nothing() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (.ci/system-deps installs it)"
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_repository_path_the_script_names_exists() -> None:
    paths = re.findall(r"\$ROOT/([\w./-]+)", _script())
    assert {"kind-config/cluster.yaml", "helm/tessera", "examples", "Dockerfile"} <= set(paths)
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


def _helm_sets() -> dict[str, str]:
    """The chart values the script passes with --set, with its default variables substituted."""
    variables = {
        name: _assignment(name)
        for name in ("IMAGE_REPOSITORY", "IMAGE_TAG", "HOST", "RELEASE", "NAMESPACE")
    }
    found = {}
    for raw in re.findall(r"--set (\S+)", _script()):
        key, _, value = shlex.split(raw)[0].partition("=")
        for name, default in variables.items():
            value = value.replace(f"${name}", default)
        found[key] = value
    return found


def _nested(values: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = {"true": True, "false": False}.get(value, value)
    return tree


def test_the_chart_accepts_the_scripts_values_and_renders_the_ingress_it_uses() -> None:
    sets = _helm_sets()
    assert set(sets) == {
        "image.repository",
        "image.tag",
        "ingress.enabled",
        "ingress.className",
        "ingress.host",
    }
    chart = helm_python.Chart.load(str(CHART))
    try:
        files = chart.render(_nested(sets), name=_assignment("RELEASE"), namespace="tessera")
    finally:
        chart.close()
    objects = [
        doc
        for path, text in files.items()
        if not path.endswith(".txt")  # NOTES.txt
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == _assignment("HOST") == "tessera.localtest.me"
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert {"tessera-server", "tessera-operator"} <= deployments  # the logs shown on failure
    (operator,) = [
        o
        for o in objects
        if (o["kind"], o["metadata"]["name"]) == ("Deployment", "tessera-operator")
    ]
    env = {e["name"]: e for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AUTHENTIK_HOST_BROWSER"]["value"] == "http://tessera.localtest.me"


def test_the_names_the_script_waits_for_are_those_of_the_crds_and_the_grafana_example() -> None:
    script = _script()
    waits = {"OAuth2Provider": "grafana", "Application": "grafana"}
    waits |= {"ProxyProvider": "whoami", "Outpost": "edge"}  # examples/forward-auth.yaml
    waits |= {"SAMLProvider": "wiki", "LDAPProvider": "jellyfin"}  # examples/saml.yaml, ldap.yaml
    for kind, crd in crdkit.crds().items():
        assert f"crd/{crd['metadata']['name']}" in script
        assert f"{crd['metadata']['name']}/{waits[kind]}" in script
    docs = {
        (d["kind"], d["metadata"]["name"]): d
        for d in crdkit.documents(ROOT / "examples" / "grafana.yaml")
    }
    provider = docs["OAuth2Provider", "grafana"]
    assert provider["metadata"]["namespace"] == "grafana"
    assert "kubectl -n grafana get secret grafana-oidc" in script
    assert provider["spec"]["credentialsSecret"]["name"] == "grafana-oidc"
    assert ("Deployment", "grafana") in docs
    assert docs["Ingress", "grafana"]["spec"]["rules"][0]["host"] == _assignment("GRAFANA_HOST")
    env = docs["Deployment", "grafana"]["spec"]["template"]["spec"]["containers"][0]["env"]
    token_url = next(e["value"] for e in env if e["name"] == "GF_AUTH_GENERIC_OAUTH_TOKEN_URL")
    release, namespace = _assignment("RELEASE"), _assignment("NAMESPACE")
    assert token_url.startswith(f"http://{release}-server.{namespace}.svc/")


def test_the_cluster_config_publishes_80_and_443_on_an_ingress_ready_node() -> None:
    config = yaml.safe_load((KIND_CONFIG / "cluster.yaml").read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    ports = {(m["containerPort"], m["hostPort"], m["protocol"]) for m in node["extraPortMappings"]}
    assert ports == {(80, 80, "TCP"), (443, 443, "TCP")}
    (patch,) = [yaml.safe_load(p) for p in node["kubeadmConfigPatches"]]
    assert patch["kind"] == "InitConfiguration"
    assert patch["nodeRegistration"]["kubeletExtraArgs"]["node-labels"] == "ingress-ready=true"


def test_the_script_stops_before_doing_anything_when_a_tool_is_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):  # what runs before the check of the required tools
        (bin_dir / tool).symlink_to(shutil.which(tool) or "")
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "e2e: FAILED: docker is required"
