"""PromQL in the deployment files, read with a real parser (``promql-parser``, the dev extra), against the metrics
the gateway really exports: the service's own registry (``service.core.metrics.Metrics``) with the Triton
backend's collector registered as ``serve --backend triton`` does, read through ``collect()``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

# Grafana's variables and the Prometheus Adapter's templates are not PromQL: each becomes what it stands for.
PLACEHOLDERS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$job": ".*",
    "<<.LabelMatchers>>": 'namespace="motionlift"',
    "<<.GroupBy>>": "pod",
}
# Labels Prometheus itself adds to every series it scrapes (job, instance) or the Kubernetes scrape job does.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


@dataclass(frozen=True)
class Selector:
    """A metric read by an expression: its name, the label names it matches on or groups by, and the label values
    it asks for by equality (``stage="total"``)."""

    name: str
    labels: frozenset[str]
    values: frozenset[tuple[str, str]] = frozenset()


def selectors(expr: str) -> list[Selector]:
    """Every metric an expression reads, each with the labels the expression uses next to it (its matchers, and
    the ``by`` labels of the aggregations around it). Raises ``ValueError`` if the text is not PromQL."""
    promql = pytest.importorskip("promql_parser", reason="promql-parser is in the dev extra")
    for placeholder, value in PLACEHOLDERS.items():
        expr = expr.replace(placeholder, value)
    if re.search(r"\$\w|<<", expr):
        raise ValueError(f"unknown template variable in {expr!r}")
    tree = promql.parse(expr)
    found: list[Selector] = []
    grouping: list[list[str]] = []  # the `by` labels of the aggregations the walk is inside

    def enter(node: Any) -> None:
        if isinstance(node, promql.AggregateExpr):
            by = node.modifier is not None and node.modifier.type == promql.AggModifierType.By
            grouping.append(list(node.modifier.labels) if by else [])
        if isinstance(node, promql.VectorSelector) and node.name:
            matchers = [m for m in node.matchers.matchers if m.name != "__name__"]
            equal = frozenset((m.name, m.value) for m in matchers if m.op == promql.MatchOp.Equal)
            found.append(Selector(node.name, frozenset({m.name for m in matchers}.union(*grouping)), equal))

    def leave(node: Any) -> None:
        if isinstance(node, promql.AggregateExpr):
            grouping.pop()

    promql.walk(tree, enter, leave)
    return found


@cache
def exported() -> dict[str, frozenset[str]]:
    """Every sample name the gateway's /metrics can carry, with its label names (``le`` on histogram buckets)."""
    from service.backends.triton.backend import TritonBackend
    from service.backends.triton.metrics import register
    from service.core.metrics import Metrics

    metrics = Metrics()
    register(metrics.registry, TritonBackend(["127.0.0.1:1"]))  # a collector only: nothing is started
    metrics.on_request("rest", "ok", {"total": 1.0})  # a labelled family shows its labels once it has a sample
    names: dict[str, frozenset[str]] = {}
    for family in metrics.registry.collect():
        labels = {label for sample in family.samples for label in sample.labels}
        for suffix in SUFFIXES.get(family.type, ("",)):
            extra = {"le"} if suffix == "_bucket" else set()
            names[family.name + suffix] = frozenset((labels - {"le"}) | extra)
    return names


def unknown(expr: str) -> list[str]:
    """What in ``expr`` the gateway does not export: metric names, or labels a metric does not have."""
    known = exported()
    problems = []
    for selector in selectors(expr):
        if selector.name not in known:
            problems.append(f"metric {selector.name}")
            continue
        extra = selector.labels - known[selector.name] - TARGET_LABELS
        if extra:
            problems.append(f"labels {sorted(extra)} on {selector.name}")
    return problems


# The Triton metrics the autoscalers read (Triton docs, "Metrics"). The inference ones are checked on a real
# tritonserver (tests/integration/backends/test_triton.py); nv_gpu_utilization needs a GPU to appear.
TRITON = frozenset({"nv_inference_request_success", "nv_inference_queue_duration_us", "nv_gpu_utilization"})
