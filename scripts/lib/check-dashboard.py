#!/usr/bin/env python3
"""Checks a Grafana dashboard JSON against Grafana's own schema.

grafana-foundation-sdk holds the models Grafana generates from its schema
(the dashboard kind, the panel plugins' options, the Prometheus query). The
dashboard is decoded through them and encoded again; every field of the file
must come back with the same value, so a field the schema does not know, or
one in the wrong place, fails. Usage: check-dashboard.py FILE...
"""

import json
import sys

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard


def lost(original, decoded, path="$"):
    """Paths of `original` that `decoded` lacks or holds differently."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [path]
        out = []
        for key, value in original.items():
            if key not in decoded:
                out.append(f"{path}.{key}")
            else:
                out += lost(value, decoded[key], f"{path}.{key}")
        return out
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(decoded) != len(original):
            return [path]
        out = []
        for i, (a, b) in enumerate(zip(original, decoded)):
            out += lost(a, b, f"{path}[{i}]")
        return out
    return [] if original == decoded else [f"{path} ({original!r} became {decoded!r})"]


def main(paths):
    register_default_plugins()
    failed = False
    for path in paths:
        with open(path, encoding="utf-8") as f:
            original = json.load(f)
        decoded = json.loads(json.dumps(Dashboard.from_json(original), cls=JSONEncoder))
        problems = lost(original, decoded)
        if not original.get("panels"):
            problems.append("$.panels is empty")
        for p in problems:
            print(f"{path}: {p}", file=sys.stderr)
        failed |= bool(problems)
        if not problems:
            print(f"{path}: ok ({len(original['panels'])} panels)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
