"""``avse demo``: the main job on its built-in default: noisy talking-face videos in, enhanced speech out, measured."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from avse.utils.fs import ensure_dir, write_json

DEMO_SNR = (-3.0, 3.0)
# The demo corpus gets its own seed: its speaker identities differ from those the shipped
# models were trained on (the "models" corpus, seed 0).
DEMO_SEED = 20261121


def _scores(estimate: np.ndarray, target: np.ndarray, mixture: np.ndarray) -> dict[str, float]:
    """SI-SDR, SI-SDRi, PESQ-WB and STOI of one estimate [T] against the clean target [T]."""
    from avse.evaluation.metrics import evaluate_pair

    out = evaluate_pair(estimate, target, mixture, 16000, metrics=("si_sdr", "si_sdri", "pesq_wb", "stoi"))
    return {k: round(float(v), 3) for k, v in out.items()}


def run_demo(out: str | Path = "avse_demo", jobs: int = 2, seed: int = DEMO_SEED, n_scenes: int = 4,
             model: str = "av") -> dict[str, Any]:
    """Make noisy talking-face videos, enhance them with the shipped model, measure, and write a before/after report.

    1. synthesizes a small corpus (speakers the shipped models never heard) and
       renders ``n_scenes`` test scenes at -3..3 dB, half with a competing
       talker, half with noise; each becomes ``noisy_SXXXXX.mp4`` (the face with
       the noisy sound), the kind of file a user has;
    2. runs ``avse.api.Enhancer`` (``model``, the video front end included) on
       each video, and the audio-only model and noisereduce for comparison;
    3. scores every output against the clean target (SI-SDR(i), PESQ-WB, STOI);
    4. writes under ``out``: ``enhanced_SXXXXX.wav`` and ``.mp4`` (the video with
       the enhanced sound), ``report_SXXXXX.png`` (spectrograms before/after,
       the mouth track, mouth crops) and ``summary.json``. Returns the summary.
    """
    from avse.api import Enhancer
    from avse.audio.io import load_audio, save_wav
    from avse.config import synth_config
    from avse.data.render import render_scenes
    from avse.data.scenes import build_scenes, write_scenes
    from avse.data.synth import synthesize_corpus
    from avse.evaluation.baselines import noisereduce
    from avse.plots import enhancement_report
    from avse.video.frontend import process
    from avse.video.io import read_video, write_video
    from avse.video.landmarks import mouth_opening

    # the models first: an unknown name or a bad checkpoint is refused before any work
    enhancer = Enhancer.from_pretrained(model)
    # the audio-only model for comparison (unless it is the demo's model)
    audio_only = Enhancer.from_pretrained("audio", fallback=None) if enhancer.audio_visual else None
    out = ensure_dir(out)
    corpus = out / "corpus"
    t0 = time.perf_counter()
    print(f"[1/4] synthesizing talking faces and noisy scenes in {corpus} ({jobs} jobs)")
    synthesize_corpus(corpus, synth_config("demo", seed=seed), jobs=jobs)
    half = n_scenes // 2  # first a competing talker, then noise
    scenes = build_scenes(corpus, "test", n_scenes=half, seed=seed, snr_speech=DEMO_SNR, p_speech=1.0)
    scenes += build_scenes(corpus, "test", n_scenes=n_scenes - half, seed=seed + 1, snr_noise=DEMO_SNR, p_speech=0.0,
                           start_index=half + 1)
    write_scenes(corpus, "test", scenes)
    render_scenes(corpus, "test", jobs=jobs, progress=False)
    scene_dir = corpus / "test" / "scenes"
    t_data = time.perf_counter() - t0

    print(f"[2/4] enhancing {len(scenes)} noisy videos with the shipped '{model}' model (front end included)")
    results: list[dict[str, Any]] = []
    for s in scenes:
        name = s["scene"]
        mixed, _ = load_audio(scene_dir / f"{name}_mixed.wav", 16000)
        target, _ = load_audio(scene_dir / f"{name}_target.wav", 16000)
        clip = read_video(scene_dir / f"{name}_silent.mp4", with_audio=False)
        noisy = out / f"noisy_{name}.mp4"
        write_video(noisy, clip.frames, audio=mixed)
        front = process(noisy, crops=True)
        enhanced = enhancer.enhance(mixed, 16000, video=front, frames_from=noisy)  # as `avse enhance noisy.mp4 --audio mixed.wav`
        info = dict(enhancer.last_info)
        n = min(len(enhanced), len(target), len(mixed))
        enhanced, tgt, mix = enhanced[:n], target[:n], mixed[:n]
        others = {"noisereduce": noisereduce(mix, None, None, 16000)}
        if audio_only is not None:
            others["audio"] = audio_only.enhance(mix, 16000)
        row: dict[str, Any] = {
            "scene": name,
            "interferer": s["interferer"]["type"],
            "snr_db": float(s["SNR"]),
            "mode": info.get("mode"),
            "input": _scores(mix, tgt, mix),
            model: _scores(enhanced, tgt, mix),
            **{k: _scores(v[:n], tgt, mix) for k, v in others.items()},
        }
        save_wav(out / f"enhanced_{name}.wav", enhanced, 16000)
        write_video(out / f"enhanced_{name}.mp4", clip.frames, audio=np.clip(enhanced, -1, 1))
        title = (f"{name}: {s['interferer']['type']} interferer at {s['SNR']:+.1f} dB; "
                 f"SI-SDR {row['input']['si_sdr']:.1f} -> {row[model]['si_sdr']:.1f} dB ({info.get('mode')})")
        enhancement_report(
            out / f"report_{name}.png",
            {"noisy input": mix, f"enhanced ({model})": enhanced,
             **({"audio-only model": others["audio"]} if "audio" in others else {}), "clean target": tgt},
            crops=front.crops,
            opening=mouth_opening(front.landmarks["lips"]),
            title=title,
        )
        results.append(row)
        print(f"      {name} ({row['interferer']}, {row['snr_db']:+.1f} dB): SI-SDR {row['input']['si_sdr']:+.1f} -> "
              f"{row[model]['si_sdr']:+.1f} dB with {model}"
              + (f", {row['audio']['si_sdr']:+.1f} audio-only" if "audio" in others else ""))
    t_enh = time.perf_counter() - t0 - t_data

    print("[3/4] scoring against the clean targets")
    methods = ["input", model] + (["audio"] if audio_only is not None else []) + ["noisereduce"]
    means = {m: {k: round(float(np.mean([r[m][k] for r in results])), 2) for k in ("si_sdri", "pesq_wb", "stoi")}
             for m in methods}
    print("[4/4] writing the report")
    summary = {
        "model": model,
        "scenes": results,
        "mean": means,
        "seconds": {"data": round(t_data, 1), "enhance_and_score": round(t_enh, 1), "total": round(time.perf_counter() - t0, 1)},
        "outputs": sorted(str(p) for p in out.glob("enhanced_*")) + sorted(str(p) for p in out.glob("report_*.png")),
    }
    write_json(out / "summary.json", summary)
    print(f"{'method':<12} {'SI-SDRi dB':>10} {'PESQ-WB':>8} {'STOI':>6}")
    for m in methods:
        print(f"{m:<12} {means[m]['si_sdri']:>10.2f} {means[m]['pesq_wb']:>8.2f} {means[m]['stoi']:>6.3f}")
    print(f"written: {out}/enhanced_*.wav|mp4, {out}/report_*.png, {out}/summary.json")
    return summary


__all__ = ["run_demo"]
