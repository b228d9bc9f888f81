"""Soak test: the service (``motionlift serve`` as a child process) under a long mixed load, watched for leaks.

The load comes from one child process per kind of call (``service/bench/soak_clients.py``; spawned, so no
client thread ever runs beside the server or this process): REST lifts, gRPC unary lifts and paced LiftStreams,
with random cancellations and disconnects, all drawn from ``--seed``. Every interval this process reads the
server's RSS, open files and threads from ``/proc``; after the load it waits (bounded) for the open files to come
back to the baseline taken before the load, and reads the server's open streams and queue depth from /metrics.

The verdict: every call answered (sent = answered + cancelled + disconnected), RSS growth after the warm-up
(the first interval) under ``RSS_LIMIT_PCT``, open files back to the baseline, no stream left open or window
queued on the server, no error other than the ``InvalidInput`` of calls invalid on purpose, and every frame of a
stream that ended normally answered or reported skipped.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import queue as queues
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.bench.procs import descendants, rss_kib
from service.bench.soak_clients import DRAIN_S, KINDS, Plan, Tally, WorkerReport, work
from service.bench.soak_report import Sample, Soak, report

RSS_LIMIT_PCT = 5.0
# About a quarter of the default model's capacity on 2 cores, counted in model frames (README, "Batching"): the
# soak looks for leaks and lost calls, not for the limit.
DEFAULT_RATES = {"rest": 2.0, "grpc": 2.0, "stream": 0.25}
STREAM_WINDOW = 27  # the default model's: enough for look-ahead, cheap enough at 30 fps on 2 cores


def parse_rates(text: str) -> dict[str, float]:
    """``rest=2,grpc=2,stream=0.25`` -> calls per second by kind (kinds not named keep ``DEFAULT_RATES``; 0 turns
    a kind off). ``ValueError`` for an unknown kind, a negative rate, or no kind left."""
    rates = dict(DEFAULT_RATES)
    for item in (i.strip() for i in text.split(",") if i.strip()):
        kind, sep, value = item.partition("=")
        if not sep or kind not in KINDS:
            raise ValueError(f"expected KIND=RATE with KIND one of {', '.join(KINDS)}, got {item!r}")
        rate = float(value)
        if not rate >= 0:
            raise ValueError(f"a rate must be >= 0, got {item!r}")
        rates[kind] = rate
    if not any(rates.values()):
        raise ValueError("every rate is 0: nothing to send")
    return rates


def sample(pid: int) -> Sample:
    """The process's resident memory (``VmRSS``) with that of its descendants (the model processes and the body
    readers: a leak there is the service's too), its open file descriptors and threads, from ``/proc``;
    ``RuntimeError`` when it has exited."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        status = dict(line.split(":", 1) for line in lines if ":" in line)
        return Sample(
            rss_kib=int(status["VmRSS"].split()[0]) + sum(rss_kib(p) for p in descendants(pid)),  # zombie: KeyError
            open_files=len(os.listdir(f"/proc/{pid}/fd")),
            threads=int(status["Threads"]),
        )
    except (FileNotFoundError, KeyError):
        raise RuntimeError(f"the server (pid {pid}) exited during the soak") from None


def settle(pid: int, baseline: int, seconds: float) -> tuple[Sample, float | None]:
    """Poll until the process has at most ``baseline`` open files (at most ``seconds``): the last sample and the
    time it took (None when it never came back)."""
    start = time.monotonic()
    while True:
        now = sample(pid)
        waited = time.monotonic() - start
        if now.open_files <= baseline:
            return now, waited
        if waited > seconds:
            return now, None
        time.sleep(0.1)


def server_state(url: str) -> dict[str, float]:
    """``motionlift_streams_active`` and ``motionlift_queue_depth`` from the service's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    wanted = ("motionlift_streams_active", "motionlift_queue_depth")
    return {name: float(v) for name, _, v in (line.partition(" ") for line in text.splitlines()) if name in wanted}


@dataclass
class _Load:
    """The load processes and what they reported: the latest counts per kind, and which ones are final."""

    processes: list[Any]
    messages: Any
    reports: dict[str, WorkerReport]
    final: set[str]

    def collect(self, until: float) -> None:
        """Take the processes' messages until ``until`` (``time.monotonic()``) or until all are final."""
        while len(self.final) < len(self.processes) and (left := until - time.monotonic()) > 0:
            try:
                what, kind, content = self.messages.get(timeout=min(left, 1.0))
            except queues.Empty:
                if not any(p.is_alive() for p in self.processes):  # a process that died reports nothing more
                    return
                continue
            if what in ("progress", "final") and kind not in self.final:
                self.reports[kind] = content
            if what == "final":
                self.final.add(kind)

    def total(self) -> Tally:
        total = Tally()
        for r in self.reports.values():
            for tally in r.intervals.values():
                total.add(tally)
        return total


def _start_load(plan: Plan, rates: Mapping[str, float]) -> tuple[_Load, float]:
    """Spawn a process per kind with a rate, wait until each has its imports done, start them together; the
    start (``time.monotonic()``) of the first interval."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no inherited threads, locks or sockets
    messages, go, start = context.Queue(), context.Event(), context.Value("d", 0.0)
    kinds = [k for k in KINDS if rates.get(k)]
    processes = [
        context.Process(target=work, args=(k, plan, rates[k], messages, go, start), name=f"soak-{k}", daemon=True)
        for k in kinds
    ]
    for p in processes:
        p.start()
    ready: set[str] = set()
    deadline = time.monotonic() + 120
    while len(ready) < len(kinds):
        try:
            ready.add(messages.get(timeout=1)[1])
        except queues.Empty:
            dead = [p.name for p in processes if not p.is_alive()]
            if dead or time.monotonic() > deadline:
                for p in processes:
                    p.terminate()
                raise RuntimeError(f"load processes did not start: {', '.join(dead) or 'timeout'}") from None
    start.value = time.monotonic() + 0.1
    go.set()
    return _Load(processes, messages, {k: WorkerReport(k) for k in kinds}, set()), start.value


def _watch(server_pid: int, plan: Plan, load: _Load, started: float) -> tuple[list[Sample], list[int]]:
    """Sample the server at each interval's end, with a progress line on stderr; then wait for the load to end.
    The samples, and the calls in flight at each (as the load processes counted them)."""
    samples, in_flight = [], []
    count = math.ceil(plan.seconds / plan.every)
    for i in range(count):
        end = started + min((i + 1) * plan.every, plan.seconds)
        load.collect(end)
        time.sleep(max(0.0, end - time.monotonic()))
        samples.append(sample(server_pid))
        load.collect(end + min(1.0, plan.every / 10))  # the processes' counts at this same moment
        t, s = load.total(), samples[-1]
        in_flight.append(t.unanswered)
        print(
            f"soak {end - started:.0f} s: sent {t.sent}, answered {t.answered}, cancelled {t.cancelled}, "
            f"disconnected {t.disconnected}, in flight {t.unanswered}; RSS {s.rss_kib / 1024:.1f} "
            f"MiB, {s.open_files} open files, {s.threads} threads",
            file=sys.stderr,
            flush=True,
        )
    load.collect(time.monotonic() + DRAIN_S + 30)
    for p in load.processes:
        p.join(10)
        if p.is_alive():  # no final report: its calls count as unanswered
            p.terminate()
            p.join()
    return samples, in_flight


def run(
    model: Path, *, minutes: float, every: float, rates: Mapping[str, float], seed: int, serve_flags: Sequence[str],
    settle_s: float = 10.0,
) -> tuple[str, bool]:  # fmt: skip
    """Start the server on ``model``, load it for ``minutes``, check it; the printed report and the verdict.
    ``RuntimeError`` when the server does not start or exits, or the load processes do not start."""
    from service.bench.load import ServerProcess

    server = ServerProcess(model, serve_flags)
    try:
        server.wait_ready()
        with urllib.request.urlopen(f"{server.url}/v1/model", timeout=10) as r:
            window = min(STREAM_WINDOW, int(json.load(r)["window"]))
        plan = Plan(server.url, server.grpc_target, 60 * minutes, every, seed, window)
        before = sample(server.proc.pid)
        load, started = _start_load(plan, rates)
        try:
            samples, in_flight = _watch(server.proc.pid, plan, load, started)
        finally:  # on a failure too: no load process outlives the soak
            for p in load.processes:
                p.terminate()
        after, settled = settle(server.proc.pid, before.open_files, settle_s)
        state = server_state(server.url)
    finally:
        server.stop()
    soak = Soak(plan, dict(rates), load.reports, sorted(load.final), before, samples, in_flight, after, settled, state)
    return report(soak, model=model, rss_limit_pct=RSS_LIMIT_PCT, settle_s=settle_s)
