"""OpenTelemetry tracing (contract §10.2): OTLP over HTTP, W3C trace context carried across the
deployment handles in a small string map, one trace per request."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from serve_app.config import Settings

TRACER_NAME = "workspace.service"
_configured = False


def exporter_url(endpoint: str, insecure: bool) -> str:
    """`host:port` (the contract's form) or a full URL → the OTLP/HTTP traces URL."""
    if "://" not in endpoint:
        endpoint = f"{'http' if insecure else 'https'}://{endpoint}"
    if endpoint.rstrip("/").endswith("/v1/traces"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def configure(settings: Settings) -> None:
    """Install the process's tracer provider once, when tracing is enabled."""
    global _configured
    if _configured or not settings.otel_enabled:
        return
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "workspace",
                "service.version": settings.version,
                "deployment.environment": settings.environment,
            }
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.otel_sampling_ratio)),
    )
    endpoint = settings.otel_endpoint or "localhost:4318"
    exporter = OTLPSpanExporter(endpoint=exporter_url(endpoint, settings.otel_insecure))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=settings.otel_export_delay_ms)
    )
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    _configured = True


def tracer() -> Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject(carrier: dict[str, str] | None = None) -> dict[str, str]:
    carrier = {} if carrier is None else carrier
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> Context:
    return propagate.extract(dict(carrier or {}))


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None
