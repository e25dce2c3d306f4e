"""Prometheus text for a metrics snapshot: the application's families, base units, `_total`
counters, cumulative histogram buckets."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from serve_app.domain.observability import (
    DURATION_BUCKETS,
    SESSION_CREATE_BUCKETS,
    HistogramSnapshot,
    MetricsSnapshot,
)


def _cumulative(histogram: HistogramSnapshot, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*bounds, float("inf")), histogram.buckets, strict=False):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
    return buckets


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: MetricsSnapshot, version: str, sandbox: str) -> None:
        self._snapshot = snapshot
        self._version = version
        self._sandbox = sandbox

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        invocations = CounterMetricFamily(
            "workspace_invocations",
            "Terminal invocations by tool and final status.",
            labels=["tool", "status"],
        )
        for (tool, status), value in sorted(snapshot.invocations.items()):
            invocations.add_metric([tool, status], value)
        yield invocations
        denied = CounterMetricFamily(
            "workspace_invocations_denied",
            "Denied invocations by tool and reason (a bounded set).",
            labels=["tool", "reason"],
        )
        for (tool, reason), value in sorted(snapshot.denied.items()):
            denied.add_metric([tool, reason], value)
        yield denied
        duration = HistogramMetricFamily(
            "workspace_invocation_duration_seconds",
            "Invocation duration from start to terminal state.",
            labels=["tool"],
        )
        for tool, histogram in sorted(snapshot.durations.items()):
            duration.add_metric([tool], _cumulative(histogram, DURATION_BUCKETS), histogram.sum)
        yield duration
        active = GaugeMetricFamily(
            "workspace_sessions_active", "Sessions not yet expired or closed."
        )
        active.add_metric([], snapshot.sessions_active)
        yield active
        create = HistogramMetricFamily(
            "workspace_session_create_duration_seconds",
            "Time to create a session (workspace, copy or clone included).",
        )
        create.add_metric(
            [],
            _cumulative(snapshot.session_create, SESSION_CREATE_BUCKETS),
            snapshot.session_create.sum,
        )
        yield create
        deletions = CounterMetricFamily(
            "workspace_k8s_pod_deletions",
            "Pods the kubernetes backend's janitor deleted, by reason.",
            labels=["reason"],
        )
        for reason, value in sorted(snapshot.pod_deletions.items()):
            deletions.add_metric([reason], value)
        yield deletions
        info = GaugeMetricFamily(
            "workspace_build_info",
            "The running version and tool sandbox mode (always 1).",
            labels=["version", "sandbox"],
        )
        info.add_metric([self._version, self._sandbox], 1)
        yield info


def render(snapshot: MetricsSnapshot, version: str, sandbox: str = "bubblewrap") -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot, version, sandbox))
    return generate_latest(registry)
