"""Validate custom resources against the CRD schemas in crd_schemas/, offline and strictly.

An API server prunes a field its structural schema does not know; here an
unknown field is an error, as kubernetes-validate's strict mode makes it for
the built-in kinds. `x-kubernetes-int-or-string` becomes "an integer or a
string"; `x-kubernetes-preserve-unknown-fields` keeps an object open. CEL
rules (`x-kubernetes-validations`) need an API server and are not run.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"
# apiVersion, kind -> fixture file
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "ServiceMonitor.v1.json",
    ("gateway.networking.k8s.io/v1", "Gateway"): "Gateway.v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "HTTPRoute.v1.json",
}


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) if k not in ("properties", "enum") else v for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {name: _strict(sub) for name, sub in schema["properties"].items()}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def fixture(api_version: str, kind: str) -> dict[str, Any]:
    """The fixture file's content: group, kind, version, the CRD's annotations, schema."""
    return json.loads((SCHEMAS / CUSTOM_KINDS[(api_version, kind)]).read_text())


@cache
def _validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = _strict(fixture(api_version, kind)["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def is_custom(doc: dict[str, Any]) -> bool:
    return (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_KINDS


def custom_errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation in one custom resource, as readable lines."""
    validator = _validator(doc["apiVersion"], doc["kind"])
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]
