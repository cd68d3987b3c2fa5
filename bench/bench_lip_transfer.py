"""Which visual stream carries over from rendered faces to real ones: lips -> speech envelope, trained on synthetic, tested on real.

    python bench/bench_lip_transfer.py [--root data/models] [--cache CACHE] [--real ../shared/data/real] [--steps 1500]

A separation model can only use the lips if what it learned from rendered faces
still means the same on real ones. This measures that directly and cheaply: a
small lip-feature network (``avse.models.visual.LipsFrontend`` + a linear head,
non-causal, 15-frame context) learns to predict the target's per-frame speech
envelope (log energy of each 40 ms frame, standardised per utterance) from its
lips, on the synthetic corpus's train split. It is then scored, unchanged, by
the mean per-utterance Pearson r between predicted and true envelope on

- the synthetic dev split (in domain), and
- the 23 real talking-face clips (lips from the front end, as ``avse enhance``
  gets them), plus the same with the *other* clip's envelope (the chance level
  of a talker-discriminating cue).

Variants of the visual stream, each trained with the same seed and steps:
``raw`` (the lip features as the shipped models get them), ``norm`` (each
channel minus its per-utterance mean over face frames: ``AVNet
visual_norm="utterance"``), ``norm+aug`` (plus the augmentation of
``avse.training.augment``), ``velocity`` (frame-to-frame differences only), and,
with ``--cache`` (an ``avse prepare`` folder of the corpus: MediaPipe run on the
rendered faces), ``mediapipe+norm+aug``.

Writes bench/results/lip_transfer.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from bench_real import REAL, load_clips, partners  # noqa: E402

SEGMENT = 50  # frames per training window (2 s)


def envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """audio [T] at 16 kHz -> per-frame log energy (dB) of each 640-sample frame, standardised -> float32 [n_frames]."""
    x = np.pad(audio[: n_frames * 640], (0, max(0, n_frames * 640 - len(audio))))
    e = 10 * np.log10(np.mean(x.reshape(n_frames, 640) ** 2, axis=1) + 1e-8)
    e = np.maximum(e, e.max() - 50.0)
    return ((e - e.mean()) / (e.std() + 1e-6)).astype(np.float32)


def synthetic_split(root: Path, split: str, cache: Path | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features [F, 82], envelope [F]) of every target of ``split``; features from the landmarks or the cache."""
    from avse.audio.io import load_audio
    from avse.data.datasets import target_lip_features
    from avse.data.metadata import load_speech_list, target_speech_list_path, target_wav_path

    out = []
    for e in load_speech_list(target_speech_list_path(root)):
        if e["dataset"] != split:
            continue
        if cache is None:
            feats = target_lip_features(root, split, e["wavfile"])
        else:
            from avse.data.prepare import cache_path, load_cached

            feats = load_cached(cache_path(cache, e["wavfile"], split), keys=("features",))["features"]
        audio, _ = load_audio(target_wav_path(root, split, e["wavfile"]), 16000)
        out.append((np.asarray(feats, dtype=np.float32), envelope(audio, len(feats))))
    return out


def stream_of(variant: str) -> str:
    """The deterministic visual stream of a variant: "norm+aug" -> "norm", "raw" -> "raw"."""
    return variant.split("+")[0]


def transform(feats: np.ndarray, variant: str) -> np.ndarray:
    """The visual stream of a variant: features [F, 82] -> [F, 82] (normalisation and velocities; no randomness)."""
    import torch

    from avse.models.avnet import normalize_visual

    variant = stream_of(variant)
    if variant == "raw":
        return feats
    if variant == "velocity":
        v = np.diff(feats, axis=0, prepend=feats[:1])
        return np.where(np.any(feats != 0, axis=1, keepdims=True), v, 0).astype(np.float32)
    return normalize_visual(torch.from_numpy(feats.T[None]), causal=False)[0].numpy().T


def train(data: list[tuple[np.ndarray, np.ndarray]], variant: str, steps: int, seed: int = 0):
    """A LipsFrontend + linear head trained on random 2 s windows of ``data`` -> the model (eval mode)."""
    import torch

    from avse.models.visual import LipsFrontend, LipsFrontendConfig
    from avse.training.augment import augment_lip_features

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    front = LipsFrontend(LipsFrontendConfig(n_features=82, channels=64, n_blocks=3))  # [B, F, 82] -> [B, 64, F]
    head = torch.nn.Conv1d(64, 1, 1)
    net = torch.nn.Sequential(front, head)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    usable = [d for d in data if len(d[0]) >= SEGMENT]
    for _ in range(steps):
        xs, ys = [], []
        for i in rng.integers(0, len(usable), 16):
            f, e = usable[i]
            if "aug" in variant:
                f = augment_lip_features(f, rng)
            f = transform(f, variant)
            s = int(rng.integers(0, len(f) - SEGMENT + 1))
            xs.append(f[s : s + SEGMENT])
            ys.append(e[s : s + SEGMENT])
        x = torch.from_numpy(np.stack(xs))  # [B, F, 82]
        y = torch.from_numpy(np.stack(ys))  # [B, F]
        pred = net(x)[:, 0]  # [B, F]
        loss = torch.mean((pred - y) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def correlations(net, feats_list: list[np.ndarray], envs: list[np.ndarray], variant: str) -> list[float]:
    """Pearson r between the predicted envelope of each features [F, 82] and its envelope [F] -> one r per item."""
    import torch

    out = []
    with torch.no_grad():
        for f, e in zip(feats_list, envs):
            pred = net(torch.from_numpy(transform(f, variant))[None])[0, 0].numpy()
            n = min(len(pred), len(e))
            out.append(float(np.corrcoef(pred[:n], e[:n])[0, 1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("data/models"))
    ap.add_argument("--cache", type=Path, default=None, help="avse prepare folder of ROOT (MediaPipe lips of the rendered faces)")
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--work", type=Path, default=Path("/tmp/avse_bench_real"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    clips = load_clips(args.real, args.work / "frontend")
    real_feats = [c.features for c in clips]
    real_env = [envelope(c.audio, len(c.features)) for c in clips]
    other = partners(clips)
    other_env = [np.resize(real_env[j], len(real_env[i])) for i, j in enumerate(other)]
    sources = {"landmarks": (synthetic_split(args.root, "train", None), synthetic_split(args.root, "dev", None))}
    if args.cache is not None:
        sources["mediapipe"] = (synthetic_split(args.root, "train", args.cache), synthetic_split(args.root, "dev", args.cache))
    variants = [("landmarks", "raw"), ("landmarks", "velocity"), ("landmarks", "norm"), ("landmarks", "norm+aug")]
    if "mediapipe" in sources:
        variants += [("mediapipe", "norm"), ("mediapipe", "norm+aug")]
    results = {}
    for src, variant in variants:
        tr, dev = sources[src]
        t1 = time.perf_counter()
        net = train(tr, variant, args.steps)
        key = f"{src}:{variant}"
        r_dev = correlations(net, [f for f, _ in dev], [e for _, e in dev], variant)
        r_real = correlations(net, real_feats, real_env, variant)
        r_other = correlations(net, real_feats, other_env, variant)
        results[key] = {
            "synthetic_dev_r": float(np.mean(r_dev)),
            "real_r": float(np.mean(r_real)),
            "real_r_other_talker": float(np.mean(r_other)),
            "real_own_beats_other": float(np.mean(np.greater(r_real, r_other))),
            "real_r_per_clip": [round(r, 3) for r in r_real],
            "seconds": round(time.perf_counter() - t1, 1),
        }
        print(f"{key:28s} synthetic dev r={results[key]['synthetic_dev_r']:.3f}  real r={results[key]['real_r']:.3f}  "
              f"(other talker {results[key]['real_r_other_talker']:.3f}, own > other on "
              f"{results[key]['real_own_beats_other']:.0%})", flush=True)
    save("lip_transfer", {"steps": args.steps, "train_items": len(sources["landmarks"][0]), "clips": len(clips),
                          "results": results, "seconds": round(time.perf_counter() - t0, 1)})


if __name__ == "__main__":
    main()
