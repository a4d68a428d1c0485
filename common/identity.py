"""Who this process is: the pod identity shown on every page and header."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import CommonSettings


@dataclass(frozen=True, slots=True)
class PodIdentity:
    service: str
    version: str
    pod_name: str
    pod_ip: str
    node_name: str

    @classmethod
    def from_settings(cls, service: str, version: str, settings: CommonSettings) -> PodIdentity:
        return cls(
            service=service,
            version=version,
            pod_name=settings.pod_name,
            pod_ip=settings.pod_ip,
            node_name=settings.node_name,
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "service": self.service,
            "version": self.version,
            "pod_name": self.pod_name,
            "pod_ip": self.pod_ip,
            "node_name": self.node_name,
        }
