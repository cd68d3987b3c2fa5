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


def seconds_per_second(fn, seconds: float = 60.0, repeats: int = 3) -> float:
    """Seconds ``fn(audio)`` takes per second of 16 kHz audio on one core: ``seconds`` of noise, the best of ``repeats``."""
    import time

    import numpy as np
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = (np.random.default_rng(0).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
    best = np.inf
    try:
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x)
            best = min(best, time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)
    return round(float(best) / seconds, 5)
