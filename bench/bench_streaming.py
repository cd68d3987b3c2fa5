"""Streaming speed of the shipped causal audio-visual model: latency, per-block time (torch vs ONNX, one thread), real-time factor.

    python bench/bench_streaming.py [--model av-causal] [--blocks 400]

For each block size (640, 320, 160 samples) it reports the algorithmic latency
(block + the model's look-ahead, in samples and ms) and, with torch and
onnxruntime each on one thread, the time of one ``stream_step`` call over
``--blocks`` calls on noise and random lip frames: p50, p99, mean, and the
real-time factor (mean time per block / block duration; model only, no I/O or
front end). Which backend ``StreamingEnhancer(backend="auto")`` would pick is
the one with the lower median. Writes bench/results/streaming.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="av-causal", help="shipped name or checkpoint path of a streaming model")
    parser.add_argument("--blocks", type=int, default=400, help="timed calls per block size and backend")
    args = parser.parse_args()

    torch.set_num_threads(1)
    from avse.api import load_model
    from avse.streaming import BLOCK_SIZES, make_step, time_step

    t_start = time.perf_counter()
    model, info = load_model(args.model)
    sr = model.sample_rate
    rows = []
    for block in BLOCK_SIZES:
        row: dict = {
            "block_samples": block,
            "block_ms": 1000.0 * block / sr,
            "delay_samples": model.stream_delay,
            "latency_samples": block + model.stream_delay,
            "latency_ms": 1000.0 * (block + model.stream_delay) / sr,
        }
        for backend in ("torch", "onnx"):
            t0 = time.perf_counter()
            step = make_step(model, block, backend, threads=1)
            setup = time.perf_counter() - t0
            times = time_step(step, block, model.visual_channels, n_blocks=args.blocks) * 1e3  # [n] ms
            row[backend] = {
                "setup_s": round(setup, 2),
                "p50_ms": round(float(np.percentile(times, 50)), 3),
                "p99_ms": round(float(np.percentile(times, 99)), 3),
                "mean_ms": round(float(times.mean()), 3),
                "rtf": round(float(times.mean()) / row["block_ms"], 4),
            }
        row["auto_picks"] = min(("torch", "onnx"), key=lambda b: row[b]["p50_ms"])
        rows.append(row)
        print(
            f"block {block:4d} ({row['block_ms']:.0f} ms): latency {row['latency_samples']} samples = {row['latency_ms']:.1f} ms | "
            + " | ".join(
                f"{b} p50 {row[b]['p50_ms']:.2f} ms p99 {row[b]['p99_ms']:.2f} ms RTF {row[b]['rtf']:.3f}"
                for b in ("torch", "onnx")
            ),
            flush=True,
        )
    result = {
        "model": args.model,
        "model_config": info.get("config"),
        "threads": 1,
        "blocks_timed": args.blocks,
        "load_average": list(os.getloadavg()),
        "torch": torch.__version__,
        "rows": rows,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    save("streaming", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
