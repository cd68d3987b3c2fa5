"""Talking-face generation, measured: sync, lip shape, image quality and identity against real videos.

    python bench/bench_talk.py [--model PATH] [--expert PATH] [--judge PATH] [--light-asd PATH]
                               [--cache data/talk_faces] [--real ../shared/data/real] [--synthetic 24] [--no-landmarks]

Two sets:
- synthetic: held-out speakers of the preprocessing cache's test split (``avse prepare
  CORPUS OUT --faces``), the first ``--synthetic`` clips;
- real: the real talking-face clips of REAL/grid and REAL/av (front end on each clip).

For each clip the identity frame is the clip's first frame, the speech is the clip's own,
and the driving frames (upper face, head pose) are the clip's frames. Methods:
- real: the clip itself (the ceiling under our lip-sync expert);
- still: the first frame repeated (the floor);
- energy: the first frame with the jaw pulled down by the speech energy (a simple baseline);
- ours: the talking-face generator.
Measures per clip, then means with 95 % intervals:
- LSE-D (lower is better) and LSE-C (higher is better) from avse's lip-sync expert;
- with ``--judge``, LSE-D and LSE-C again from a second expert that the generator never
  trained against (``configs/talking/sync_judge.yaml``): the generator's sync loss uses the
  shipped expert, so that expert over-rates it;
- with ``--light-asd`` (a released Light-ASD checkpoint; by default the AVA one in
  ../shared/models/light_asd when it is there), the mean "speaking" logit of an active-speaker
  detector trained on real faces (``avse.models.light_asd.LightASD``), face crops and speech
  together (higher: more like a face that speaks this speech);
- lip distance: MediaPipe's 40 lip points on the generated vs the real crops (pixels of the
  96-pixel crop, position removed; lower is better);
- PSNR and SSIM of the lower face against the real frames; identity: cosine of LBP-histogram
  face descriptors between each frame and the real frame (higher is better).
Also the time per generated frame on one core. Writes bench/results/talk.json, talk.png (bars)
and talk_sheet.png (a contact sheet: reference, generated and real frames).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "real"
LIGHT_ASD = HERE.parents[1] / "shared" / "models" / "light_asd" / "pretrain_AVA_CVPR.model"
METHODS = ("real", "still", "energy", "ours")
MEASURES = ("lse_d", "lse_c", "lip_distance", "psnr", "ssim", "identity")
JUDGED = ("judge_lse_d", "judge_lse_c")  # with --judge
DETECTED = ("asd",)  # with --light-asd
BETTER = {"asd": "higher", "lse_d": "lower", "lse_c": "higher", "judge_lse_d": "lower", "judge_lse_c": "higher", "lip_distance": "lower",
          "psnr": "higher", "ssim": "higher", "identity": "higher"}
LOWER = 48  # rows of the 96-pixel crop from which PSNR and SSIM are taken (the lower face)


def mean_ci(values: list[float]) -> dict:
    """Mean with a 95 % Student-t interval half-width over the finite values (``avse.evaluation.run.mean_ci``)."""
    from avse.evaluation.run import mean_ci as interval

    r = interval(values)
    mean = None if r["mean"] is None else round(r["mean"], 4)
    half = None if r["ci_high"] is None else round(r["ci_high"] - r["mean"], 4)
    return {"mean": mean, "ci95": half, "n": r["n"]}


def synthetic_clips(cache: Path, n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, faces uint8 [N, 96, 96, 3], audio float32 [N * 640]) of the first n test clips of the cache."""
    from avse.talking.train import _load, cache_items

    out = []
    for path in cache_items(cache, "test")[:n]:
        faces, audio = _load(path)
        if len(faces) >= 25:
            out.append((f"synthetic/{path.stem}", faces, audio))
    return out


def real_clips(real: Path, cache: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, aligned faces, audio) of each real clip: bench_sync_expert's loader (the talker's landmarks, cached in ``cache``)."""
    from bench_sync_expert import real_clips as load

    return [(f"real/{c['id']}", c["faces"], c["audio"]) for c in load(real, cache)]


def measure(expert, faces: np.ndarray, real: np.ndarray, audio: np.ndarray, real_lips: np.ndarray | None,
            landmarks: bool, judge=None, detector=None) -> dict:
    """All measures of one method's crops ``faces`` [N, 96, 96, 3] against the real crops (``judge``: a second expert;
    ``detector``: a Light-ASD detector)."""
    from avse.talking.expert import lse
    from avse.talking.metrics import identity_similarity, lip_distance, lip_landmarks, psnr, ssim

    r = lse(expert, faces, audio)
    out = {"lse_d": float(r["lse_d"]), "lse_c": float(r["lse_c"]), "offset": int(r["offset_frames"])}
    if judge is not None:
        j = lse(judge, faces, audio)
        out.update(judge_lse_d=float(j["lse_d"]), judge_lse_c=float(j["lse_c"]), judge_offset=int(j["offset_frames"]))
    if detector is not None:
        from avse.models.light_asd import crops_from_faces

        out["asd"] = float(detector.scores(crops_from_faces(faces), audio).mean())
    out["psnr"] = psnr(faces[:, LOWER:], real[:, LOWER:])
    out["ssim"] = ssim(faces[:, LOWER:], real[:, LOWER:])
    out["identity"] = identity_similarity(faces, real)
    out["lip_distance"] = lip_distance(lip_landmarks(faces), real_lips) if landmarks and real_lips is not None else float("nan")
    return out


def beats(d: dict, m: str, lower: bool) -> bool | None:
    """Whether "ours" is better than both baselines (still, energy) on measure m of one set's summary."""
    o, a, b = (d[k][m]["mean"] for k in ("ours", "still", "energy"))
    if None in (o, a, b):
        return None
    return bool(o < min(a, b)) if lower else bool(o > max(a, b))


def closer(d: dict, m: str) -> bool | None:
    """Whether "ours" is nearer to the real videos than both baselines (still, energy) on measure m: |mean - real's mean|."""
    r, o, a, b = (d[k][m]["mean"] for k in ("real", "ours", "still", "energy"))
    if None in (r, o, a, b):
        return None
    return bool(abs(o - r) < min(abs(a - r), abs(b - r)))


def plot(summary: dict, path: Path, measures: tuple[str, ...] = MEASURES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(summary)
    fig, axes = plt.subplots(len(sets), len(measures), figsize=(3.0 * len(measures), 2.8 * len(sets)), squeeze=False)
    for i, s in enumerate(sets):
        for j, m in enumerate(measures):
            ax = axes[i][j]
            means = [summary[s][k][m]["mean"] for k in METHODS]
            cis = [summary[s][k][m]["ci95"] or 0.0 for k in METHODS]
            xs = np.arange(len(METHODS))
            vals = [np.nan if v is None else v for v in means]
            ax.bar(xs, vals, yerr=cis, color=["#777", "#bbb", "#9cf", "#f80"], capsize=3)
            ax.set_xticks(xs, METHODS, fontsize=8)
            ax.set_title(f"{s}: {m} ({BETTER[m]} better)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sheet(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path, every: int = 4, cols: int = 8) -> None:
    """Contact sheet: per clip, three rows (generated frames, real frames), the reference first."""
    import cv2

    blocks = []
    for _name, ref, gen, real in rows:
        idx = list(range(0, min(len(gen), every * cols), every))
        pad = np.zeros_like(ref)
        g = np.concatenate([ref] + [gen[i] for i in idx] + [pad] * (cols - len(idx)), axis=1)
        r = np.concatenate([pad] + [real[i] for i in idx] + [pad] * (cols - len(idx)), axis=1)
        blocks += [g, r, np.full((4, g.shape[1], 3), 255, np.uint8)]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(blocks, axis=0), cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="talking-face checkpoint (default: the shipped one)")
    ap.add_argument("--expert", help="lip-sync expert checkpoint (default: the shipped one)")
    ap.add_argument("--judge", help="a second lip-sync expert that the generator never trained against: LSE from it too")
    ap.add_argument("--light-asd", type=Path, default=LIGHT_ASD,
                    help="Light-ASD checkpoint: its speaking score too (default: %(default)s, skipped when absent)")
    ap.add_argument("--cache", type=Path, default=Path("data/talk_faces"))
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--landmarks-cache", type=Path, default=Path("/tmp/avse_bench_sync_expert"),
                    help="where the real clips' landmarks are kept between runs (shared with bench_sync_expert.py)")
    ap.add_argument("--synthetic", type=int, default=24, help="synthetic test clips (0: none)")
    ap.add_argument("--no-landmarks", action="store_true", help="skip the MediaPipe lip distance (faster)")
    ap.add_argument("--out", default="talk", help="result name under bench/results (default: %(default)s)")
    args = ap.parse_args()

    import torch

    from avse.talking.baselines import energy_mouth, still
    from avse.talking.expert import SyncExpert
    from avse.talking.generate import TalkingFace
    from avse.talking.metrics import lip_landmarks

    torch.set_num_threads(1)
    expert = SyncExpert.from_pretrained(args.expert).eval()
    judge = SyncExpert.from_pretrained(args.judge).eval() if args.judge else None
    detector = None
    if args.light_asd.is_file():
        from avse.models.light_asd import load_detector

        detector = load_detector(args.light_asd)
    measures = MEASURES + (JUDGED if judge is not None else ()) + (DETECTED if detector is not None else ())
    talk = TalkingFace.from_pretrained(args.model)
    sets: dict[str, list] = {}
    if args.synthetic > 0 and (args.cache / "test").is_dir():
        sets["synthetic"] = synthetic_clips(args.cache, args.synthetic)
    if args.real.is_dir():
        sets["real"] = real_clips(args.real, args.landmarks_cache)
    if not sets:
        sys.exit("bench_talk: no clips (neither a cache with a test split nor the real clips)")
    items, summary, sheet_rows = [], {}, []
    gen_seconds, gen_frames = 0.0, 0
    for set_name, clips in sets.items():
        per: dict[str, dict[str, list[float]]] = {k: {m: [] for m in measures} for k in METHODS}
        for name, real, audio in clips:
            n = len(real)
            t0 = time.perf_counter()
            ours = talk.crops(audio, real[0], real)
            gen_seconds += time.perf_counter() - t0
            gen_frames += n
            outs = {"real": real, "still": still(real[0], n), "energy": energy_mouth(real[0], audio, n), "ours": ours}
            real_lips = None if args.no_landmarks else lip_landmarks(real)
            row = {"clip": name, "frames": n}
            for k, faces in outs.items():
                row[k] = measure(expert, faces, real, audio, real_lips, not args.no_landmarks, judge, detector)
                for m in measures:
                    per[k][m].append(row[k][m])
            items.append(row)
            print(f"{name}: " + "  ".join(f"{k} D {row[k]['lse_d']:.2f} C {row[k]['lse_c']:.2f}" for k in METHODS), flush=True)
            if len([r for r in sheet_rows if r[0].startswith(set_name)]) < 3:
                sheet_rows.append((name, real[0], ours, real))
        summary[set_name] = {k: {m: mean_ci(per[k][m]) for m in measures} for k in METHODS}
    sync = ("lse_d", "lse_c", "lip_distance") + (JUDGED if judge is not None else ()) + (DETECTED if detector is not None else ())
    goal = {s: {m: beats(d, m, BETTER[m] == "lower") for m in sync} for s, d in summary.items()}
    nearer = {s: {m: closer(d, m) for m in sync if m != "lip_distance"} for s, d in summary.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(summary, RESULTS / f"{args.out}.png", measures)
    sheet(sheet_rows, RESULTS / f"{args.out}_sheet.png")
    save(args.out, {
        "model": args.model or "shipped", "expert": args.expert or "shipped", "judge": args.judge,
        "light_asd": str(args.light_asd) if detector is not None else None, "summary": summary,
        "ours_beats_both_baselines": goal, "ours_nearer_to_real_than_both_baselines": nearer,
        "ms_per_generated_frame_one_core": round(1000 * gen_seconds / max(gen_frames, 1), 1),
        "items": items,
    })


if __name__ == "__main__":
    main()
