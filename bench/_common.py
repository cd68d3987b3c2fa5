"""Shared bits of the benchmark scripts: where results go and how they are printed."""

from __future__ import annotations

import json
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """A short description of the machine the numbers were taken on."""
    import os

    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def save(name: str, result: dict) -> Path:
    """Write ``result`` (plus the machine) to bench/results/NAME.json and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {**result, "machine": machine()}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {path}")
    return path
