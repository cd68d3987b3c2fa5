"""Scene rendering throughput: a straightforward renderer versus ``render_scenes``.

Both render the same scenes with the same math (the AVSE renderer's, see
``avse.data.mixing``). The baseline (a) is written the plain way: one scene at
a time in one process, every file read whole each time, the speech-weighting
filter loaded per scene, ``np.convolve``, no caching. (b) is
``avse.data.render.render_scenes`` with ``--jobs`` workers. The script prints
scenes/s for both, the speedup, how many output files differ between the two,
and the SNR measured back from (b)'s files; it writes bench/results/render.json.
Each side runs ``--repeat`` times and the fastest run counts (the machine may be
shared). Both are timed with the target videos copied to _silent.mp4 and
without (audio only).

Without ``--root`` it builds a small corpus of random coloured-noise "speech"
(2-4 s targets, 4.5-8 s speech maskers, 30 s noise maskers, tiny target videos).

    python bench/bench_render.py [--scenes 200] [--jobs 2] [--root ROOT --dataset dev]
                                 [--speech-weight /path/speech_weight.mat] [--no-video]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME  # noqa: E402
from avse.data import render as rd  # noqa: E402
from avse.data import scenes as sc  # noqa: E402
from avse.data.metadata import load_scenes, scenes_dir, scenes_path  # noqa: E402
from avse.video.io import write_video  # noqa: E402

DEFAULT_WEIGHT = Path(__file__).resolve().parents[2] / "shared" / "avse" / "speech_weight.mat"


# ---------------------------------------------------------------------------
# A synthetic corpus
# ---------------------------------------------------------------------------


def _coloured(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    f[0] = f[1]
    x = np.fft.irfft(spec * f ** (-rng.uniform(0, 1.5) / 2), n)
    env = 0.3 + np.abs(np.sin(np.linspace(0, rng.uniform(3, 12), n)))  # syllable-ish envelope
    x = x * env
    return x / np.max(np.abs(x)) * rng.uniform(0.3, 0.9)


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (x * 32767).astype(np.int16), SAMPLE_RATE, subtype="PCM_16")


def _video(path: Path, n_frames: int) -> None:
    """A tiny 96x96 H.264 target video of ``n_frames`` frames (avse.video.io.write_video)."""
    frames = np.stack([np.full((96, 96, 3), (k * 7) % 255, np.uint8) for k in range(n_frames)])
    write_video(path, frames, preset="ultrafast")


def make_corpus(root: Path, n_targets: int, video: bool, seed: int = 0) -> None:
    """Write a random AVSE-layout corpus (train split) under ``root``."""
    rng = np.random.default_rng(seed)
    targets, maskers, noises = [], [], []
    for i in range(n_targets):
        n = int(rng.integers(2 * SAMPLE_RATE, 4 * SAMPLE_RATE))
        name = f"T{i:04d}"
        _write(root / "train" / "targets" / f"{name}.wav", _coloured(n, rng))
        if video:
            _video(root / "train" / "targets_video" / f"{name}.mp4", math.ceil(n / SAMPLES_PER_FRAME))
        targets.append({"wavfile": name, "dataset": "train", "nsamples": n, "speaker": f"spk{i % 10}"})
    for i in range(30):
        n = int(rng.integers(int(4.5 * SAMPLE_RATE), 8 * SAMPLE_RATE))
        name = f"M{i:04d}"
        _write(root / "train" / "interferers" / "speech" / f"{name}.wav", _coloured(n, rng))
        maskers.append({"wavfile": name, "dataset": "train", "nsamples": n, "speaker": f"spk{i % 12}"})
    for i in range(10):
        n = 30 * SAMPLE_RATE
        name = f"N{i:04d}"
        _write(root / "train" / "interferers" / "noise" / f"{name}.wav", _coloured(n, rng))
        noises.append({"ID": name, "class": f"c{i % 5}", "type": "noise", "dataset": "train", "nsamples": n})
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    for fname, obj in (
        ("target_speech_list.json", targets),
        ("masker_speech_list.json", maskers),
        ("masker_noise_list.json", noises),
    ):
        (meta / fname).write_text(json.dumps(obj, indent=2))


# ---------------------------------------------------------------------------
# (a) the straightforward renderer
# ---------------------------------------------------------------------------


def naive_render(root: Path, scene: dict, out_dir: Path, weight_mat: Path | None, video: bool) -> None:
    """One scene, the plain way: whole-file reads, np.convolve, filter loaded every time."""
    import scipy.io

    split = scene["dataset"]
    h = np.asarray(scipy.io.loadmat(str(weight_mat), squeeze_me=True)["filt"], float) if weight_mat else None
    target, _ = sf.read(str(root / split / "targets" / f"{scene['target']['name']}.wav"))
    i = scene["interferer"]
    full, _ = sf.read(str(root / split / "interferers" / i["type"] / f"{i['name']}.wav"))
    noise = np.array(full[i["offset"] : i["offset"] + len(target)])
    ramp = (np.cos(np.linspace(math.pi, 2 * math.pi, int(SAMPLE_RATE * 0.5))) + 1) / 2
    m = min(len(ramp), len(noise))  # segments shorter than the ramp: as avse.data.mixing.apply_ramp
    noise[0:m] *= ramp[:m]
    noise[len(noise) - m :] *= ramp[::-1][len(ramp) - m :]

    def rms(x: np.ndarray) -> float:
        y = x if h is None else np.convolve(x, h)
        return np.sqrt(np.mean(y**2))

    noise = noise * (rms(target) / rms(noise))
    noise = noise * 10 ** ((-scene["SNR"]) / 20)
    mixed = target + noise
    norm = np.max(np.abs(np.concatenate((mixed, target, noise))))
    for kind, x in (("mixed", mixed), ("target", target), ("interferer", noise)):
        x = np.clip(x / norm, -1, 1)
        sf.write(str(out_dir / f"{scene['scene']}_{kind}.wav"), (32767 * x).astype(np.int16), SAMPLE_RATE, "PCM_16")
    if video:
        from avse.video.io import copy_video_stream

        src = root / split / "targets_video" / f"{scene['target']['name']}.mp4"
        copy_video_stream(src, out_dir / f"{scene['scene']}_silent.mp4")


# ---------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, help="an existing corpus (default: a synthetic one in a temp folder)")
    ap.add_argument("--dataset", default="train")
    ap.add_argument("--scenes", type=int, default=200, help="scenes to build and render")
    ap.add_argument("--targets", type=int, default=None, help="synthetic targets (default: one per scene)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each; the fastest counts")
    ap.add_argument("--speech-weight", type=Path, default=DEFAULT_WEIGHT if DEFAULT_WEIGHT.exists() else None)
    ap.add_argument("--plain", action="store_true", help="plain RMS instead of the speech-weighting filter")
    ap.add_argument("--no-video", action="store_true", help="skip the _silent.mp4 copies in both")
    args = ap.parse_args()
    weight = None if args.plain else args.speech_weight
    with_video = not args.no_video

    tmp = Path(tempfile.mkdtemp(prefix="bench_render_"))
    try:
        if weight is None and not args.plain:
            # no AVSE filter at hand: a 512-tap speech-band FIR of the same size, for timing
            import scipy.io
            from scipy.signal import firwin

            weight = tmp / "weight.mat"
            scipy.io.savemat(str(weight), {"filt": firwin(512, [100, 5000], fs=SAMPLE_RATE, pass_zero=False)})
        if args.root is None:
            root = tmp / "corpus"
            t0 = time.perf_counter()
            make_corpus(root, args.targets or args.scenes, with_video)
            print(f"corpus: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            scenes = sc.build_scenes(root, args.dataset, n_scenes=args.scenes, seed=0)
        else:
            root = tmp / "corpus"
            root.mkdir()
            for child in args.root.iterdir():  # inputs by link; outputs go into the temp copy
                (root / child.name).symlink_to(child.resolve())
            (root / "metadata").unlink()
            shutil.copytree(args.root / "metadata", root / "metadata")
            if args.dataset in {c.name for c in args.root.iterdir()}:
                (root / args.dataset).unlink()
                (root / args.dataset).mkdir()
                for child in (args.root / args.dataset).iterdir():
                    if child.name != "scenes":
                        (root / args.dataset / child.name).symlink_to(child.resolve())
            try:
                scenes = load_scenes(scenes_path(root, args.dataset))[: args.scenes]
            except Exception:
                scenes = sc.build_scenes(root, args.dataset, n_scenes=args.scenes, seed=0)
        sc.write_scenes(root, args.dataset, scenes)
        out = scenes_dir(root, args.dataset)
        naive_out = tmp / "naive"

        def run_naive(video: bool) -> float:
            shutil.rmtree(naive_out, ignore_errors=True)
            naive_out.mkdir()
            t0 = time.perf_counter()
            for s in scenes:
                naive_render(root, s, naive_out, weight, video)
            return time.perf_counter() - t0

        def run_fast(video: bool) -> float:
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            summary = rd.render_scenes(
                root, args.dataset, jobs=args.jobs, speech_weight=weight, progress=False, with_video=video
            )
            dt = time.perf_counter() - t0
            assert summary["rendered"] == len(scenes), summary
            return dt

        result: dict = {
            "scenes": len(scenes),
            "jobs": args.jobs,
            "repeats": args.repeat,
            "speech_weight": "none (plain RMS)" if weight is None else str(weight),
        }
        for video in ([True, False] if with_video else [False]):
            naive_runs, fast_runs = [], []
            for _ in range(args.repeat):  # interleaved, so that both see the same machine load
                naive_runs.append(run_naive(video))
                fast_runs.append(run_fast(video))
            t_naive, t_fast = min(naive_runs), min(fast_runs)
            result["with_video" if video else "audio_only"] = {
                "seconds_naive": round(t_naive, 3),
                "seconds_render_scenes": round(t_fast, 3),
                "scenes_per_s_naive": round(len(scenes) / t_naive, 1),
                "scenes_per_s_render_scenes": round(len(scenes) / t_fast, 1),
                "speedup": round(t_naive / t_fast, 2),
            }
            print(f"{'with video' if video else 'audio only'}: naive {len(scenes) / t_naive:.1f} scenes/s, "
                  f"render_scenes --jobs {args.jobs} {len(scenes) / t_fast:.1f} scenes/s, "
                  f"speedup {t_naive / t_fast:.2f}x", file=sys.stderr)

        differ, differ_samples, differ_lsb = 0, 0, 0
        snr_err = []
        for s in scenes:
            for kind in ("mixed", "target", "interferer"):
                a = sf.read(str(naive_out / f"{s['scene']}_{kind}.wav"), dtype="int16")[0].astype(int)
                b = sf.read(str(out / f"{s['scene']}_{kind}.wav"), dtype="int16")[0].astype(int)
                if len(a) != len(b) or np.any(a != b):
                    differ += 1
                    differ_samples += int(np.sum(a != b)) if len(a) == len(b) else max(len(a), len(b))
                    differ_lsb = max(differ_lsb, int(np.max(np.abs(a - b))) if len(a) == len(b) else 1 << 16)
            snr = rd.measured_snr(out / f"{s['scene']}_target.wav", out / f"{s['scene']}_interferer.wav", weight)
            snr_err.append(abs(snr - s["SNR"]))
        result.update(
            {
                # np.convolve (a) and the reference's FFT convolution (b) agree to float64 rounding; int16
                # truncation can show a last-bit difference of the gain as 1 LSB at a few samples
                "wav_files_differing": int(differ),
                "wav_files_compared": 3 * len(scenes),
                "samples_differing": differ_samples,
                "max_difference_lsb": differ_lsb,
                "snr_abs_error_db_max": float(np.max(snr_err)),
                "snr_abs_error_db_mean": float(np.mean(snr_err)),
            }
        )
        save("render", result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
