"""Audio/video offset estimation: accuracy on real (GRID) and synthetic clips, and what the confidence tells.

For every clip: the offset found as is (goal 0 +-40 ms) and after shifting the decoded
audio by -200, -120, -40, +40, +120, +200 ms (goal: that shift +-40 ms). Then the
confidence of true pairings against wrong ones (the audio of one clip with the lips of
another), per clip and for longer sequences made by chaining clips, which is what the
``reliable`` threshold (RELIABLE_SCALE / sqrt(seconds)) rests on. Then a write_shifted
round trip (the corrected file reads the shift back). Prints everything, writes
bench/results/sync.json.

    python bench/bench_sync.py [--root CORPUS] [--grid FOLDER]

Without --root a "demo" corpus is made in a temp folder (about 15 s). GRID clips
(default ../shared/data/real/grid) are skipped when absent; their landmarks come from
the front end (avse.video.track.extract_landmarks), or from a plain MediaPipe loop when
that is not importable.
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
from avse.audio.io import load_audio  # noqa: E402
from avse.video.frontend import sync_video  # noqa: E402
from avse.video.landmarks import LIP_INDEX, mouth_opening, read_landmarks  # noqa: E402
from avse.video.shift import timeline_audio, write_shifted  # noqa: E402
from avse.video.sync import (  # noqa: E402
    RELIABLE_SCALE,
    estimate_offset,
    reliability_threshold,
    shift_audio,
)

SHIFTS_MS = (-200, -120, -40, 40, 120, 200)
TOLERANCE_MS = 40.0
GRID = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "grid"
HARD_CASE = Path("/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4")


def mediapipe_lips(video: Path) -> dict[str, np.ndarray]:
    """Lips [N, 40, 2] of the (only) face, straight from MediaPipe's face mesh; NaN where it finds none."""
    from mediapipe.python.solutions import face_mesh

    from avse.video.io import iter_grid_frames

    lips = []
    with face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True) as mesh:
        for rgb in iter_grid_frames(video):
            res = mesh.process(rgb)
            h, w = rgb.shape[:2]
            if res.multi_face_landmarks:
                pts = np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark], np.float32)
                lips.append(pts[LIP_INDEX])
            else:
                lips.append(np.full((40, 2), np.nan, np.float32))
    return {"lips": np.stack(lips)}


def real_landmarks(video: Path, audio: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    """The front end's landmarks when it is there, else a MediaPipe loop -> (landmarks, which)."""
    try:
        from avse.video.track import extract_landmarks
    except ImportError:
        return mediapipe_lips(video), "mediapipe loop"
    lm, _ = extract_landmarks(video, audio=audio)
    return lm, "avse.video.track.extract_landmarks"


def accuracy(name: str, clips: list[dict]) -> dict:
    """Offsets as is and after each shift; prints a row per clip -> summary dict."""
    print(f"\n== {name}: offset error (ms) at shifts {('0',) + SHIFTS_MS}")
    rows, errors = {}, []
    for c in clips:
        errs = []
        for s in (0,) + SHIFTS_MS:
            est = estimate_offset(c["lips"], shift_audio(c["audio"], s), flags=c.get("flags"))
            errs.append(round(est.offset_ms - s, 1))
        rows[c["id"]] = errs
        errors += errs
        flag = "" if max(abs(e) for e in errs) <= TOLERANCE_MS else "   <-- beyond +-40 ms"
        print(f"  {c['id']:<16} {' '.join(f'{e:+7.1f}' for e in errs)}{flag}")
    errors_a = np.abs(np.array(errors))
    at_zero = np.array([r[0] for r in rows.values()])
    out = {
        "clips": len(clips),
        "share_within_40ms": round(float(np.mean(errors_a <= TOLERANCE_MS)), 4),
        "share_within_40ms_unshifted": round(float(np.mean(np.abs(at_zero) <= TOLERANCE_MS)), 4),
        "max_abs_error_ms": round(float(errors_a.max()), 1),
        "mean_error_ms": round(float(np.mean(errors)), 1),
        "median_abs_error_ms": round(float(np.median(errors_a)), 1),
        "per_clip_errors_ms": rows,
    }
    print(
        f"  within +-40 ms: {out['share_within_40ms']:.1%} of {len(errors)}"
        f" (unshifted: {out['share_within_40ms_unshifted']:.1%}),"
        f" max |error| {out['max_abs_error_ms']} ms, mean error {out['mean_error_ms']:+} ms"
    )
    return out


ABLATIONS = {
    "default: lip_drop, 800-3000 Hz, level + velocity": ({}, False),
    "mouth opening [N] instead of lip_drop": ({}, True),
    "level curve only": ({"level_weight": 1.0}, False),
    "velocity curve only": ({"level_weight": 0.0}, False),
    "full-band energy (0-8 kHz)": ({"band": (0.0, 8001.0)}, False),
}


def ablation(sets: dict[str, list[dict]]) -> dict:
    """Share of offsets within +-40 ms (all shifts) for the design choices, per data set."""
    print("\n== which lip signal / audio band / curve: share within +-40 ms over all shifts")
    out: dict = {}
    for name, (kwargs, opening_only) in ABLATIONS.items():
        row = {}
        for set_name, clips in sets.items():
            ok = []
            for c in clips:
                lips = mouth_opening(c["lips"]) if opening_only else c["lips"]
                for s in (0,) + SHIFTS_MS:
                    est = estimate_offset(lips, shift_audio(c["audio"], s), flags=c.get("flags"), **kwargs)
                    ok.append(abs(est.offset_ms - s) <= TOLERANCE_MS)
            row[set_name] = round(float(np.mean(ok)), 4)
        out[name] = row
        print(f"  {name:<50} " + "  ".join(f"{k} {v:6.1%}" for k, v in row.items()))
    return out


def _quantiles(x: list[float]) -> dict:
    x = np.asarray(x)
    values = np.percentile(x, [0, 5, 50, 95, 99, 100])
    return {k: round(float(v), 3) for k, v in zip(("min", "p5", "median", "p95", "p99", "max"), values)}


def pairings(name: str, clips: list[dict]) -> dict:
    """Confidence of the true pairing of every clip vs every wrong pairing (audio of i, lips of j != i)."""
    true, wrong, wrong_scaled, true_rel, wrong_rel = [], [], [], [], []
    for i, a in enumerate(clips):
        for j, b in enumerate(clips):
            est = estimate_offset(b["lips"], a["audio"], flags=b.get("flags"))
            if i == j:
                true.append(est.confidence)
                true_rel.append(est.reliable)
            else:
                wrong.append(est.confidence)
                wrong_scaled.append(est.confidence * np.sqrt(est.duration_s))
                wrong_rel.append(est.reliable)
    out = {
        "true": _quantiles(true),
        "wrong": _quantiles(wrong),
        "wrong_times_sqrt_seconds": _quantiles(wrong_scaled),
        "n_true": len(true),
        "n_wrong": len(wrong),
        "share_true_reliable": round(float(np.mean(true_rel)), 4),
        "share_wrong_reliable": round(float(np.mean(wrong_rel)), 4),
    }
    print(f"\n== {name}: confidence, true pairings ({len(true)}) vs wrong ones ({len(wrong)})")
    print(f"  true : {out['true']}")
    print(f"  wrong: {out['wrong']}")
    print(f"  wrong x sqrt(seconds): {out['wrong_times_sqrt_seconds']}  (RELIABLE_SCALE = {RELIABLE_SCALE})")
    print(f"  flagged reliable: true {out['share_true_reliable']:.1%}, wrong {out['share_wrong_reliable']:.1%}")
    return out


def _chain(clips: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Lips and audio of several clips one after the other (each cut/padded to whole frames)."""
    lips, audio = [], []
    for c in clips:
        n = int(np.ceil(len(c["audio"]) / SAMPLES_PER_FRAME))
        lp = c["lips"][:n]
        if len(lp) < n:
            lp = np.concatenate([lp, np.repeat(lp[-1:], n - len(lp), 0)])
        lips.append(lp)
        audio.append(np.pad(c["audio"], (0, n * SAMPLES_PER_FRAME - len(c["audio"]))))
    return np.concatenate(lips), np.concatenate(audio)


def sequences(clips: list[dict], counts=(1, 2, 4, 6), trials: int = 60, seed: int = 0) -> dict:
    """Chains of k clips: true vs wrong pairings (no clip shared) by length -> the 1/sqrt(seconds) law."""
    rng = np.random.default_rng(seed)
    print("\n== chained synthetic clips: confidence by length (wrong pairings share no clip)")
    out = {}
    for k in counts:
        if 2 * k > len(clips):
            continue
        true, wrong, secs, errs, true_rel, wrong_rel = [], [], [], [], [], []
        for _ in range(trials):
            pick = rng.permutation(len(clips))
            lips, audio = _chain([clips[i] for i in pick[:k]])
            lips2, _ = _chain([clips[i] for i in pick[k : 2 * k]])
            est = estimate_offset(lips, audio)
            bad = estimate_offset(lips2[: len(lips)], audio[: len(lips2) * SAMPLES_PER_FRAME])
            true.append(est.confidence)
            wrong.append(bad.confidence)
            secs.append(est.duration_s)
            errs.append(abs(est.offset_ms))
            true_rel.append(est.reliable)
            wrong_rel.append(bad.reliable)
        row = {
            "seconds": round(float(np.mean(secs)), 1),
            "threshold": round(reliability_threshold(float(np.mean(secs))), 3),
            "true": _quantiles(true),
            "wrong": _quantiles(wrong),
            "share_true_reliable": round(float(np.mean(true_rel)), 3),
            "share_wrong_reliable": round(float(np.mean(wrong_rel)), 3),
            "share_true_within_40ms": round(float(np.mean(np.array(errs) <= TOLERANCE_MS)), 3),
        }
        out[str(k)] = row
        print(
            f"  {k} clip(s), {row['seconds']:5.1f} s: true median {row['true']['median']:.2f} (p5 {row['true']['p5']:.2f}),"
            f" wrong p95 {row['wrong']['p95']:.2f} p99 {row['wrong']['p99']:.2f}; threshold {row['threshold']:.2f};"
            f" reliable: true {row['share_true_reliable']:.0%}, wrong {row['share_wrong_reliable']:.0%}"
        )
    return out


def round_trip(clips: list[dict], tmp: Path, shift_ms: float = 120.0) -> dict:
    """write_shifted(video, -shift) delays the audio by shift: sync_video on the copy should read the shift more."""
    print(f"\n== write_shifted round trip: audio delayed by {shift_ms:.0f} ms, then measured from the file")
    rows = {}
    for c in clips:
        if "video" not in c:
            continue
        before = sync_video(c["video"], landmarks=c).offset_ms
        out = tmp / f"{c['id'].replace('/', '_')}_shifted.mp4"
        write_shifted(c["video"], -shift_ms, out)
        after = sync_video(out, landmarks=c).offset_ms
        rows[c["id"]] = {"before_ms": round(before, 1), "after_ms": round(after, 1), "read_ms": round(after - before, 1)}
        print(f"  {c['id']:<16} before {before:+7.1f}  after {after:+7.1f}  read shift {after - before:+7.1f}")
    return rows


def load_corpus(root: Path, split: str) -> list[dict]:
    clips = []
    for wav in sorted((root / split / "targets").glob("*.wav")):
        lm = read_landmarks(root / split / "targets_landmarks" / f"{wav.stem}.npz")
        audio, _ = load_audio(wav)
        video = root / split / "targets_video" / f"{wav.stem}.mp4"
        clips.append({"id": f"{split}/{wav.stem}", "lips": lm["lips"], "audio": audio, "video": video})
    return clips


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="an existing corpus; default: make a 'demo' one in a temp folder")
    p.add_argument("--grid", default=str(GRID), help="folder of GRID *.mpg clips (skipped when absent)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    result: dict = {"shifts_ms": list(SHIFTS_MS), "tolerance_ms": TOLERANCE_MS, "reliable_scale": RELIABLE_SCALE}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        root = Path(args.root) if args.root else tmp / "corpus"
        if not args.root:
            from avse.config import synth_config
            from avse.data.synth import synthesize_corpus

            synthesize_corpus(root, synth_config("demo"), jobs=args.jobs, progress=False)
        dev = load_corpus(root, "dev")
        every = dev + load_corpus(root, "train") + load_corpus(root, "test")

        grid: list[dict] = []
        grid_files = sorted(Path(args.grid).glob("*.mpg")) if Path(args.grid).is_dir() else []
        t0 = time.perf_counter()
        for f in grid_files:
            audio = timeline_audio(f)
            lm, how = real_landmarks(f, audio)
            grid.append({"id": f"grid/{f.stem}", "lips": lm["lips"], "flags": lm.get("flags"), "audio": audio, "video": f})
            result["grid_landmarks"] = how
        if grid:
            print(f"GRID landmarks: {result['grid_landmarks']} ({time.perf_counter() - t0:.1f} s for {len(grid)} clips)")
            result["grid"] = accuracy("GRID (real)", grid)
        else:
            print(f"no GRID clips under {args.grid}: skipped")
        result["synthetic_dev"] = accuracy("synthetic dev", dev)
        result["ablation"] = ablation({"GRID": grid, "synthetic": every} if grid else {"synthetic": every})

        if grid:
            result["grid_pairings"] = pairings("GRID", grid)
        result["synthetic_pairings"] = pairings("synthetic, all splits", every)
        result["synthetic_sequences"] = sequences(every)
        result["round_trip"] = round_trip(grid + dev, tmp)

        if HARD_CASE.is_file():
            audio = timeline_audio(HARD_CASE)
            lm, how = real_landmarks(HARD_CASE, audio)
            est = estimate_offset(lm["lips"], audio, flags=lm.get("flags"))
            moved = [estimate_offset(lm["lips"], shift_audio(audio, s), flags=lm.get("flags")).offset_ms for s in SHIFTS_MS]
            result["movie_hello"] = {
                "offset_ms": round(est.offset_ms, 1),
                "confidence": round(est.confidence, 3),
                "threshold": round(est.threshold, 3),
                "reliable": est.reliable,
                "shift_errors_ms": [round(m - est.offset_ms - s, 1) for m, s in zip(moved, SHIFTS_MS)],
            }
            print(f"\n== {HARD_CASE.name} (true offset unknown): {result['movie_hello']}")

        lips, audio = dev[0]["lips"], dev[0]["audio"]
        reps = 200
        t0 = time.perf_counter()
        for _ in range(reps):
            estimate_offset(lips, audio)
        result["ms_per_estimate"] = round((time.perf_counter() - t0) / reps * 1000, 2)
        result["ms_per_estimate_clip_seconds"] = round(len(audio) / 16000, 2)
        long_lips, long_audio = _chain(every * 8)
        t0 = time.perf_counter()
        estimate_offset(long_lips, long_audio)
        long = {"clip_seconds": round(len(long_audio) / 16000, 1), "seconds": round(time.perf_counter() - t0, 3)}
        result["seconds_per_estimate_long"] = long
        clip_s = result["ms_per_estimate_clip_seconds"]
        print(f"\nspeed: {result['ms_per_estimate']} ms per estimate ({clip_s} s clip); {long}")
    save("sync", result)


if __name__ == "__main__":
    main()
