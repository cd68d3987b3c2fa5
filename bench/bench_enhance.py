"""Offline enhancement speed and memory on one CPU core: real-time factor of Enhancer.enhance with and without the front end.

On the real GRID clips (../shared/data/real/grid; skipped with a message when
absent) and on a 60 s input made by tiling one clip (video and audio), times
``avse.api.Enhancer.enhance`` pinned to one core (torch.set_num_threads(1),
OMP/MKL threads 1, CPU affinity {0}) and prints the real-time factor
(processing seconds / input seconds) with the video front end included
(goal < 0.3) and with precomputed lip features (goal < 0.1). Then, in fresh
processes, the peak resident memory of enhancing a 10-minute input in 10 s
chunks, next to the memory of the process before enhancing and of a 60 s
input run as one chunk (what chunking saves); peak = VmHWM. With ``--long``, the
peak memory and time of the whole ``avse enhance`` command on a 10-minute video
(a GRID clip looped, its sound as ``--audio``), with ``--assign auto`` (the blind
model and the sync expert asked too) and ``--assign av``. The real-clip rows
also give the time the talker's check (``--assign auto``) took, what it decided, what it
takes when every measure is needed (a mixture of two talkers), and the real-time factor
with ``--assign av`` in the same run.
``--shifts N``: the enhancer runs its models N times on shifted input (``avse enhance --shifts N``).
Writes bench/results/NAME.json (default enhance.json).

    python bench/bench_enhance.py [--model av] [--runs 3] [--long] [--shifts N] [--name enhance]

A shipped model that is not there yet is replaced by an untrained model of
its recipe (configs/pretrained/NAME.yaml): speed does not depend on the weights.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy and torch are imported

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from avse.config import DEFAULT_SHIFTS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GRID = sorted((REPO.parent / "shared" / "data" / "real" / "grid").glob("*.mpg"))
RECIPES = {"av": "av.yaml", "av-causal": "av_causal.yaml", "audio": "audio.yaml"}


def one_core() -> None:
    """Pin this process (torch, MediaPipe, OpenCV) to one CPU core."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})


def make_enhancer(model: str, chunk_seconds: float = 10.0, shifts: int = 1):
    """An Enhancer on ``model`` (name or path), its models run ``shifts`` times; an untrained model of the recipe when a
    shipped file is missing."""
    import yaml

    from avse.api import Enhancer
    from avse.errors import ConfigError
    from avse.inference import InferenceConfig
    from avse.models import build_model

    cfg = InferenceConfig(chunk_seconds=chunk_seconds)
    try:
        return Enhancer.from_pretrained(model, fallback=None, config=cfg, shifts=shifts), str(model)
    except ConfigError:
        if model not in RECIPES:
            raise
        recipe = yaml.safe_load((REPO / "configs" / "pretrained" / RECIPES[model]).read_text())
        net = build_model(recipe["model"], recipe.get("model_config", {}))
        return Enhancer(net, config=cfg, shifts=shifts), f"untrained {recipe['model']} of configs/pretrained/{RECIPES[model]}"


def timed(fn, runs: int) -> tuple[float, float]:
    """(first call, best of the next ``runs``) wall seconds of ``fn()``."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return first, best


def rtf_on(enhancer, video: Path, runs: int) -> dict:
    """Real-time factors on one video: front end included and excluded (its features precomputed)."""
    from avse.video.frontend import process
    from avse.video.shift import video_audio

    audio = video_audio(video)
    seconds = len(audio) / 16000
    front = process(video, audio=audio)
    first_fe, with_fe = timed(lambda: enhancer.enhance(audio, 16000, video=video), runs)
    mode = enhancer.last_info["mode"]
    frontend_s = enhancer.last_info["seconds_frontend"]
    talker = enhancer.last_info.get("talker", {})
    full = full_check_seconds(enhancer, audio, video) if enhancer.audio_visual else None
    assign = enhancer.assign
    enhancer.assign = "av"
    try:
        _, with_fe_av = timed(lambda: enhancer.enhance(audio, 16000, video=video), runs)
    finally:
        enhancer.assign = assign
    _, without_fe = timed(lambda: enhancer.enhance(audio, 16000, video=front.features), runs)
    return {
        "clip": video.name,
        "seconds": round(seconds, 2),
        "mode": mode,
        "rtf_with_frontend": round(with_fe / seconds, 4),
        "rtf_with_frontend_first_call": round(first_fe / seconds, 4),
        "rtf_frontend_only": round(frontend_s / seconds, 4),
        "rtf_with_frontend_assign_av": round(with_fe_av / seconds, 4),
        "rtf_talker": round(talker["seconds"] / seconds, 4) if "seconds" in talker else None,
        "talker_used": talker.get("used"),
        "talker_why": talker.get("why"),
        "rtf_talker_full": None if full is None else round(full / seconds, 4),
        "rtf_without_frontend": round(without_fe / seconds, 4),
    }


def full_check_seconds(enhancer, audio: np.ndarray, video: Path) -> float | None:
    """Seconds of the talker's check (``--assign auto``) when every measure is taken (the lips with both outputs and
    with the input, the other output's voicing, the overlapped speech detector) and the output the lips follow is
    taken (with shifts, the blind model's further runs), as on a mixture of two talkers, whatever this clip holds."""
    import avse.talking.expert as expert

    real = expert.talker_output

    def every_measure(levels_db, lse_outputs, voiced, lse_input, overlap, min_overlap):
        lse = lse_outputs()
        voiced(1 - int(np.argmax(lse)))
        lse_input()
        overlap()
        return int(np.argmax(lse)), "every measure taken"

    expert.talker_output = every_measure
    try:
        enhancer.enhance(audio, 16000, video=video)  # the first call also loads the sync expert
        enhancer.enhance(audio, 16000, video=video)
    finally:
        expert.talker_output = real
    return enhancer.last_info.get("talker", {}).get("seconds")


def tiled_video(clip: Path, seconds: float, out: Path) -> Path:
    """A video of ``clip`` repeated (frames and audio) to about ``seconds``."""
    from avse.video.io import read_video, write_video
    from avse.video.shift import video_audio

    v = read_video(clip, with_audio=False)
    audio = video_audio(clip)
    reps = int(np.ceil(seconds / (len(v.frames) / 25)))
    n = int(round(seconds * 25))
    frames = np.concatenate([v.frames] * reps)[:n]
    frame_audio = np.concatenate([audio[: len(v.frames) * 640]] * reps)[: n * 640]
    write_video(out, frames, audio=frame_audio, preset="ultrafast", crf=23)
    return out


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (VmHWM: unlike ru_maxrss it does not inherit the parent's peak across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(model: str, seconds: float, chunk: float, shifts: int = 1) -> None:
    """(subprocess) Enhance ``seconds`` of audio with lip features; print the peak RSS before and after, in MiB."""
    one_core()
    enhancer, _ = make_enhancer(model, chunk, shifts)
    rng = np.random.default_rng(0)
    n = int(seconds * 16000)
    audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
    feats = rng.standard_normal((-(-n // 640), 82)).astype(np.float32)
    before = peak_rss_mib()
    t0 = time.perf_counter()
    enhancer.enhance(audio, 16000, video=feats if enhancer.audio_visual else None)
    wall = time.perf_counter() - t0
    after = peak_rss_mib()
    print(json.dumps({"seconds": seconds, "chunk_seconds": chunk, "rss_before_mib": round(before, 1),
                      "peak_rss_mib": round(after, 1), "chunks": enhancer.last_info["chunks"], "rtf": round(wall / seconds, 4)}))


def measure_rss(model: str, seconds: float, chunk: float, shifts: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--model", model, "--rss-child", str(seconds), str(chunk), "--shifts", str(shifts)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def long_video_memory(minutes: float, model: str, shifts: int = 1) -> dict:
    """``avse enhance`` on a ``minutes``-long looped GRID clip, in child processes: peak RSS and seconds, with
    ``--assign auto`` and ``--assign av``."""
    from bench_frontend import write_long_video

    from avse.audio.io import save_wav
    from avse.video.shift import video_audio

    out: dict = {"minutes": minutes}
    with tempfile.TemporaryDirectory() as tmp:
        video, wav = Path(tmp) / "long.mp4", Path(tmp) / "long.wav"
        n = write_long_video(GRID[0], video, minutes)
        audio = video_audio(GRID[0])
        clip = audio[: len(audio) // 640 * 640]
        save_wav(wav, np.resize(clip, n * 640), 16000)
        for assign in ("auto", "av"):
            cmd = [sys.executable, __file__, "--model", model, "--long-child", str(video), str(wav), assign,
                   "--shifts", str(shifts)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(res.stderr)
            out[assign] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def long_child(model: str, video: str, wav: str, assign: str, shifts: int = 1) -> None:
    """(subprocess) ``avse enhance`` of ``video`` with ``wav`` as its sound on one core; print peak RSS and timings."""
    one_core()
    from avse.api import enhance_file

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        info = enhance_file(video, Path(tmp) / "out.wav", audio=wav, model=model, assign=assign, shifts=shifts)
    talker = info.get("talker", {})
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
                      "talker_seconds": talker.get("seconds"), "talker_used": talker.get("used")}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="av", help="a shipped model name or a checkpoint path (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="timed runs after a warm-up call (best is kept)")
    p.add_argument("--long", action="store_true", help="also avse enhance on a 10-minute video: peak memory and time")
    p.add_argument("--shifts", type=int, default=DEFAULT_SHIFTS, metavar="N",
                   help="run the enhancer's models N times on shifted input and average (avse enhance --shifts)")
    p.add_argument("--name", default="enhance", help="results name: bench/results/NAME.json")
    p.add_argument("--rss-child", nargs=2, type=float, metavar=("SECONDS", "CHUNK"), help=argparse.SUPPRESS)
    p.add_argument("--long-child", nargs=3, metavar=("VIDEO", "WAV", "ASSIGN"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        rss_child(args.model, *args.rss_child, shifts=args.shifts)
        return
    if args.long_child:
        long_child(args.model, *args.long_child, shifts=args.shifts)
        return
    one_core()
    enhancer, described = make_enhancer(args.model, shifts=args.shifts)
    result: dict = {"model": described, "shifts": args.shifts, "threads": 1, "goals": {"rtf_with_frontend": 0.3, "rtf_without_frontend": 0.1}}
    memory = {  # first, in fresh processes
        "chunked_10min": measure_rss(args.model, 600.0, 10.0, args.shifts),
        "chunked_60s": measure_rss(args.model, 60.0, 10.0, args.shifts),
        "one_chunk_60s": measure_rss(args.model, 60.0, 60.0, args.shifts),
    }
    if GRID:
        result["grid"] = [rtf_on(enhancer, clip, args.runs) for clip in GRID]
        for row in result["grid"]:
            print(f"{row['clip']}: RTF {row['rtf_with_frontend']:.3f} with the front end "
                  f"({row['rtf_frontend_only']:.3f} of it the front end, {row['rtf_talker']} the talker's check: "
                  f"{row['talker_why']}; every measure taken {row['rtf_talker_full']}; --assign av "
                  f"{row['rtf_with_frontend_assign_av']:.3f}), {row['rtf_without_frontend']:.3f} without")
        with tempfile.TemporaryDirectory() as tmp:
            long = tiled_video(GRID[0], 60.0, Path(tmp) / "tiled60.mp4")
            result["tiled_60s"] = rtf_on(enhancer, long, max(1, args.runs - 2))
            row = result["tiled_60s"]
            print(f"60 s tiled clip: RTF {row['rtf_with_frontend']:.3f} with the front end, {row['rtf_without_frontend']:.3f} without")
    else:
        print(f"no real GRID clips in {REPO.parent / 'shared' / 'data' / 'real' / 'grid'}: real-clip timings skipped")
        rng = np.random.default_rng(0)
        audio = (0.1 * rng.standard_normal(60 * 16000)).astype(np.float32)
        feats = rng.standard_normal((1500, 82)).astype(np.float32)
        _, best = timed(lambda: enhancer.enhance(audio, 16000, video=feats), max(1, args.runs - 2))
        result["synthetic_60s"] = {"rtf_without_frontend": round(best / 60, 4)}
    result["memory"] = memory
    for name, row in result["memory"].items():
        print(f"{name}: peak RSS {row['peak_rss_mib']:.0f} MiB (process before enhancing: {row['rss_before_mib']:.0f} MiB)")
    if args.long and GRID:
        result["long_video"] = long_video_memory(10.0, args.model, args.shifts)
        for assign in ("auto", "av"):
            row = result["long_video"][assign]
            print(f"avse enhance, 10-minute video, --assign {assign}: peak RSS {row['peak_rss_mib']:.0f} MiB, "
                  f"{row['seconds']:.0f} s (the talker's check {row['talker_seconds']} s)")
    save(args.name, result)


if __name__ == "__main__":
    main()
