"""Compact the Bot API spec into the table the Telegram fake validates every call against.

The full spec (~1 MB with descriptions) lives outside the repo; the fake only needs method names,
return types and field types/requiredness, so we commit that subset for reproducible tests.

Usage: python tools/bot_api_table.py [path/to/bot-api-X.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / ".." / "shared" / "telegram" / "bot-api-10.1.json"
TARGET = ROOT / "tests" / "fakes" / "bot_api_table.json"


def compact(spec: dict[str, Any]) -> dict[str, Any]:
    """Keep only what validation needs: returns plus field types and requiredness."""
    methods: dict[str, Any] = {}
    for name, method in sorted(spec["methods"].items()):
        fields = {
            f["name"]: {"types": list(f["types"]), "required": bool(f["required"])}
            for f in method.get("fields", [])
        }
        methods[name] = {"returns": list(method.get("returns", [])), "fields": fields}
    return {"version": spec["version"], "methods": methods}


def render(table: dict[str, Any]) -> str:
    """One method per line: small, yet a spec bump still produces a readable diff."""
    sep = (",", ":")
    lines = [
        f"{json.dumps(k)}:{json.dumps(v, separators=sep)}" for k, v in table["methods"].items()
    ]
    body = ",\n".join(lines)
    return f'{{"version":{json.dumps(table["version"])},"methods":{{\n{body}\n}}}}\n'


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    table = compact(json.loads(source.read_text(encoding="utf-8")))
    TARGET.write_text(render(table), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}: {table['version']}, {len(table['methods'])} methods")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
