"""The version every tier reports; tests/common/test_version.py checks it matches pyproject.toml."""

VERSION = "0.1.0"
