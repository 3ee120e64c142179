"""``python -m grafana [FOLDER ...]``: write every dashboard as sorted, indented JSON.

Without folders it writes grafana/dashboards/ and the chart's copy; ``--check`` compares
instead and exits 1 naming the files that differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from .dashboards import DASHBOARDS

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = (
    ROOT / "grafana" / "dashboards",
    ROOT / "charts" / "crypto-mine" / "files" / "dashboards",
)


def model(name: str) -> dict[str, Any]:
    """The JSON model of one dashboard as Grafana reads it, panels numbered in order (fixed
    ids: links to a panel survive regeneration)."""
    built = DASHBOARDS[name]().build()
    loaded: dict[str, Any] = json.loads(JSONEncoder().encode(built))
    for number, panel in enumerate(loaded["panels"], start=1):
        panel["id"] = number
    return loaded


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard, sorted and indented."""
    return {
        f"{name}.json": json.dumps(model(name), indent=2, sort_keys=True) + "\n"
        for name in DASHBOARDS
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    folders = [Path(a) for a in argv if a != "--check"] or list(FOLDERS)
    stale: list[str] = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        expected = rendered()
        for old in folder.glob("*.json"):
            if old.name not in expected:
                stale.append(str(old))
                if not check:
                    old.unlink()
        for name, text in expected.items():
            path = folder / name
            if path.exists() and path.read_text() == text:
                continue
            stale.append(str(path))
            if not check:
                path.write_text(text)
    if check and stale:
        print("out of date (run `python -m grafana`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
