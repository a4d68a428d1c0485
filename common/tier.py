"""What each tier's app factory starts from: its lifecycle, who it is, its HTTP metrics."""

from __future__ import annotations

from common.identity import PodIdentity
from common.lifecycle import Lifecycle
from common.metrics import HttpMetrics
from common.settings import CommonSettings
from common.version import VERSION


def tier_basics(
    service: str, settings: CommonSettings, lifecycle: Lifecycle | None
) -> tuple[Lifecycle, PodIdentity, HttpMetrics]:
    """The lifecycle given (a test's) or a new one, the pod's identity and its metrics."""
    identity = PodIdentity.from_settings(service, VERSION, settings)
    return lifecycle or Lifecycle(), identity, HttpMetrics(identity)
