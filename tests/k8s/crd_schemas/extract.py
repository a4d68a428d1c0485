"""Turn a CustomResourceDefinition YAML into the schema fixture the tests read.

Run by hand, from a CRD file of a release (README.md in this folder says which):

    python tests/k8s/crd_schemas/extract.py CRD.yaml VERSION > KIND.VERSION.json

It keeps the `openAPIV3Schema` of the one version asked for, without the
descriptions (they are most of the bytes and validate nothing), and writes
the CRD's group, kind and the annotations that name its release beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Keys whose value is a map of names to schemas (not a schema itself).
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
# Keys whose value is a schema, or a list of schemas.
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf")


def strip_descriptions(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_descriptions(sub) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES and isinstance(value, list):
            out[key] = [strip_descriptions(sub) for sub in value]
        elif key in _SCHEMA_VALUES:
            out[key] = strip_descriptions(value)
        else:
            out[key] = value
    return out


def extract(crd: dict[str, Any], version: str) -> dict[str, Any]:
    (wanted,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return {
        "group": crd["spec"]["group"],
        "kind": crd["spec"]["names"]["kind"],
        "version": version,
        "annotations": crd["metadata"].get("annotations", {}),
        "openAPIV3Schema": strip_descriptions(wanted["schema"]["openAPIV3Schema"]),
    }


if __name__ == "__main__":
    crd = yaml.safe_load(Path(sys.argv[1]).read_text())
    json.dump(extract(crd, sys.argv[2]), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
