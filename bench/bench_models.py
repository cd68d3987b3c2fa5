"""Quality of the trained models against the baselines: synthetic test scenes, real GRID mixtures, real voices in real noise.

    python bench/bench_models.py [--root data/models] [--models av=PATH ...] [--jobs 2]

1. Synthetic test set: the "models" corpus's test split (speakers never heard in
   training), 96 scenes at SNR -5..5 dB, half with a competing talker
   (target-speaker extraction), half with noise (enhancement). Built and rendered
   once (seeded) when ROOT/metadata/scenes.test.json is missing. Every method is
   scored by ``avse.evaluation.evaluate`` (SI-SDRi, PESQ-WB, STOI) and reported
   per interferer type.
   The audio-visual models are scored again with lip features from the front end
   (face detection on the rendered videos) instead of the ground-truth landmarks.
2. Real GRID clips: each clip mixed with another clip's audio at 0 dB, the first
   clip's face given (front end on the real video): SI-SDRi of the audio-visual
   and audio-only models.
3. Real voices in real noise (CMU ARCTIC + kitchen / café noise at 0 dB): SI-SDRi
   of the audio-only model and noisereduce (no faces here).

Writes bench/results/models.json and models.png (bars per method and task).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
BASELINES = ("unprocessed", "noisereduce", "oracle-irm")
MODELS = ("audio", "av", "av-causal")
METRICS = ("si_sdri", "pesq_wb", "stoi")
N_SCENES = 96
SNR = (-5.0, 5.0)


def ensure_test_scenes(root: Path, jobs: int, n_scenes: int = N_SCENES) -> None:
    """Build and render the fixed test scenes once."""
    from avse.data.metadata import scenes_path
    from avse.data.render import render_scenes
    from avse.data.scenes import build_scenes, write_scenes

    if scenes_path(root, "test").exists():
        return
    scenes = build_scenes(root, "test", n_scenes=n_scenes, seed=1234, snr_speech=SNR, snr_noise=SNR, p_speech=0.5)
    write_scenes(root, "test", scenes)
    render_scenes(root, "test", jobs=jobs, progress=False)


def synthetic(root: Path, methods: dict[str, str], out: Path, jobs: int, reuse: tuple[str, ...] = ()) -> dict:
    """Evaluate every method on the test scenes -> {method: {type: {metric: mean}}}.

    Methods named in ``reuse`` whose OUT/NAME/summary.json exists are read back instead of re-run.
    """
    import json

    from avse.evaluation.run import evaluate

    table: dict[str, dict] = {}
    for name, method in methods.items():
        t0 = time.perf_counter()
        if name in reuse and (out / name / "summary.json").is_file():
            summary = json.loads((out / name / "summary.json").read_text())
        else:
            summary = evaluate(root, "test", method, out / name, metrics=("si_sdr",) + METRICS, jobs=jobs, progress=False)
        row = {"all": {m: summary["all"][m]["mean"] for m in METRICS}}
        for kind, sub in summary["by_interferer_type"].items():
            row[kind] = {m: sub[m]["mean"] for m in METRICS}
            row[kind]["n"] = sub["si_sdri"]["n"]
            row[kind]["si_sdri_ci95"] = [sub["si_sdri"]["ci_low"], sub["si_sdri"]["ci_high"]]
        row["seconds"] = round(time.perf_counter() - t0, 1)
        table[name] = row
        print(f"{name:12s} " + "  ".join(f"{k}: " + " ".join(f"{m}={row[k][m]:.2f}" for m in METRICS) for k in row if k != "seconds"),
              flush=True)
    return table


def detected_features(root: Path, enhancers: dict) -> dict:
    """The audio-visual models on the test scenes with lip features from the front end (MediaPipe on the rendered
    faces) instead of the renderer's ground-truth landmarks -> mean SI-SDRi per interferer type."""
    from avse.audio.io import load_audio
    from avse.data.metadata import load_scenes, scenes_dir, scenes_path
    from avse.evaluation.metrics import si_sdr
    from avse.video.frontend import process

    scenes = load_scenes(scenes_path(root, "test"))
    if any(int(s.get("pre_samples", 0)) for s in scenes):
        return {"skipped": "scenes with pre_samples"}
    feats = {}
    for s in scenes:
        name = s["target"]["name"]
        if name not in feats:
            feats[name] = process(root / "test" / "targets_video" / f"{name}.mp4").features
    rows = []
    for s in scenes:
        folder = scenes_dir(root, "test")
        mix, _ = load_audio(folder / f"{s['scene']}_mixed.wav", 16000)
        tgt, _ = load_audio(folder / f"{s['scene']}_target.wav", 16000)
        base = si_sdr(mix, tgt)
        row = {"scene": s["scene"], "type": s["interferer"]["type"]}
        for k, enh in enhancers.items():
            row[k] = float(si_sdr(enh.enhance(mix, 16000, video=feats[s["target"]["name"]]), tgt) - base)
        rows.append(row)
    out = {kind: {k: float(np.mean([r[k] for r in rows if r["type"] == kind])) for k in enhancers} for kind in ("speech", "noise")}
    print("test scenes with front-end (detected) lip features, mean SI-SDRi:", out, flush=True)
    return {"mean_si_sdri": out, "targets": len(feats)}


def _mix_at(target: np.ndarray, other: np.ndarray, snr_db: float) -> np.ndarray:
    """target + other scaled so that the target-to-other energy ratio is ``snr_db``."""
    n = min(len(target), len(other))
    t, o = target[:n], other[:n]
    g = np.sqrt(np.sum(t**2) / max(np.sum(o**2), 1e-12) / 10 ** (snr_db / 10))
    return t + g * o


def grid_mixtures(enhancers: dict, snr_db: float = 0.0) -> dict:
    """Each GRID clip's audio mixed with another clip's at ``snr_db``, the first clip's face given -> SI-SDRi per model."""
    from avse.evaluation.metrics import si_sdr
    from avse.video.frontend import process

    clips = sorted((REAL / "grid").glob("*.mpg"))
    if len(clips) < 2:
        return {"skipped": f"no GRID clips in {REAL / 'grid'}"}
    fronts = {c.stem: process(c) for c in clips}
    rows = []
    for a, b in itertools.permutations(sorted(fronts), 2):
        ta, tb = fronts[a].audio, fronts[b].audio
        n = min(len(ta), len(tb))
        mix = _mix_at(ta[:n], tb[:n], snr_db).astype(np.float32)
        row = {"target": a, "interferer": b}
        base = si_sdr(mix, ta[:n])
        for name, enh in enhancers.items():
            est = enh.enhance(mix, 16000, video=fronts[a].features)
            row[name] = float(si_sdr(est, ta[:n]) - base)
        rows.append(row)
    summary = {name: float(np.mean([r[name] for r in rows])) for name in enhancers}
    print("GRID 0 dB two-talker mixtures, mean SI-SDRi:", {k: round(v, 2) for k, v in summary.items()}, flush=True)
    return {"pairs": len(rows), "snr_db": snr_db, "mean_si_sdri": summary, "items": rows}


def real_noise(enhancers: dict, snr_db: float = 0.0) -> dict:
    """CMU ARCTIC utterances in real kitchen and café noise at ``snr_db`` -> SI-SDRi of audio-only methods."""
    from avse.audio.io import load_audio
    from avse.evaluation.baselines import noisereduce
    from avse.evaluation.metrics import si_sdr

    speech = sorted((REAL / "speech").glob("*.wav"))
    noises = sorted((REAL / "noise").glob("*.wav"))
    if not speech or not noises:
        return {"skipped": f"no real speech/noise in {REAL}"}
    methods = {"noisereduce": lambda x: noisereduce(x, None, None, 16000)}
    methods.update({k: (lambda x, e=e: e.enhance(x, 16000)) for k, e in enhancers.items()})
    rows = []
    for sp, nz in itertools.product(speech, noises):
        s, _ = load_audio(sp, 16000)
        z, _ = load_audio(nz, 16000)
        z = np.resize(z, len(s))  # loops the short cafe noise
        mix = _mix_at(s, z, snr_db).astype(np.float32)
        mix /= max(1.0, float(np.abs(mix).max()) / 0.9)
        scale = np.dot(mix, s) / np.dot(s, s)  # the clean reference at the level it has in the mixture
        base = si_sdr(mix, s * scale)
        row = {"speech": sp.stem, "noise": nz.stem}
        for name, fn in methods.items():
            row[name] = float(si_sdr(fn(mix), s * scale) - base)
        rows.append(row)
    summary = {name: float(np.mean([r[name] for r in rows])) for name in methods}
    print("real speech in real noise at 0 dB, mean SI-SDRi:", {k: round(v, 2) for k, v in summary.items()}, flush=True)
    return {"items": len(rows), "snr_db": snr_db, "mean_si_sdri": summary, "rows": rows}


def plot(table: dict, path: Path) -> None:
    """Grouped bars: one panel per metric, bars per method, groups by interferer type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("speech", "noise") if all(k in r for r in table.values())]
    names = list(table)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.8))
    width = 0.8 / len(names)
    for ax, metric in zip(axes, METRICS):
        for i, name in enumerate(names):
            vals = [table[name][k][metric] for k in kinds]
            ax.bar(np.arange(len(kinds)) + (i - (len(names) - 1) / 2) * width, vals, width, label=name)
        ax.set_xticks(range(len(kinds)), [{"speech": "competing talker", "noise": "noise"}[k] for k in kinds])
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("synthetic test set (unseen speakers, SNR -5..5 dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="data/models", help="the 'models' corpus (avse synth ROOT --preset models)")
    p.add_argument("--models", nargs="*", default=[], metavar="NAME=PATH",
                   help="checkpoints to score instead of the shipped ones (names: audio, av, av-causal)")
    p.add_argument("--out", default="/tmp/avse_bench_models", help="per-method evaluation folders")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--scenes", type=int, default=N_SCENES, help="test scenes to build when none exist")
    p.add_argument("--reuse", nargs="*", default=[], metavar="METHOD",
                   help="read these methods' results back from --out when there (e.g. the baselines)")
    p.add_argument("--only", nargs="*", metavar="METHOD", help="evaluate only these methods on the synthetic set, write bench/results/models_only_NAMES.json, stop")
    args = p.parse_args()
    from avse.api import Enhancer

    models = {m: m for m in MODELS}
    for item in args.models:
        name, _, path = item.partition("=")
        models[name] = path
    root = Path(args.root)
    ensure_test_scenes(root, args.jobs, args.scenes)
    methods = {**{b: b for b in BASELINES}, **models}
    if args.only:
        chosen = {k: methods[k] for k in args.only}
        table = synthetic(root, chosen, Path(args.out), args.jobs)
        save("models_only_" + "_".join(args.only), {"methods": chosen, "synthetic": table})
        return
    table = synthetic(root, methods, Path(args.out), args.jobs, tuple(args.reuse))
    # the models' own output (no attenuation limit, one run), as the synthetic table scores them
    enhancers = {k: Enhancer.from_pretrained(v, fallback=None, atten_lim_db=None, shifts=1) for k, v in models.items()}
    detected = detected_features(root, {k: enhancers[k] for k in ("av", "av-causal")})
    grid = grid_mixtures({k: enhancers[k] for k in ("audio", "av", "av-causal")})
    noisy = real_noise({"audio": enhancers["audio"]})
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(table, RESULTS / "models.png")
    sp = {k: table[k]["speech"]["si_sdri"] for k in table}
    nz = {k: table[k]["noise"] for k in table}
    goals = {
        "av_minus_audio_extraction_db": round(sp["av"] - sp["audio"], 2),
        "av_minus_audio_extraction_goal_db": 3.0,
        "av_minus_oracle_irm_enhancement_db": round(nz["av"]["si_sdri"] - nz["oracle-irm"]["si_sdri"], 2),
        "av_beats_noisereduce_on_every_metric": bool(
            all(table["av"][k][m] > table["noisereduce"][k][m] for k in ("speech", "noise") for m in METRICS)
        ),
    }
    save("models", {"test_set": {"root": str(root), "scenes": table["unprocessed"]["speech"]["n"] + table["unprocessed"]["noise"]["n"], "snr_db": SNR}, "models": models,
                    "synthetic": table, "goals": goals, "detected_features": detected, "grid": grid, "real_noise": noisy})


if __name__ == "__main__":
    main()
