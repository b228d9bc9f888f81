"""deploy/kubernetes, validated without a cluster: every kustomize directory renders (kubectl's kustomize), every
core object passes the schemas of the stated Kubernetes versions strictly (kubernetes-validate, offline; unknown
fields rejected), and the objects agree with each other, with the service and with the README's commands.

The KEDA ScaledObjects (overlays/keda) are custom resources: kubernetes-validate has no schema for them (it raises
SchemaNotFoundError, checked below), so their structure is checked by ``test_scaled_objects_mirror_the_autoscalers``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import pytest

from service.api.grpc.guard import OPEN_PREFIXES
from service.api.rest.auth import OPEN
from service.backends.triton.discovery import Target
from tests.data import REPO
from tests.promql import TRITON, selectors, unknown
from tests.unit.deploy.manifests import (
    DIRECTORIES,
    KUBERNETES,
    Object,
    container,
    env,
    named,
    of_kind,
    pod,
    render,
    selects,
)

validator = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in the dev extra")

# The Kubernetes versions the manifests are stated for (README "Deploy on Kubernetes"): the oldest and the newest.
VERSIONS = ("1.30.0", "1.37.0")
CUSTOM = {("keda.sh/v1alpha1", "ScaledObject")}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("directory", DIRECTORIES)
def test_every_core_object_passes_the_kubernetes_schemas_strictly(directory: str, version: str) -> None:
    errors = []
    for o in render(directory):
        if (o["apiVersion"], o["kind"]) in CUSTOM:
            continue
        try:
            validator.validate(o, version, strict=True)
        except validator.ValidationError as exc:
            errors.append(f"{o['kind']}/{o['metadata']['name']} {'.'.join(map(str, exc.path))}: {exc.message}")
    assert errors == []


def test_the_validator_rejects_a_misspelt_field_and_knows_no_custom_resource() -> None:
    """So a pass above means something, and the custom resources need their own check."""
    deployment = dict(named(render("base"), "Deployment", "motionlift-gateway"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(validator.ValidationError):
        validator.validate(deployment, VERSIONS[0], strict=True)
    keda = named(render("overlays/keda"), "ScaledObject", "triton")
    with pytest.raises(validator.SchemaNotFoundError):
        validator.validate(keda, VERSIONS[0], strict=True)


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_services_select_pods_that_have_their_ports(directory: str) -> None:
    objects = render(directory)
    for service in of_kind(objects, "Service"):
        targets = [d for d in of_kind(objects, "Deployment") if selects(service["spec"]["selector"], d)]
        assert len(targets) == 1, service["metadata"]["name"]
        ports = container_ports(targets[0])
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (service["metadata"]["name"], port)


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_probes_use_ports_the_containers_have_and_paths_open_without_a_key(directory: str) -> None:
    for deployment in of_kind(render(directory), "Deployment"):
        for c in pod(deployment)["containers"]:
            ports = container_ports(deployment)
            for probe in (c[p] for p in PROBES):
                handler = probe.get("httpGet") or probe.get("grpc")
                assert handler is not None and handler["port"] in ports, (c["name"], probe)
                if deployment["metadata"]["name"] == "motionlift-gateway":
                    # A probe carries no API key: REST's open paths, gRPC health (the guard lets it through).
                    assert probe.get("httpGet", {}).get("path", "/healthz") in OPEN
                    assert "/grpc.health.v1.Health/" in OPEN_PREFIXES
    gateway = container(named(render(directory), "Deployment", "motionlift-gateway"), "gateway")
    tls = "MOTIONLIFT_TLS_CERT" in env(gateway)
    # gRPC health can only be probed in plain text; with TLS, /readyz over HTTPS carries the same state.
    expected = {"httpGet": {"path": "/readyz", "port": "http", "scheme": "HTTPS"}} if tls else {"grpc": {"port": 50051}}
    assert {k: v for k, v in gateway["readinessProbe"].items() if k in ("httpGet", "grpc")} == expected
    assert all(gateway[p]["httpGet"].get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP") for p in PROBES[:2])


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_every_secret_is_created_by_the_readme_and_holds_the_files_read(directory: str) -> None:
    """Secrets are never in the manifests (a re-apply would overwrite the keys): the README's commands create them,
    with the keys the gateway reads at the paths its settings name."""
    objects = render(directory)
    assert of_kind(objects, "Secret") == []
    created = readme_secrets()
    for deployment in of_kind(objects, "Deployment"):
        spec = pod(deployment)
        volumes = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
        assert set(v["secretName"] for v in volumes.values()) <= set(created)
        assert not any(v.get("optional") for v in volumes.values())
        for c in spec["containers"]:
            assert "envFrom" not in c and all("valueFrom" not in e for e in c.get("env", []))
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", []) if m["name"] in volumes}
            for variable in ("MOTIONLIFT_API_KEYS", "MOTIONLIFT_TLS_CERT", "MOTIONLIFT_TLS_KEY"):
                if variable in env(c):
                    path = PurePosixPath(env(c)[variable])
                    assert "subPath" not in str(c["volumeMounts"])  # so a changed Secret reaches the file
                    assert path.name in created[volumes[mounts[str(path.parent)]]["secretName"]], variable
    gateway = env(container(named(objects, "Deployment", "motionlift-gateway"), "gateway"))
    assert "MOTIONLIFT_API_KEYS" in gateway and "MOTIONLIFT_INSECURE" not in gateway


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_only_the_gateway_reaches_tritons_inference_port(directory: str) -> None:
    objects = render(directory)
    triton, gateway = (named(objects, "Deployment", n) for n in ("triton", "motionlift-gateway"))
    grpc = next(p["containerPort"] for p in pod(triton)["containers"][0]["ports"] if p["name"] == "grpc")
    policies = [
        p for p in of_kind(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"]["matchLabels"], triton)
    ]
    assert len(policies) == 1 and "Ingress" in policies[0]["spec"]["policyTypes"]
    allowed = []
    for rule in policies[0]["spec"]["ingress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        assert rule.get("from"), "a rule without sources admits everyone"
        if not ports or grpc in ports:  # no ports = every port
            allowed += rule["from"]
    assert allowed == [{"podSelector": {"matchLabels": pod_labels(gateway, "app.kubernetes.io/name")}}]


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_the_gateway_reaches_the_model_the_export_writes_through_the_headless_service(directory: str) -> None:
    objects = render(directory)
    triton = named(objects, "Deployment", "triton")
    gateway = env(container(named(objects, "Deployment", "motionlift-gateway"), "gateway"))
    # dns:///<service>.<namespace>.svc:<port>: resolved again and again, so Triton pods join and leave the rotation.
    url = Target.parse(gateway["MOTIONLIFT_TRITON_URLS"])
    assert url.dns and url.text.startswith("dns:///")
    name, namespace, svc = url.host.split(".")
    service = named(objects, "Service", name)
    assert (namespace, svc) == (service["metadata"]["namespace"], "svc")
    assert service["spec"]["clusterIP"] == "None" and selects(service["spec"]["selector"], triton)
    target = next(p["targetPort"] for p in service["spec"]["ports"] if p["port"] == url.port)
    assert target == "grpc" and "grpc" in container_ports(triton)
    # The init container writes <repository>/<model>/<version>/model.pt into the volume Triton serves.
    export, server = container(triton, "export"), container(triton, "triton")
    out = PurePosixPath(env(export)["MOTIONLIFT_EXPORT_OUT"])
    repository = next(a.split("=", 1)[1] for a in server["args"] if a.startswith("--model-repository="))
    assert out.parent.parent.parent == PurePosixPath(repository) and out.parent.name.isdigit()
    assert out.parent.parent.name == gateway["MOTIONLIFT_TRITON_MODEL"]
    written, served = mount(export, repository), mount(server, repository)
    assert written["name"] == served["name"] and not written.get("readOnly") and served["readOnly"]


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_triton_runs_on_gpu_nodes_and_every_container_asks_for_what_it_uses(directory: str) -> None:
    triton = named(render(directory), "Deployment", "triton")
    spec = pod(triton)
    assert container(triton, "triton")["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in str(container(triton, "export")["resources"])  # scripting needs no GPU
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    for deployment in of_kind(render(directory), "Deployment"):
        for c in pod(deployment)["containers"] + pod(deployment).get("initContainers", []):
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_autoscalers_and_disruption_budgets_target_what_exists(directory: str) -> None:
    objects = render(directory)
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    scalers = of_kind(objects, "HorizontalPodAutoscaler") + of_kind(objects, "ScaledObject")
    assert sorted(s["spec"]["scaleTargetRef"]["name"] for s in scalers) == sorted(deployments)  # one each
    for budget in of_kind(objects, "PodDisruptionBudget"):
        assert [n for n, d in deployments.items() if selects(budget["spec"]["selector"]["matchLabels"], d)] == [
            budget["metadata"]["name"]
        ]


def test_every_autoscaler_metric_is_a_prometheus_adapter_rule_over_a_real_metric() -> None:
    yaml = pytest.importorskip("yaml")
    rules = yaml.safe_load((KUBERNETES / "prometheus-adapter" / "values.yaml").read_text())["rules"]["custom"]
    served = {r["name"]["as"]: r for r in rules}
    wanted = [
        m["pods"]["metric"]["name"]
        for h in of_kind(render("base"), "HorizontalPodAutoscaler")
        for m in h["spec"]["metrics"]
        if m["type"] == "Pods"
    ]
    assert sorted(wanted) == sorted(served)
    for rule in rules:
        series = selectors(rule["seriesQuery"])
        assert len(series) == 1 and re.fullmatch(rule["name"]["matches"], series[0].name)
        assert {s.name for s in selectors(rule["metricsQuery"])} <= TRITON | {series[0].name}
        assert_real(rule["metricsQuery"])


def test_scaled_objects_mirror_the_autoscalers() -> None:
    """The KEDA overlay's custom resources: well formed (KEDA 2's ScaledObject fields), real queries, and the
    same bounds and thresholds as the base autoscalers."""
    base = {h["metadata"]["name"]: h for h in of_kind(render("base"), "HorizontalPodAutoscaler")}
    for scaled in of_kind(render("overlays/keda"), "ScaledObject"):
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        spec, hpa = scaled["spec"], base[scaled["metadata"]["name"]]["spec"]
        assert spec["scaleTargetRef"] == {"name": hpa["scaleTargetRef"]["name"]}
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (hpa["minReplicas"], hpa["maxReplicas"])
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"] == hpa["behavior"]["scaleDown"]
        thresholds = []
        for trigger in spec["triggers"]:
            assert set(trigger) == {"type", "metricType", "metadata"}
            if trigger["type"] == "cpu":
                assert trigger["metricType"] == "Utilization" and trigger["metadata"] == {"value": "70"}
                thresholds.append(70.0)
                continue
            meta = trigger["metadata"]
            assert trigger["type"] == "prometheus" and trigger["metricType"] in ("AverageValue", "Value")
            assert set(meta) == {"serverAddress", "query", "threshold"} and meta["serverAddress"].startswith("http")
            assert_real(meta["query"])
            thresholds.append(float(meta["threshold"]))
        assert sorted(thresholds) == sorted(target(m) for m in hpa["metrics"])


def assert_real(expr: str) -> None:
    """Every metric of ``expr`` is the gateway's (with its labels) or one of Triton's that the autoscalers read."""
    gateway = [p for p in unknown(expr) if p.removeprefix("metric ") not in TRITON]
    assert gateway == [], expr


def target(metric: Object) -> float:
    """An HPA metric's target as a number (a quantity such as 800m, or a utilisation in percent)."""
    t = (metric.get("pods") or metric["resource"])["target"]
    value = str(t.get("averageValue", t.get("averageUtilization")))
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def container_ports(deployment: Object) -> set[Any]:
    """Every port name and number of a Deployment's containers."""
    ports = [p for c in pod(deployment)["containers"] for p in c.get("ports", [])]
    return {p["name"] for p in ports} | {p["containerPort"] for p in ports}


def pod_labels(deployment: Object, *keys: str) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return {k: labels[k] for k in keys}


def mount(c: Object, path: str) -> Object:
    found: list[Object] = [m for m in c["volumeMounts"] if m["mountPath"] == path]
    assert len(found) == 1, (c["name"], path)
    return found[0]


def readme_secrets() -> dict[str, set[str]]:
    """The Secrets README "Deploy on Kubernetes" creates, with their keys (`--from-file=KEY=...`; a TLS Secret has
    tls.crt and tls.key)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Deploy on Kubernetes", 1)[1].split("\n## ", 1)[0]
    created = {}
    for kind, name, rest in re.findall(r"kubectl -n motionlift create secret (generic|tls) (\S+)(.*)", section):
        created[name] = {"tls.crt", "tls.key"} if kind == "tls" else set(re.findall(r"--from-file=([^=\s]+)=", rest))
    return created
