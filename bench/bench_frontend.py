"""Video front end on real clips: face coverage, crop stability, speed on one core, memory on a long video.

For each GRID clip (../shared/data/real/grid) and the Debian screencast with a
small webcam face (forensics-samples-files movie-hello.mp4), runs
decode -> landmarks -> mouth crops -> lip features pinned to one CPU core and
prints: frames with a detected face, the crop-centroid std (px; goal < 2),
frames per second end to end (goal >= 100 at GRID size) and the share of the
time spent in the face mesh. Writes contact sheets of the crops and a plot of
lip-feature distributions, synthetic versus real, to bench/results/.
``--long`` also builds a 10-minute video and reports the peak memory of the
front end on it (goal < 1 GB).

    python bench/bench_frontend.py [--long] [--synth-root CORPUS]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GRID = sorted(glob.glob(str(REPO.parent / "shared" / "data" / "real" / "grid" / "*.mpg")))
MOVIE = Path("/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4")


def one_core() -> None:
    """Pin this process (and MediaPipe's and OpenCV's threads) to CPU 0."""
    import cv2

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    cv2.setNumThreads(1)


def run_clip(path: Path, sheet: Path) -> dict:
    """Front end on one clip, timed by stage."""
    from avse.plots import contact_sheet
    from avse.video.io import iter_grid_frames
    from avse.video.lipfeat import lip_features
    from avse.video.roi import crop_centroid_px, mouth_crops
    from avse.video.track import extract_landmarks

    t0 = time.perf_counter()
    n_dec = sum(1 for _ in iter_grid_frames(path))
    t_decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    lm, rep = extract_landmarks(path)
    t_land = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = len(lm["lips"])
    crops = mouth_crops(iter_grid_frames(path, max_frames=n), lm)
    feats = lip_features(lm)
    t_crop = time.perf_counter() - t0
    contact_sheet(sheet, crops, every=max(1, n // 60), cols=15)
    cen = crop_centroid_px(lm)
    total = t_land + t_crop
    return {
        "clip": path.name,
        "frames": n,
        "frames_decoded_alone": n_dec,
        "detected": int(np.sum(lm["flags"] == 0)),
        "interpolated": int(np.sum(lm["flags"] == 1)),
        "reacquired": rep.get("reacquired"),
        "tracks": rep.get("n_tracks"),
        "centroid_std_px": [round(float(v), 3) for v in cen.std(0)],
        "fps_end_to_end": round(n / total, 1),
        "mesh_share": round(max(0.0, t_land - t_decode) / total, 3),
        "seconds": {"decode": round(t_decode, 3), "landmarks": round(t_land, 3), "crops_features": round(t_crop, 3)},
        "features": feats,
    }


def write_long_video(src: Path, dst: Path, minutes: float) -> int:
    """Loop ``src`` into a ``minutes``-long 25 fps H.264 file, streaming (never all frames in memory)."""
    import av

    from avse.video.io import read_video

    clip = read_video(src)
    n = int(minutes * 60 * 25)
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "23"})
        h, w = clip.frames.shape[1:3]
        vs.width, vs.height, vs.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        for i in range(n):
            f = clip.frames[i % len(clip.frames), : h - h % 2, : w - w % 2]
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    return n


def peak_memory(video: Path, out_dir: Path) -> dict:
    """Run ``avse frontend`` on ``video`` in a child process; its peak resident memory."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "avse.cli", "frontend", str(video), "--out", str(out_dir)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"peak_rss_mb": round(peak_kb / 1024, 1), "seconds": round(time.perf_counter() - t0, 1)}


def feature_plot(real: np.ndarray, synth: np.ndarray, path: Path) -> None:
    """Histograms of mouth opening and width, and the mean lip shapes, synthetic vs real."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avse.video.lipfeat import FEATURE_NAMES

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    for ax, name in zip(axes[:2], ("opening", "width")):
        i = FEATURE_NAMES.index(name)
        lo, hi = np.percentile(np.concatenate([real[:, i], synth[:, i]]), [0.5, 99.5])
        ax.hist(real[:, i], bins=40, range=(lo, hi), alpha=0.6, density=True, label=f"real (GRID, {len(real)} frames)")
        ax.hist(synth[:, i], bins=40, range=(lo, hi), alpha=0.6, density=True, label=f"synthetic ({len(synth)} frames)")
        ax.set_xlabel(f"{name} (eye distances)" if name == "width" else name)
        ax.legend(fontsize=8)
    ax = axes[2]
    for data, label in ((real, "real"), (synth, "synthetic")):
        pts = np.nanmean(data[:, :80], 0).reshape(40, 2)
        # each contour: corner -> lower lip -> other corner (11 points), then the upper lip back
        for off, style, part in ((0, "-o", "outer"), (20, "--", "inner")):
            c = pts[off : off + 20]
            ax.plot(*np.vstack([c[:11], c[11:][::-1], c[:1]]).T, style, ms=2, label=f"{label} {part}")
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_title("mean normalised lip shape")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", action="store_true", help="also measure peak memory on a 10-minute video")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--synth-root", help="a synthetic corpus for the feature comparison (default: make the demo one)")
    args = p.parse_args()
    one_core()
    RESULTS.mkdir(parents=True, exist_ok=True)
    clips = [Path(g) for g in GRID] + ([MOVIE] if MOVIE.exists() else [])
    if not clips:
        raise SystemExit("no real clips found (../shared/data/real/grid, forensics-samples-files)")
    from avse.video.track import extract_landmarks

    extract_landmarks(clips[0])  # warm-up: MediaPipe's one-time start (~0.5 s) is not per-frame cost
    rows = [run_clip(c, RESULTS / f"crops_{c.stem}.png") for c in clips]
    for r in rows:
        print(f"{r['clip']:>18}: {r['detected']}/{r['frames']} detected, {r['interpolated']} interpolated, "
              f"centroid std {r['centroid_std_px']} px, {r['fps_end_to_end']} fps, mesh {100 * r['mesh_share']:.0f}%")
    real = np.concatenate([r.pop("features") for r in rows if r["clip"].endswith(".mpg")] or [np.zeros((0, 82))])
    from avse.config import synth_config
    from avse.data.synth import synthesize_corpus
    from avse.video.landmarks import read_landmarks
    from avse.video.lipfeat import lip_features

    for r in rows:
        r.pop("features", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.synth_root) if args.synth_root else Path(tmp) / "synth"
        if not args.synth_root:
            synthesize_corpus(root, synth_config("demo"), jobs=1, progress=False)
        synth = np.concatenate([lip_features(read_landmarks(f)) for f in sorted(root.glob("*/targets_landmarks/*.npz"))])
        if len(real):
            feature_plot(real, synth, RESULTS / "lip_features_synth_vs_real.png")
        result = {"clips": rows}
        from avse.video.lipfeat import FEATURE_NAMES

        result["features_synth_vs_real"] = {
            name: {"real": [round(float(np.nanmean(real[:, i])), 3), round(float(np.nanstd(real[:, i])), 3)],
                   "synthetic": [round(float(np.nanmean(synth[:, i])), 3), round(float(np.nanstd(synth[:, i])), 3)]}
            for name, i in ((n, FEATURE_NAMES.index(n)) for n in ("opening", "width", "lip61_x", "lip0_y", "lip17_y"))
        } if len(real) else {}
        if args.long and GRID:
            video = Path(tmp) / "long.mp4"
            n = write_long_video(Path(GRID[0]), video, args.minutes)
            result["long_video"] = {"minutes": args.minutes, "frames": n, **peak_memory(video, Path(tmp) / "long_out")}
    grid_rows = [r for r in rows if r["clip"].endswith(".mpg")]
    result["summary"] = {
        "grid_fps_mean": round(float(np.mean([r["fps_end_to_end"] for r in grid_rows])), 1) if grid_rows else None,
        "grid_max_centroid_std_px": max(max(r["centroid_std_px"]) for r in grid_rows) if grid_rows else None,
        "goals": {"grid_fps": 100, "centroid_std_px": 2.0, "long_video_peak_mb": 1024},
    }
    save("frontend", json.loads(json.dumps(result)))


if __name__ == "__main__":
    main()
