"""deploy/grafana/motionlift.json: every query is PromQL over metrics and labels the gateway really exports (its
registry, as `serve --backend triton` builds it), the label values it picks exist, and the panels the README
promises are there."""

from __future__ import annotations

import json
from typing import Any

from service.core.metrics import FRAME_OUTCOMES
from service.core.results import STAGES
from tests.data import REPO
from tests.promql import selectors, unknown

DASHBOARD = REPO / "deploy" / "grafana" / "motionlift.json"
# The values the service gives these labels (service/core/metrics.py, service/core/results.py).
VALUES = {
    ("motionlift_request_stage_seconds_bucket", "stage"): set(STAGES),
    ("motionlift_stream_frames_total", "outcome"): set(FRAME_OUTCOMES),
    ("motionlift_requests_total", "outcome"): {"ok"},  # the one outcome named in a query: success
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels() -> list[dict[str, Any]]:
    """Every panel, those inside rows included."""
    found = []
    for panel in dashboard()["panels"]:
        found += [panel, *panel.get("panels", [])]
    return found


def queries() -> list[str]:
    exprs = [t["expr"] for p in panels() for t in p.get("targets", [])]
    exprs += [
        v["query"]["query"].replace("label_values(", "").split(",")[0] for v in variables() if v["type"] == "query"
    ]
    return exprs


def variables() -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = dashboard()["templating"]["list"]
    return listed


def test_every_query_reads_metrics_and_labels_the_gateway_exports() -> None:
    assert len(queries()) >= 20
    assert {q: unknown(q) for q in queries() if unknown(q)} == {}


def test_label_values_in_queries_are_ones_the_service_gives() -> None:
    for query in queries():
        for selector in selectors(query):
            for label, value in selector.values:
                if (selector.name, label) in VALUES:
                    assert value in VALUES[(selector.name, label)], (query, label, value)
                else:
                    assert label == "job", f"{selector.name}{{{label}={value!r}}}: no known values to check"


def test_the_promised_panels_are_there_on_the_right_metrics() -> None:
    reads = {p["title"]: {s.name for t in p.get("targets", []) for s in selectors(t["expr"])} for p in panels()}
    assert reads["Requests/s by outcome"] == {"motionlift_requests_total"}
    assert reads["Request latency (total)"] == reads["p99 by stage"] == {"motionlift_request_stage_seconds_bucket"}
    assert reads["Queue (windows waiting)"] == {"motionlift_queue_depth"}
    assert "motionlift_batch_size_bucket" in reads["Batch size"]
    assert reads["Skipped frames"] == {"motionlift_stream_frames_total"}
    assert reads["Triton servers in rotation"] == {"motionlift_triton_servers_ready", "motionlift_triton_servers"}


def test_the_dashboard_is_self_consistent() -> None:
    """Unique panel ids, every panel on the grid and on the data source variable, every variable used defined."""
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)) and all("gridPos" in p for p in panels())
    names = {v["name"] for v in variables()}
    assert names == {"datasource", "job"}
    for panel in panels():
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and panel["targets"]
            assert all("$job" in t["expr"] for t in panel["targets"])  # every query follows the job picker
