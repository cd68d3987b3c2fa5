"""The overlapped speech detector on real recordings: does it tell one voice from two?

    python bench/bench_overlap.py [--model PATH] [--real ../shared/data/real] [--name overlap]

For every input, the share of its active 10 ms frames where the detector hears two or more voices
(``avse.models.overlap.overlap_share``):

- the real dev set (the 23 clips of ../shared/data/real, audio only): each clip alone, each in the
  real noises (café, kitchen) at 0 and 5 dB, and bench_real.py's two-talker mixtures at -5, 0, +5 dB;
- the 6 CMU ARCTIC utterances of ../shared/data/real/speech alone, and the 9 pairs of their two
  speakers' utterances mixed at 0 dB;
- the recipe's validation items (``--speech``, ``--corpus``, ``--noise``: voices and noises the detector never
  trained on, mixed as in training: one voice, two talking at once, two taking turns), when those
  folders are there.

Reports, per set, the median share and the share of inputs at or above ``ONE_VOICE_OVERLAP`` (the
threshold `avse separate` uses), and the AUC of "two voices talking at once" against "one voice" (the
chance that a random two-talker input scores above a random one-voice input). With ``--separator``
(default the shipped ``separate``), the held-out items also go through the blind separator, and each set
says how often `avse separate` without faces would give one output the whole input
(``Separator.one_voice_blind``) with the detector and by the level rule alone. Writes
bench/results/NAME.json and NAME.png (the shares, one dot per input).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save, seconds_per_second  # noqa: E402


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a random ``pos`` scores above a random ``neg``), ties counted half."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(np.mean(p > n) + 0.5 * np.mean(p == n)) if p.size and n.size else float("nan")


def main() -> None:
    """Measure the detector on every set there is (see the module docstring) and write the JSON and the plot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a detector checkpoint (default: the shipped one)")
    p.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real")
    p.add_argument("--work", type=Path, default=None, help="bench_real.py's work folder (its front-end cache is reused)")
    p.add_argument("--speech", default="data/real_speech", help="the recipe's voices (its validation speakers are used)")
    p.add_argument("--noise", default="data/real_noise", help="the recipe's noises")
    p.add_argument("--corpus", nargs="*", default=None, help="the recipe's corpora of TTS voices (default: the recipe's)")
    p.add_argument("--val-items", type=int, default=300)
    p.add_argument("--separator", default="separate", help="the blind separator for the one-voice counts ('none': skip)")
    p.add_argument("--name", default="overlap")
    args = p.parse_args()

    from avse.api import ONE_VOICE_OVERLAP
    from avse.audio.io import load_audio
    from avse.models.overlap import OverlapDetector, overlap_share

    det = OverlapDetector.from_pretrained(args.model)
    sets: dict[str, dict[str, float]] = {}  # set name -> {input id: share}
    merged: dict[str, dict[str, list[bool]]] = {}  # set name -> {"detector": [...], "level only": [...]}
    seps = None
    if args.separator != "none":
        from avse.api import Separator

        # one run of the blind model, as the README's numbers of this bench were measured
        seps = (Separator(args.separator, av=None, overlap=det, shifts=1),
                Separator(args.separator, av=None, overlap=False, shifts=1))

    def share(x: np.ndarray) -> float:
        """x float [T] at 16 kHz -> its share of active frames with two voices at once."""
        return overlap_share(det.frame_probs(x), x)

    if args.real.is_dir():
        from bench_real import SR, build_items, load_clips

        work = args.work or Path(tempfile.gettempdir()) / "avse_bench_real"
        noises = {q.stem: load_audio(q, SR)[0] for q in sorted((args.real / "noise").glob("*.wav"))}
        for it in build_items(load_clips(args.real, work / "frontend"), noises, quick=False):
            key = ("real, one voice" if it.condition == "clean" else "real, one voice in noise" if it.condition == "noise"
                   else f"real, two voices {it.snr:+.0f} dB")
            sets.setdefault(key, {})[it.id] = share(it.mixture)
        arctic = [load_audio(q, SR)[0] for q in sorted((args.real / "speech").glob("*.wav"))]
        for i, a in enumerate(arctic):
            sets.setdefault("ARCTIC, one voice", {})[f"arctic_{i}"] = share(a)
        half = len(arctic) // 2
        for i in range(half):
            for j in range(half, len(arctic)):
                a, b = arctic[i], arctic[j]
                n = min(len(a), len(b))
                m = a[:n] / np.std(a[:n]) + b[:n] / np.std(b[:n])
                sets.setdefault("ARCTIC, two voices 0 dB", {})[f"arctic_{i}_{j}"] = share(0.1 * m.astype(np.float32))
    else:
        print(f"real clips: skipped ({args.real} is absent)", flush=True)
    if Path(args.speech).is_dir():
        from avse.training.overlap import ItemMaker, Recipe, VoicePool, noise_pool

        given = {"speech": [args.speech], "noise": [args.noise]} | ({} if args.corpus is None else {"corpus": args.corpus})
        rec = Recipe.from_mapping(dict((det.extra or {}).get("recipe", {})) | given)
        voices = VoicePool(rec.speech, corpora=rec.corpus, mbrola=rec.mbrola)
        _, val_spk = voices.split(rec.val_every)
        noises_all = noise_pool(rec.noise) if Path(args.noise).is_dir() else []
        maker = ItemMaker(rec, voices, val_spk, noises_all[:: rec.val_every])
        rng = np.random.default_rng([rec.seed, 12345])
        for k in range(args.val_items):
            mix, lab, two = maker.make(rng)
            key = {"one": "held-out voices, one", "at once": "held-out voices, two at once",
                   "turns": "held-out voices, two taking turns"}[maker.last_kind]
            sets.setdefault(key, {})[f"val_{k:03d}"] = share(mix)
            if seps is not None:
                est = seps[0].blind_outputs(mix)[0][:, : len(mix)]
                m = merged.setdefault(key, {"detector": [], "level only": []})
                m["detector"].append(seps[0].one_voice_blind(est, mix) is not None)
                m["level only"].append(seps[1].one_voice_blind(est, mix) is not None)
    else:
        print(f"held-out voices: skipped ({args.speech} is absent)", flush=True)

    result: dict = {"model": args.model or "shipped", "threshold": ONE_VOICE_OVERLAP, "sets": {},
                    "real_time_factor_one_core": speed(det)}
    for name, vals in sets.items():
        v = np.array(list(vals.values()))
        result["sets"][name] = {"inputs": len(v), "median_share": float(np.median(v)),
                                "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90)),
                                "at_or_above_threshold": float(np.mean(v >= ONE_VOICE_OVERLAP)), "items": vals}
        if name in merged:
            result["sets"][name]["one_voice_given"] = {k: float(np.mean(x)) for k, x in merged[name].items()}
    one = [x for k in ("real, one voice",) for x in sets.get(k, {}).values()]
    two = [x for k, s in sets.items() if k.startswith("real, two voices") for x in s.values()]
    result["auc_real_two_vs_clean"] = auc(two, one)
    result["auc_real_two_vs_noisy"] = auc(two, list(sets.get("real, one voice in noise", {}).values()))
    result["auc_arctic"] = auc(list(sets.get("ARCTIC, two voices 0 dB", {}).values()), list(sets.get("ARCTIC, one voice", {}).values()))
    result["auc_held_out"] = auc(list(sets.get("held-out voices, two at once", {}).values()),
                                 list(sets.get("held-out voices, one", {}).values()))
    save(args.name, result)
    plot(result, RESULTS / f"{args.name}.png")


def speed(det) -> float:
    """Seconds the detector takes per second of audio on one core (60 s of noise, best of 3)."""
    return seconds_per_second(det.frame_probs)


def plot(result: dict, path: Path) -> None:
    """One row per set: each input's share of overlapped frames, and the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["sets"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        v = np.array(list(result["sets"][name]["items"].values()))
        two = "two" in name
        ax.scatter(v, i + rng.uniform(-0.15, 0.15, len(v)), s=10, alpha=0.7, color="tab:red" if two else "tab:blue")
    ax.axvline(result["threshold"], color="k", lw=1, ls="--")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("share of active frames the detector hears two voices in")
    ax.set_xlim(-0.02, 1.02)
    ax.invert_yaxis()
    ax.set_title("overlap detector: one voice (blue), two (red)\ndashed: the one-voice threshold of avse separate", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
