"""Tracing is switched by the standard OTEL_* variables alone, and its ids reach the logs.

The spans here come from a local SDK tracer provider, never installed as the
process's global one: the other tests build apps in this process with tracing off.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from common.access_log import AccessLog
from common.logging import JsonFormatter, request_id_var
from common.tracing import fastapi_telemetry, tracer, tracing_wanted

_OTEL = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _OTEL:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),  # no endpoint: nothing to export to, nothing set up
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),  # compose's default
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_the_sdk_enabled(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], wanted: bool
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert tracing_wanted() is wanted


def test_with_tracing_off_fastapi_traces_nothing_either() -> None:
    assert tracer() is None  # nothing in this process configured it
    config = fastapi_telemetry()
    assert config["tracing"] is False
    # Prometheus and the JSON logs already say what these would.
    assert (config["metrics"], config["logs"], config["operation_spans"]) == (False,) * 3


def _line(formatter: JsonFormatter, message: str) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t"})
    return json.loads(formatter.format(record))


def test_a_log_line_written_in_a_span_carries_its_trace_and_span_ids() -> None:
    formatter = JsonFormatter(pod_name="pod-a", service="backend")
    assert "trace_id" not in _line(formatter, "outside any span")
    spans = TracerProvider().get_tracer("test")
    token = request_id_var.set("rid-7")
    try:
        with spans.start_as_current_span("request") as span:
            line = _line(formatter, "inside")
    finally:
        request_id_var.reset(token)
    context = span.get_span_context()
    assert line["request_id"] == "rid-7"
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"


def test_the_access_log_line_carries_the_trace_id_beside_the_request_id() -> None:
    stream = io.StringIO()
    log = AccessLog()
    log.bind(stream, "frontend", "pod-b")
    log.write("rid-1", "GET", "/", 200, 1.5, "10.0.0.7", "0af7651916cd43dd8448eb211c80319c")
    log.write("rid-2", "GET", "/", 200, 1.5, "10.0.0.7")  # tracing off
    traced, untraced = (json.loads(line) for line in stream.getvalue().splitlines())
    assert traced["request_id"] == "rid-1"
    assert traced["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert "trace_id" not in untraced


def test_the_resource_names_what_the_environment_says_and_leaves_out_what_it_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from common.identity import PodIdentity
    from common.settings import CommonSettings
    from common.tracing import resource_attributes

    for name in (
        "SERVICE_NAMESPACE",
        "K8S_DEPLOYMENT_NAME",
        "K8S_CONTAINER_NAME",
        "DEPLOYMENT_ENVIRONMENT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POD_NAME", "backend-7d9-abcde")
    monkeypatch.setenv("NODE_NAME", "node-1")
    monkeypatch.setenv("POD_NAMESPACE", "")
    laptop = CommonSettings()
    identity = PodIdentity.from_settings("backend", "0.1.0", laptop)
    # Outside Kubernetes there is no Deployment or container to name: no empty values.
    assert resource_attributes(identity, laptop) == {
        "service.name": "backend",
        "service.namespace": "clusterip-demo",
        "service.version": "0.1.0",
        "service.instance.id": "backend-7d9-abcde",
        "k8s.pod.name": "backend-7d9-abcde",
        "k8s.node.name": "node-1",
    }
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    monkeypatch.setenv("SERVICE_NAMESPACE", "guestbook")
    monkeypatch.setenv("K8S_DEPLOYMENT_NAME", "backend")
    monkeypatch.setenv("K8S_CONTAINER_NAME", "backend")
    monkeypatch.setenv("DEPLOYMENT_ENVIRONMENT", "production")
    pod = resource_attributes(identity, CommonSettings())
    assert pod["service.namespace"] == "guestbook"
    assert pod["k8s.namespace.name"] == "shop"
    assert pod["k8s.deployment.name"] == pod["k8s.container.name"] == "backend"
    assert pod["deployment.environment.name"] == "production"
