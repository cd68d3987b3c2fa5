"""Seen voices against held-out ones: how much of a model's separation is memorised speakers.

    python bench/bench_speakers.py [--root data/real_models] [--models av=PATH separate=PATH ...] [--snr 0] [--step 12]

A corpus made with ``avse synth --real-speech`` keeps its real speakers apart
across splits. Mixing the *train* split's targets with train maskers gives new
mixtures of voices a model has heard; the *test* split gives voices it has
never heard. The same model on both, at one SNR (dynamic mixing with a fixed
seed: every model gets the same mixtures), tells how much of what it does
carries over to new voices, which is what real recordings ask of it. Rows are
split by whether target and masker are real recordings or TTS voices.

Audio-visual models get the target's exact lips (the renderer's landmarks);
two-output models are scored on the better of their outputs. Writes
bench/results/speakers.json (or ``--name``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402


def _ci(x: list[float]) -> dict[str, float]:
    a = np.asarray(x, dtype=np.float64)
    half = 1.96 * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
    return {"mean": float(a.mean()), "ci95": float(half), "n": int(len(a))}


def score_split(models: dict, root: Path, split: str, snr: float, step: int) -> dict[str, dict[str, list[float]]]:
    """SI-SDRi (dB) of every model on every ``step``-th target of ``split`` mixed with a competing talker at ``snr``."""
    from avse.evaluation.metrics import si_sdr
    from avse.training.data import AvseDataModule

    dm = AvseDataModule(root, val_split=split, p_speech=1.0, snr_speech=(snr, snr), segment_frames=None)
    dm.setup("validate")
    ds = dm.val_set
    out: dict[str, dict[str, list[float]]] = {}
    for i in range(0, len(ds), step):
        item = ds[i]
        kind = ("real" if ds.base.targets[i].get("engine") == "real" else "tts") + " / " + (
            "real" if item["info"]["name"].startswith("real_") else "tts"
        )
        mix, tgt = item["mixture"][None], item["target"].numpy()
        base = float(si_sdr(mix[0].numpy(), tgt))
        for name, model in models.items():
            with torch.no_grad():
                y = model(mix, item["features"].T[None]) if model.audio_visual else model(mix)
            y = y.reshape(-1, y.shape[-1]).numpy()  # [S, T]
            best = max(float(si_sdr(s, tgt)) for s in y)
            out.setdefault(kind, {}).setdefault(name, []).append(best - base)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data/real_models", help="a corpus made with avse synth --real-speech")
    p.add_argument("--models", nargs="*", default=["av", "separate"], help="shipped names or NAME=PATH checkpoints")
    p.add_argument("--snr", type=float, default=0.0, help="target-to-masker ratio of every mixture (dB)")
    p.add_argument("--step", type=int, default=2, help="score every STEP-th target of each split (train is large)")
    p.add_argument("--name", default="speakers")
    args = p.parse_args()
    from avse.api import load_model

    torch.set_num_threads(max(1, torch.get_num_threads()))
    models = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        models[name] = load_model(path or name)[0].eval()
    t0 = time.time()
    result: dict = {"root": str(args.root), "snr": args.snr, "models": args.models, "splits": {}}
    for split, step in (("train", args.step * 3), ("test", args.step)):
        scores = score_split(models, Path(args.root), split, args.snr, step)
        result["splits"][split] = {kind: {m: _ci(v) for m, v in per.items()} for kind, per in sorted(scores.items())}
    result["seconds"] = time.time() - t0
    print(f"SI-SDRi (dB) at {args.snr:+.0f} dB, target / masker voices:")
    for split, kinds in result["splits"].items():
        for kind, per in kinds.items():
            cells = "  ".join(f"{m} {v['mean']:+.2f} ± {v['ci95']:.2f} (n={v['n']})" for m, v in per.items())
            print(f"  {split:5s} {kind:11s} {cells}")
    save(args.name, result)


if __name__ == "__main__":
    main()
