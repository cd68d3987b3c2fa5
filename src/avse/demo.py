"""``avse demo``: the main job on its built-in default, end to end on a small synthetic corpus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from avse.utils.fs import ensure_dir, write_json


def run_demo(out: str | Path = "avse_demo", jobs: int = 2, seed: int = 0, n_scenes: int = 12) -> dict:
    """Synthesize a small corpus, build and render dev scenes, check them, write an overview PNG.

    Everything lands under ``out`` (corpus/, overview.png, lips.png,
    summary.json); a second run reuses what is there. Returns the summary.
    """
    from avse.audio.io import load_audio
    from avse.config import synth_config
    from avse.video.landmarks import mouth_opening, read_landmarks
    from avse.data.scenes import build_scenes, measured_snr, render_scenes, write_scenes
    from avse.data.synth import lip_speech_report, synthesize_corpus
    from avse.evaluation.plots import agreement_plot, scene_overview
    from avse.video.io import read_video
    from avse.video.sync import frame_energy_db

    out = ensure_dir(out)
    corpus = out / "corpus"
    t0 = time.perf_counter()
    print(f"[1/4] synthesizing a small audio-visual corpus in {corpus} ({jobs} jobs)")
    made = synthesize_corpus(corpus, synth_config("demo", seed=seed), jobs=jobs)
    t_synth = time.perf_counter() - t0

    print(f"[2/4] building and rendering {n_scenes} dev scenes")
    scenes = build_scenes(corpus, "dev", n_scenes=n_scenes, seed=seed)
    write_scenes(corpus, "dev", scenes)
    render_scenes(corpus, "dev", jobs=jobs, progress=True)
    t_render = time.perf_counter() - t0 - t_synth

    print("[3/4] checking rendered SNRs and lip/speech agreement")
    scene_dir = corpus / "dev" / "scenes"
    snr_err = []
    for s in scenes:
        got = measured_snr(scene_dir / f"{s['scene']}_target.wav", scene_dir / f"{s['scene']}_interferer.wav")
        snr_err.append(abs(got - s["SNR"]))
    lips = lip_speech_report(corpus, "dev")

    print("[4/4] writing figures")
    s = scenes[0]
    name = s["target"]["name"]
    mixed, _ = load_audio(scene_dir / f"{s['scene']}_mixed.wav")
    target, _ = load_audio(scene_dir / f"{s['scene']}_target.wav")
    interferer, _ = load_audio(scene_dir / f"{s['scene']}_interferer.wav")
    clip = read_video(scene_dir / f"{s['scene']}_silent.mp4")
    marks = read_landmarks(corpus / "dev" / "targets_landmarks" / f"{name}.npz")
    title = f"{s['scene']}: target {name} + {s['interferer']['type']} interferer {s['interferer']['name']} at {s['SNR']:.1f} dB"
    overview = scene_overview(out / "overview.png", mixed, target, interferer, clip.frames, marks["lips"], title=title)
    i0 = int(np.argmax(lips["corr"]))
    first_audio, _ = load_audio(corpus / "dev" / "targets" / f"{lips['ids'][i0]}.wav")
    first_lips = read_landmarks(corpus / "dev" / "targets_landmarks" / f"{lips['ids'][i0]}.npz")["lips"]
    opening = mouth_opening(first_lips)
    agreement = agreement_plot(out / "lips.png", opening, frame_energy_db(first_audio, len(opening)), lips["corr"], lips["lag"])

    summary = {
        "corpus": made,
        "scenes": {"dataset": "dev", "count": len(scenes), "max_abs_snr_error_db": float(max(snr_err))},
        "lip_speech": {"utterances": len(lips["ids"]), "mean_corr": lips["mean_corr"], "share_lag_within_1": lips["share_lag_ok"]},
        "seconds": {"synth": round(t_synth, 1), "render": round(t_render, 1), "total": round(time.perf_counter() - t0, 1)},
        "figures": {"overview": str(overview), "lips": str(agreement)},
    }
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return summary
