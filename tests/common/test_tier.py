"""common/tier.py: each tier's app factory starts from the same three things."""

from __future__ import annotations

from common.lifecycle import Lifecycle
from common.settings import CommonSettings
from common.tier import tier_basics
from common.version import VERSION


def test_a_given_lifecycle_is_kept_and_the_identity_is_the_pods() -> None:
    given = Lifecycle()
    settings = CommonSettings(pod_name="web-1", pod_ip="10.244.1.7", node_name="node-a")
    lifecycle, identity, metrics = tier_basics("frontend", settings, given)
    assert lifecycle is given
    assert (identity.service, identity.version) == ("frontend", VERSION)
    assert (identity.pod_name, identity.pod_ip, identity.node_name) == (
        "web-1",
        "10.244.1.7",
        "node-a",
    )
    assert metrics is not tier_basics("frontend", settings, given)[2]  # one per app


def test_without_a_lifecycle_each_app_gets_its_own() -> None:
    settings = CommonSettings()
    first = tier_basics("backend", settings, None)[0]
    assert isinstance(first, Lifecycle) and first is not tier_basics("backend", settings, None)[0]
