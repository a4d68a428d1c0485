"""Compose tests share the container fixtures of tests/images."""

from tests.images.conftest import engine, manifests, standin_images

__all__ = ["engine", "manifests", "standin_images"]
