"""Cutting the lip-sync expert's mouth frames from a video: from the decoded luma against from RGB face crops.

For each real dev clip (../shared/data/real: grid/*.mpg, av/*/*.mp4; landmarks from the
front end, cached in ``--landmarks-cache`` by ``bench_sync_expert.clip_landmarks``, as bench_real.py
and bench_assign.py cache them),
on one CPU core, the best of ``--runs`` of

- ``video_mouths``: the clip decoded to luma, only the crops' lower half warped (what
  ``avse enhance``'s talker check and ``avse separate``'s assignment read), and
- the RGB way it replaced: every frame decoded to RGB, the whole 96x96 crop warped
  (``face_crops``), then ``mouth_frames``,

in ms per frame, and how far apart the two ways' mouths are (mean absolute difference, in
8-bit levels) and the expert's whole-clip LSE-C of the face with its own speech and with
another clip's (largest difference of the two ways; whether the higher of the two is the same).
Writes bench/results/mouths.json.

    python bench/bench_mouths.py [--real ../shared/data/real] [--runs 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy and torch are imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from bench_sync_expert import clip_landmarks  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def best_of(fn, runs: int) -> tuple[float, object]:
    """The fastest of ``runs`` calls of ``fn`` (seconds) and its result."""
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--landmarks-cache", type=Path, default=Path(tempfile.gettempdir()) / "avse_bench_sync_expert")
    args = ap.parse_args()
    videos = sorted((args.real / "grid").glob("*.mpg")) + sorted((args.real / "av").glob("*/*.mp4"))
    if not videos:
        raise SystemExit(f"no real clips in {args.real} (grid/, av/)")

    import cv2
    import torch

    from avse.talking.expert import SyncExpert, face_sync, mouth_frames, video_mouths
    from avse.video.io import iter_grid_frames
    from avse.video.roi import face_crops, face_matrices
    from avse.video.shift import timeline_audio

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    expert = SyncExpert.from_pretrained()
    clips = []
    for v in videos:
        audio = timeline_audio(v)
        clips.append((v, clip_landmarks(v, audio, args.landmarks_cache), audio))
    rows = []
    for i, (video, lm, audio) in enumerate(clips):
        def rgb_way(video: Path = video, lm: dict[str, np.ndarray] = lm) -> torch.Tensor:
            return mouth_frames(face_crops(iter_grid_frames(video, max_frames=len(lm["lips"])), face_matrices(lm)))

        t_luma, luma = best_of(lambda video=video, lm=lm: video_mouths(video, lm), args.runs)
        t_rgb, rgb = best_of(rgb_way, args.runs)
        n = min(len(luma), len(rgb))
        other = clips[(i + 1) % len(clips)][2]
        t = min(len(audio), len(other), n * 640)
        sounds = np.stack([audio[:t], other[:t]])
        lse_luma, lse_rgb = face_sync(luma[:n], sounds, expert), face_sync(rgb[:n], sounds, expert)
        h, w = next(iter(iter_grid_frames(video, max_frames=1, gray=True))).shape
        rows.append({"clip": f"{video.parent.name}/{video.stem}", "frames": n, "size": f"{w}x{h}",
                     "ms_per_frame_luma": round(1000 * t_luma / n, 3), "ms_per_frame_rgb": round(1000 * t_rgb / n, 3),
                     "mean_abs_levels": round(float((luma[:n].float() - rgb[:n]).abs().mean()) * 255, 3),
                     "lse_c_luma": np.round(lse_luma, 4).tolist(), "lse_c_rgb": np.round(lse_rgb, 4).tolist(),
                     "same_higher": bool(np.argmax(lse_luma) == np.argmax(lse_rgb))})
        r = rows[-1]
        print(f"{r['clip']} ({r['size']}, {n} frames): luma {r['ms_per_frame_luma']:.2f} ms/frame, "
              f"RGB {r['ms_per_frame_rgb']:.2f} ms/frame; mouths {r['mean_abs_levels']:.2f} levels apart; "
              f"LSE-C own / other {r['lse_c_luma']} against {r['lse_c_rgb']}", flush=True)
    luma_ms = np.array([r["ms_per_frame_luma"] for r in rows])
    rgb_ms = np.array([r["ms_per_frame_rgb"] for r in rows])
    dlse = max(float(np.max(np.abs(np.subtract(r["lse_c_luma"], r["lse_c_rgb"])))) for r in rows)
    summary = {"clips": len(rows), "ms_per_frame_luma_median": round(float(np.median(luma_ms)), 3),
               "ms_per_frame_rgb_median": round(float(np.median(rgb_ms)), 3),
               "speedup_median": round(float(np.median(rgb_ms / luma_ms)), 2),
               "max_abs_lse_c_difference": round(dlse, 5),
               "same_higher": sum(r["same_higher"] for r in rows)}
    print(f"median {summary['ms_per_frame_luma_median']:.2f} ms/frame from luma against "
          f"{summary['ms_per_frame_rgb_median']:.2f} from RGB crops ({summary['speedup_median']:.1f}x); LSE-C at most "
          f"{dlse:.4f} apart; the same sound scored higher on {summary['same_higher']} of {len(rows)} clips")
    save("mouths", {"runs": args.runs, "threads": 1, "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
