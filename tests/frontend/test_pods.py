"""Backend pods learnt beside the page: once per name, in the background."""

from __future__ import annotations

import asyncio
from typing import Any

from frontend.pods import PodDirectory


async def _learn_twice() -> tuple[PodDirectory, int]:
    pods = PodDirectory()
    asked = 0
    release = asyncio.Event()

    async def ask() -> dict[str, Any] | None:
        nonlocal asked
        asked += 1
        await release.wait()
        return {"pod_name": "backend-1", "pod_ip": "10.1.0.7", "node_name": "n2"}

    pods.learn_soon("backend-1", ask)
    pods.learn_soon("backend-1", ask)  # already being asked about
    pods.learn_soon(None, ask)  # an answer without X-Served-By
    assert pods.get("backend-1") is None  # nothing is awaited on the caller's path
    release.set()
    await pods.settle()
    known = pods.learn_soon("backend-1", ask)  # known now: not asked again
    assert known is not None and known.ip == "10.1.0.7"
    return pods, asked


def test_a_new_pod_is_asked_about_once_and_learnt() -> None:
    pods, asked = asyncio.run(_learn_twice())
    assert asked == 1
    pod = pods.get("backend-1")
    assert pod is not None and pod.ip == "10.1.0.7" and pod.node == "n2"


def test_a_pod_that_did_not_answer_is_asked_again_later() -> None:
    async def run() -> int:
        pods = PodDirectory()
        asked = 0

        async def ask() -> dict[str, Any] | None:
            nonlocal asked
            asked += 1
            return None

        pods.learn_soon("backend-1", ask)
        await pods.settle()
        pods.learn_soon("backend-1", ask)
        await pods.settle()
        return asked

    assert asyncio.run(run()) == 2
