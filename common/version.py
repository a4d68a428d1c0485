"""The version every tier reports; tests/unit checks it matches pyproject.toml."""

VERSION = "0.1.0"
