"""The lip-sync expert against the lip-motion offset estimator, on real and synthetic clips.

For every clip the audio is shifted by known offsets (-8, -4, -2, 0, +2, +4, +8 frames of
40 ms; positive = audio late) and both estimators are asked for the offset:
``avse.talking.expert.lse`` (the expert, whole frames) and ``avse.video.sync.estimate_offset``
(lip landmarks vs. speech energy, 10 ms steps). A hit: the estimate is within +-1 frame
(+-40 ms) of the shift (the clip itself taken as in sync). "Shift tracked": the estimate at
each non-zero shift minus the clip's own unshifted estimate is within +-1 frame of the shift
(does not assume that a real clip is in sync to begin with: several of the real clips read
+2 or +3 frames, or -3, by both estimators). Then LSE-D / LSE-C of each clip as it is against its faces with
another clip's audio (in sync should give the lower LSE-D and the higher LSE-C).

Real clips: ../shared/data/real/grid/*.mpg and av/*/*.mp4 (skipped when absent); their
landmarks come from the front end (``avse.video.track.extract_landmarks``), the aligned
face crops from ``face_matrices`` / ``face_crops``, as ``avse sync --method expert`` does.
Synthetic clips: the held-out test split of the face cache (data/talk_faces/test).
Prints everything, writes bench/results/sync_expert.json and sync_expert.png.

    python bench/bench_sync_expert.py [--expert PATH] [--real DIR] [--cache DIR] [--max-synth 48]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

from avse import SAMPLES_PER_FRAME  # noqa: E402
from avse.talking.audio import audio_windows  # noqa: E402
from avse.talking.expert import PRETRAINED, SyncExpert, clip_embeddings, lse_from_embeddings  # noqa: E402
from avse.video.sync import estimate_offset, shift_audio  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SHIFTS = (-8, -4, -2, 0, 2, 4, 8)
FRAME_MS = 40.0


def clip_landmarks(video: Path, audio: np.ndarray, cache: Path) -> dict[str, np.ndarray]:
    """The front end's landmarks of a real clip's tracked face (``audio``: its timeline audio), cached in ``cache`` as
    npz (without the mesh), the cache bench_real.py, bench_assign.py and bench_mouths.py share."""
    from avse.video.track import extract_landmarks

    store = cache / f"{video.parent.name}_{video.stem}.npz"
    if store.is_file():
        with np.load(store) as z:
            return {k: z[k] for k in z.files}
    lm, _ = extract_landmarks(video, audio=audio)
    lm = {k: v for k, v in lm.items() if k != "mesh"}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(store, **lm)
    return lm


def real_clips(root: Path, cache: Path) -> list[dict]:
    """The real clips as dicts (id, faces [N, 96, 96, 3], audio [T], lips, flags); landmarks cached in ``cache``."""
    from avse.video.io import iter_grid_frames
    from avse.video.roi import face_crops, face_matrices
    from avse.video.shift import timeline_audio

    videos = sorted((root / "grid").glob("*.mpg")) + sorted((root / "av").glob("*/*.mp4"))
    out = []
    for video in videos:
        cid = f"{video.parent.name}/{video.stem}"
        audio = timeline_audio(video)
        lm = clip_landmarks(video, audio, cache)
        n = len(lm["lips"])
        faces = face_crops(iter_grid_frames(video, max_frames=n), face_matrices(lm))
        n = len(faces)
        audio = np.pad(audio[: n * SAMPLES_PER_FRAME], (0, max(0, n * SAMPLES_PER_FRAME - len(audio))))
        out.append({"id": cid, "faces": faces, "audio": audio, "lips": lm["lips"][:n], "flags": lm.get("flags")})
        print(f"  {cid}: {n} frames")
    return out


def synth_clips(folder: Path, limit: int) -> list[dict]:
    """Held-out synthetic clips from the face cache (id, faces, audio, lips, flags)."""
    from avse.data.prepare import load_cached

    out = []
    for path in sorted(folder.glob("*.npz"))[:limit]:
        d = load_cached(path, keys=("faces", "audio", "lips", "flags"))
        out.append({"id": path.stem, "faces": d["faces"], "audio": d["audio"], "lips": d["lips"], "flags": d["flags"]})
    return out


def offsets(expert: SyncExpert, clips: list[dict], max_offset: int) -> dict:
    """Both estimators on every clip at every shift -> per-shift hit rates, all hits, per-clip errors."""
    rows = {}
    hits: dict[str, dict[int, list[bool]]] = {"expert": {s: [] for s in SHIFTS}, "lips": {s: [] for s in SHIFTS}}
    print(f"\n  {'clip':<34} expert error (frames) / lips error (frames) at shifts {SHIFTS}")
    for c in clips:
        v, _ = clip_embeddings(expert, c["faces"], c["audio"])
        n = len(v)
        mo = int(min(max_offset, n - 5))
        ex_err, lp_err = [], []
        for s in SHIFTS:
            shifted = shift_audio(c["audio"], s * FRAME_MS)
            with torch.no_grad():
                a = expert.embed_audio(audio_windows(shifted, n_frames=n))
            r = lse_from_embeddings(v, a, mo)
            ex_err.append(r["offset_frames"] - s)
            try:
                est = estimate_offset(c["lips"], shifted, flags=c["flags"], max_offset_ms=max_offset * FRAME_MS)
                lp_err.append(round(est.offset_ms / FRAME_MS - s, 2))
            except Exception as err:  # noqa: BLE001  a clip too short for the lip estimator
                print(f"  lips estimator failed on {c['id']}: {err}")
                lp_err.append(float("nan"))
            hits["expert"][s].append(abs(ex_err[-1]) <= 1)
            hits["lips"][s].append(bool(abs(lp_err[-1]) <= 1.0))
        rows[c["id"]] = {"expert": ex_err, "lips": lp_err}
        print(f"  {c['id'][:34]:<34} {' '.join(f'{e:+3d}' for e in ex_err)}   /  {' '.join(f'{e:+5.1f}' for e in lp_err)}")
    out = {}
    zero = SHIFTS.index(0)
    for name, per in hits.items():
        allh = [h for s in SHIFTS for h in per[s]]
        # relative to the clip's own unshifted estimate: what a real clip's unknown offset does not blur
        rel = [abs(r[name][k] - r[name][zero]) <= 1 for r in rows.values() for k, s in enumerate(SHIFTS) if s != 0]
        out[name] = {"within_1_frame": round(float(np.mean(allh)), 4),
                     "per_shift": {str(s): round(float(np.mean(per[s])), 4) for s in SHIFTS},
                     "shift_tracked_within_1_frame": round(float(np.mean(rel)), 4)}
        print(f"  {name:<7} within +-1 frame: {out[name]['within_1_frame']:.1%} of {len(allh)}   per shift: "
              + "  ".join(f"{s:+d}:{np.mean(per[s]):.0%}" for s in SHIFTS)
              + f"   | shift tracked (vs its own unshifted estimate) within +-1: {out[name]['shift_tracked_within_1_frame']:.1%}")
    agree = [abs(r["expert"][zero] - r["lips"][zero]) <= 1 for r in rows.values()]
    out["methods_agree_unshifted_within_1_frame"] = round(float(np.mean(agree)), 4)
    print(f"  the two estimators agree on the unshifted clip (within +-1 frame) for {np.mean(agree):.0%} of the clips")
    out["per_clip_errors_frames"] = rows
    return out


def pairings(expert: SyncExpert, clips: list[dict], max_offset: int) -> dict:
    """LSE-D / LSE-C of each clip in sync vs with the next clip's audio (cut or padded to its length)."""
    true_d, true_c, swap_d, swap_c = [], [], [], []
    for i, c in enumerate(clips):
        other = clips[(i + 1) % len(clips)]["audio"]
        n = len(c["faces"])
        mo = int(min(max_offset, n - 5))
        v, a = clip_embeddings(expert, c["faces"], c["audio"])
        r = lse_from_embeddings(v, a, mo)
        true_d.append(r["lse_d"])
        true_c.append(r["lse_c"])
        _, a2 = clip_embeddings(expert, c["faces"], np.resize(other, n * SAMPLES_PER_FRAME) if len(other) < n * SAMPLES_PER_FRAME else other)
        r2 = lse_from_embeddings(v, a2, mo)
        swap_d.append(r2["lse_d"])
        swap_c.append(r2["lse_c"])
    td, tc, sd, sc = map(np.asarray, (true_d, true_c, swap_d, swap_c))
    out = {
        "lse_d_in_sync": round(float(td.mean()), 4), "lse_d_swapped": round(float(sd.mean()), 4),
        "lse_c_in_sync": round(float(tc.mean()), 4), "lse_c_swapped": round(float(sc.mean()), 4),
        "share_lse_d_lower_in_sync": round(float(np.mean(td < sd)), 4),
        "share_lse_c_higher_in_sync": round(float(np.mean(tc > sc)), 4),
        "lse_c_swapped_p95": round(float(np.percentile(sc, 95)), 4),
        "lse_c_in_sync_p05": round(float(np.percentile(tc, 5)), 4),
        "per_clip": {c["id"]: [round(x, 4) for x in (a, b, e, f)] for c, a, b, e, f in zip(clips, true_d, true_c, swap_d, swap_c)},
    }
    print(f"  LSE-D in sync {out['lse_d_in_sync']:.3f} vs swapped {out['lse_d_swapped']:.3f} (lower in sync for "
          f"{out['share_lse_d_lower_in_sync']:.0%});  LSE-C in sync {out['lse_c_in_sync']:.3f} vs swapped "
          f"{out['lse_c_swapped']:.3f} (higher in sync for {out['share_lse_c_higher_in_sync']:.0%})")
    return out


def plot(result: dict, path: Path) -> None:
    """Hit rate per shift (expert vs lips, per data set) and LSE-C in sync vs swapped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [k for k in ("real", "synthetic") if k in result]
    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(5 * (len(sets) + 1), 4))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, sets):
        off = result[name]["offsets"]
        x = np.arange(len(SHIFTS))
        for k, (method, color) in enumerate((("expert", "tab:blue"), ("lips", "tab:orange"))):
            vals = [off[method]["per_shift"][str(s)] for s in SHIFTS]
            ax.bar(x + (k - 0.5) * 0.4, vals, 0.4, color=color,
                   label=f"{method} (all {off[method]['within_1_frame']:.0%}; shift tracked "
                         f"{off[method]['shift_tracked_within_1_frame']:.0%})")
        ax.set_xticks(x, [f"{s:+d}" for s in SHIFTS])
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("audio shift (frames of 40 ms; + = audio late)")
        ax.set_ylabel("share within +-1 frame")
        ax.set_title(f"{name} clips ({result[name]['clips']}): offset found")
        ax.legend(loc="lower center")
    ax = axes[-1]
    for k, name in enumerate(sets):
        per = result[name]["pairings"]["per_clip"].values()
        tc = [p[1] for p in per]
        sc = [p[3] for p in per]
        ax.scatter(np.full(len(tc), 2 * k) + np.random.default_rng(0).uniform(-0.2, 0.2, len(tc)), tc, s=12, color="tab:green",
                   label="in sync" if k == 0 else None)
        ax.scatter(np.full(len(sc), 2 * k + 1) + np.random.default_rng(1).uniform(-0.2, 0.2, len(sc)), sc, s=12, color="tab:red",
                   label="audio of another clip" if k == 0 else None)
    ax.set_xticks(np.arange(2 * len(sets)), [f"{n}\n{w}" for n in sets for w in ("in sync", "swapped")])
    ax.set_ylabel("LSE-C (median - min distance)")
    ax.set_title("confidence: true vs wrong pairings")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--expert", default=None, help="an expert checkpoint (default: the shipped one)")
    p.add_argument("--real", type=Path, default=REAL, help="the real clips (grid/, av/)")
    p.add_argument("--cache", type=Path, default=Path("data/talk_faces"), help="the face cache (its test split is used)")
    p.add_argument("--max-synth", type=int, default=48, help="synthetic test clips at most")
    p.add_argument("--max-offset", type=int, default=15, help="offset search, frames either way")
    p.add_argument("--landmarks-cache", type=Path, default=Path("/tmp/avse_bench_sync_expert"),
                   help="where the real clips' landmarks are kept between runs")
    p.add_argument("--name", default="sync_expert", help="results name (bench/results/NAME.json, NAME.png)")
    args = p.parse_args()

    expert = SyncExpert.from_pretrained(args.expert)
    info = expert.info
    result: dict = {"expert": str(args.expert or PRETRAINED), "expert_extra": info.get("extra", {}), "shifts_frames": list(SHIFTS),
                    "max_offset_frames": args.max_offset}
    t0 = time.perf_counter()
    sets = {}
    if (args.real / "grid").is_dir() or (args.real / "av").is_dir():
        print(f"== real clips from {args.real}")
        sets["real"] = real_clips(args.real, args.landmarks_cache)
    else:
        print(f"== no real clips at {args.real}: skipped")
    test = args.cache / "test"
    if test.is_dir() and any(test.glob("*.npz")):
        sets["synthetic"] = synth_clips(test, args.max_synth)
        print(f"== synthetic test clips: {len(sets['synthetic'])} from {test}")
    else:
        print(f"== no synthetic test clips at {test}: skipped")
    for name, clips in sets.items():
        if not clips:
            continue
        print(f"\n== {name}: offsets")
        res = {"clips": len(clips), "seconds": round(sum(len(c["faces"]) for c in clips) / 25.0, 1)}
        res["offsets"] = offsets(expert, clips, args.max_offset)
        print(f"\n== {name}: in sync vs swapped audio")
        res["pairings"] = pairings(expert, clips, args.max_offset)
        result[name] = res
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if any(k in result for k in ("real", "synthetic")):
        png = RESULTS / f"{args.name}.png"
        RESULTS.mkdir(parents=True, exist_ok=True)
        plot(result, png)
        result["plot"] = str(png)
    save(args.name, result)


if __name__ == "__main__":
    main()
