"""Free loopback ports: the code lives in localservers/ (the bench uses it too)."""

from localservers.ports import free_port, port_is_closed, wait_for_port

__all__ = ["free_port", "port_is_closed", "wait_for_port"]
