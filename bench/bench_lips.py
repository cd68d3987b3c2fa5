"""Lips and speech agree: per-frame mouth opening versus per-frame speech energy over a split.

Prints the mean Pearson r at lag 0 and the share of utterances whose best lag
is within +-1 frame (goals: >= 0.5 and >= 95 %), writes bench/results/lips_SPLIT.json
and a figure (bench/results/lips_SPLIT.png).

    python bench/bench_lips.py [--root CORPUS] [--split dev] [--preset demo]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

from avse.audio.io import load_audio  # noqa: E402
from avse.config import synth_config  # noqa: E402
from avse.data.synth import lip_speech_report, synthesize_corpus  # noqa: E402
from avse.plots import agreement_plot  # noqa: E402
from avse.video.landmarks import mouth_opening, read_landmarks  # noqa: E402
from avse.video.sync import frame_energy_db  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="an existing corpus; default: make one with --preset in a temp folder")
    p.add_argument("--split", default="dev", help="train, dev, test, or all")
    p.add_argument("--preset", default="default")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "corpus"
        if not args.root:
            synthesize_corpus(root, synth_config(args.preset), jobs=args.jobs, progress=True)
        splits = ["train", "dev", "test"] if args.split == "all" else [args.split]
        parts = {s: lip_speech_report(root, s) for s in splits}
        rep = {
            "ids": [i for r in parts.values() for i in r["ids"]],
            "split_of": [s for s, r in parts.items() for _ in r["ids"]],
            "corr": np.concatenate([r["corr"] for r in parts.values()]),
            "lag": np.concatenate([r["lag"] for r in parts.values()]),
        }
        rep["mean_corr"] = float(rep["corr"].mean())
        rep["share_lag_ok"] = float(np.mean(np.abs(rep["lag"]) <= 1))
        by_engine: dict[str, list[float]] = {}
        import json

        meta = {e["wavfile"]: e for e in json.loads((root / "metadata" / "target_speech_list.json").read_text())}
        for uid, r in zip(rep["ids"], rep["corr"]):
            by_engine.setdefault(meta[uid]["engine"], []).append(float(r))
        i = int(np.argsort(rep["corr"])[len(rep["corr"]) // 2])  # the median utterance
        split = rep["split_of"][i]
        audio, _ = load_audio(root / split / "targets" / f"{rep['ids'][i]}.wav")
        opening = mouth_opening(read_landmarks(root / split / "targets_landmarks" / f"{rep['ids'][i]}.npz")["lips"])
        RESULTS.mkdir(parents=True, exist_ok=True)
        agreement_plot(RESULTS / f"lips_{args.split}.png", opening, frame_energy_db(audio, len(opening)), rep["corr"], rep["lag"])
    save(
        f"lips_{args.split}",
        {
            "split": args.split,
            "utterances": len(rep["ids"]),
            "mean_corr": round(rep["mean_corr"], 4),
            "min_corr": round(float(np.min(rep["corr"])), 4),
            "share_best_lag_within_1_frame": round(rep["share_lag_ok"], 4),
            "lag_histogram": {int(k): int(v) for k, v in zip(*np.unique(rep["lag"], return_counts=True))},
            "mean_corr_by_engine": {k: round(float(np.mean(v)), 4) for k, v in sorted(by_engine.items())},
            "share_lag_within_1_by_engine": {
                k: round(float(np.mean([abs(g) <= 1 for u, g in zip(rep["ids"], rep["lag"]) if meta[u]["engine"] == k])), 4)
                for k in sorted(by_engine)
            },
            "goal": {"mean_corr": 0.5, "share_best_lag_within_1_frame": 0.95},
        },
    )


if __name__ == "__main__":
    main()
