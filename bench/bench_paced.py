"""What a streaming block costs when blocks come at the pace of real time instead of back to back.

    python bench/bench_paced.py [--model av-causal] [--seconds 8]

Live, the model's thread sleeps between blocks. This runs
``StreamingEnhancer.push`` (ONNX step, one thread) on noise and random lip frames
for each block size (640 and 320 samples) and measures the CPU time of the
calling thread per block (``time.thread_time``), with the time between blocks
spent in four ways:

- ``back_to_back``: none;
- ``sleep``: ``time.sleep`` for 90 % of the block period, as a live worker waits;
- ``spin``: a busy loop for as long (the core never idles, nothing else touched);
- ``sleep_idle_poll``: sleep, with ``avse.streaming.audio_io.IdlePoll`` held (idle
  cores poll instead of halting; needs write access to /dev/cpu_dma_latency,
  else the row says ``"idle_poll": false``).

Also the ONNX step alone (``OnnxStep``), back to back and with sleeps. Reports p50
and mean in ms per block and the share of one core. Writes bench/results/paced.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

MODES = ("back_to_back", "sleep", "spin", "sleep_idle_poll")


def wait(mode: str, seconds: float) -> None:
    """Spend ``seconds`` between two blocks as ``mode`` says."""
    if mode.startswith("sleep"):
        time.sleep(seconds)
    elif mode == "spin":
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass


def cpu_per_block(run, n: int, block: int, mode: str) -> list[float]:
    """``run(i)`` for every block start i of ``n`` samples, the gap before each spent as ``mode`` -> CPU s of each call."""
    gap = 0.9 * block / 16000
    cpu = []
    for i in range(0, n - block + 1, block):
        wait(mode, gap)
        t0 = time.thread_time()
        run(i)
        cpu.append(time.thread_time() - t0)
    return cpu


def summary(cpu_s: list[float], block: int, skip: int = 20) -> dict:
    """CPU seconds per block -> p50 / mean ms and % of one core (the first ``skip`` blocks left out: warm-up)."""
    ms = 1e3 * np.asarray(cpu_s[skip:])
    period_ms = 1e3 * block / 16000
    return {"p50_ms": round(float(np.median(ms)), 3), "mean_ms": round(float(ms.mean()), 3),
            "core_percent": round(100 * float(ms.mean()) / period_ms, 1), "blocks": int(ms.size)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="av-causal")
    parser.add_argument("--seconds", type=float, default=8.0, help="audio per run (default: %(default)s)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from avse.streaming import StreamingEnhancer
    from avse.streaming.audio_io import IdlePoll
    from avse.streaming.export import OnnxStep

    rng = np.random.default_rng(0)
    n = int(args.seconds * 16000)
    audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
    frames = rng.standard_normal((n // 640 + 1, 82)).astype(np.float32)
    result: dict = {"model": args.model, "seconds": args.seconds, "blocks": {}}
    for block in (640, 320):
        engine = StreamingEnhancer(args.model, block=block, backend="onnx")
        rows: dict = {}

        def push(i: int, engine: StreamingEnhancer = engine, block: int = block) -> None:
            engine.push(audio[i : i + block], frames[i // 640 : i // 640 + 1] if i % 640 == 0 else None)

        for mode in MODES:
            poll = IdlePoll() if mode == "sleep_idle_poll" else None
            held = poll.acquire() if poll is not None else None
            try:
                engine.reset()
                cpu = cpu_per_block(push, n, block, mode)
            finally:
                if poll is not None:
                    poll.release()
            rows[mode] = summary(cpu, block) | ({"idle_poll": held} if held is not None else {})
            print(f"block {block}, push, {mode}: {rows[mode]}", flush=True)
        step = OnnxStep(engine.model, block)
        for mode in ("back_to_back", "sleep"):
            step.reset()
            cpu = cpu_per_block(lambda i, step=step, block=block: step(audio[i : i + block], frames[i // 640]), n, block, mode)
            rows[f"step_only_{mode}"] = summary(cpu, block)
            print(f"block {block}, ONNX step alone, {mode}: {rows[f'step_only_{mode}']}", flush=True)
        result["blocks"][str(block)] = rows
    save("paced", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
