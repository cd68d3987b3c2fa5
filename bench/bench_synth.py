"""Synthesis throughput: utterances per second, one at a time versus the parallel pipeline.

Both sides make the same corpus (same config and seed) with the same library
code; the baseline runs one utterance at a time in one process, the pipeline
uses ``--jobs`` worker processes. Also times the stages of one target
utterance (TTS, lip trajectory, face rendering, video encoding).

    python bench/bench_synth.py [--preset tiny|demo] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from avse import SAMPLES_PER_FRAME  # noqa: E402
from avse.config import synth_config  # noqa: E402
from avse.data.synth import plan_speech, synthesize_corpus  # noqa: E402


def stage_times(cfg, n: int = 5) -> dict:
    """Seconds per target utterance spent in each stage, averaged over ``n`` utterances."""
    from avse.data.face import render_face, style_for_speaker
    from avse.data.tts import synthesize
    from avse.data.visemes import lip_trajectory
    from avse.video.io import write_video

    tasks = [t for t in plan_speech(cfg) if t.role == "target"][:n]
    acc = {"tts": 0.0, "trajectory": 0.0, "face": 0.0, "encode": 0.0}
    frames_total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for t in tasks:
            t0 = time.perf_counter()
            utt = synthesize(t.text, t.voice)
            t1 = time.perf_counter()
            nf = int(np.ceil(len(utt.audio) / SAMPLES_PER_FRAME))
            rng = np.random.default_rng(t.seed)
            traj = lip_trajectory(utt.phones, nf, rng=rng)
            t2 = time.perf_counter()
            frames, _ = render_face(traj, style_for_speaker(t.face_seed), rng=rng)
            t3 = time.perf_counter()
            write_video(Path(tmp) / "x.mp4", frames, audio=utt.audio, crf=cfg.video_crf[1], preset=cfg.video_preset)
            t4 = time.perf_counter()
            for k, dt in zip(acc, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                acc[k] += dt
            frames_total += nf
    out = {k: round(v / len(tasks), 4) for k, v in acc.items()}
    out["face_frames_per_s"] = round(frames_total / acc["face"], 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="demo")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    cfg = synth_config(args.preset)
    n_utt = len(plan_speech(cfg))
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, jobs in (("one_at_a_time", 1), ("pipeline", args.jobs)):
            t0 = time.perf_counter()
            synthesize_corpus(Path(tmp) / name, cfg, jobs=jobs, progress=False)
            times[name] = time.perf_counter() - t0
    result = {
        "preset": args.preset,
        "utterances": n_utt,
        "jobs": args.jobs,
        "one_at_a_time_utt_per_s": round(n_utt / times["one_at_a_time"], 3),
        "pipeline_utt_per_s": round(n_utt / times["pipeline"], 3),
        "speedup": round(times["one_at_a_time"] / times["pipeline"], 2),
        "stage_seconds_per_target_utterance": stage_times(cfg),
    }
    save("synth", result)


if __name__ == "__main__":
    main()
