"""`GET /metrics`: the platform's numbers in Prometheus text format (prometheus-client).

Read fresh at each scrape, from where each number lives: calls (live, started, ended, skipped
micro-turns, turn-taking and tool latency histograms) from the counters the gateways keep in
Redis (`admin.store.calls`), the Celery queues' depth from Redis (LLEN), and the model servers'
tick p50/p99, late frames and active calls from their `/healthz` (`model_health_urls`; an
unreachable one is `parley_model_up 0`). Nothing here holds state between scrapes, so any number of
admin processes report the same figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def scrape_model(client: httpx.AsyncClient, url: str, timeout_s: float) -> dict:
    server = urlsplit(url).netloc
    try:
        response = await client.get(url, timeout=timeout_s)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        data = None
    if not isinstance(data, dict):
        return {"server": server, "up": False}
    return {"server": server, "up": True, **data}


async def scrape_models(client: httpx.AsyncClient, urls: Iterable[str], timeout_s: float) -> list[dict]:
    return list(await asyncio.gather(*(scrape_model(client, u, timeout_s) for u in urls)))


def _histogram(name: str, doc: str, data: dict) -> HistogramMetricFamily:
    buckets = [("+Inf" if upper == float("inf") else repr(upper), count) for upper, count in data["buckets"]]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=data["sum"])


def families(snapshot: dict, models: list[dict]) -> list[Metric]:
    counters = snapshot["counters"]
    out: list[Metric] = [
        GaugeMetricFamily(
            "parley_live_calls", "Calls going on now, on every gateway.", value=snapshot["live"]
        ),
        CounterMetricFamily(
            "parley_calls_started", "Calls the gateways started.", value=counters.get("calls_started", 0)
        ),
        CounterMetricFamily(
            "parley_calls_ended", "Calls that ended and were recorded.", value=counters.get("calls_ended", 0)
        ),
        CounterMetricFamily(
            "parley_call_skipped_turns",
            "Micro-turns the model server skipped in finished calls (a late caller frame).",
            value=counters.get("skipped_turns", 0),
        ),
        _histogram(
            "parley_turn_taking_latency_seconds",
            "From the arrival of the caller frame the model read when it took the floor to the "
            "turn's first agent frame queued for the caller.",
            snapshot["histograms"]["turn_taking"],
        ),
        _histogram(
            "parley_tool_latency_seconds",
            "From a tool call out of the model to its result or error going back in.",
            snapshot["histograms"]["tool"],
        ),
    ]
    depth = GaugeMetricFamily(
        "parley_worker_queue_depth", "Tasks waiting in a Celery queue.", labels=["queue"]
    )
    for queue, value in sorted(snapshot["queues"].items()):
        depth.add_metric([queue], value)
    up = GaugeMetricFamily(
        "parley_model_up", "Whether the model server's /healthz answered.", labels=["server"]
    )
    tick = GaugeMetricFamily(
        "parley_model_tick_ms", "Model server tick duration percentiles (ms).", labels=["server", "quantile"]
    )
    late = CounterMetricFamily(
        "parley_model_late_frames", "Caller frames late for their tick.", labels=["server"]
    )
    active = GaugeMetricFamily(
        "parley_model_active_calls", "Sessions a model server holds.", labels=["server"]
    )
    for model in models:
        up.add_metric([model["server"]], 1 if model["up"] else 0)
        if not model["up"]:
            continue
        tick.add_metric([model["server"], "0.5"], float(model.get("tick_ms_p50", 0.0)))
        tick.add_metric([model["server"], "0.99"], float(model.get("tick_ms_p99", 0.0)))
        late.add_metric([model["server"]], float(model.get("late_frames", 0)))
        active.add_metric([model["server"]], float(model.get("active", 0)))
    return [*out, depth, up, tick, late, active]


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def exposition(snapshot: dict, models: list[dict]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families(snapshot, models)))
    return generate_latest(registry)
