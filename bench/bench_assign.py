"""Two real talkers, both faces seen: each face's voice by lip sync from the blind separator, or by the audio-visual model.

    python bench/bench_assign.py [--real ../shared/data/real] [--light-asd FILE] [--name assign]

The real dev set's two-talker mixtures (``bench_real.py``: each clip's audio with another
talker's clip at -5, 0 and +5 dB), now with *both* faces given, as ``avse separate`` has them
on a video of two talkers. For the target's face, its voice by:

- ``av per face``: the shipped ``av`` run with the target's lips (``avse separate --assign av``;
  no attenuation limit, as ``avse separate`` mixes nothing back);
- ``blind, by lip sync``: the shipped ``separate``, its outputs given to the two faces by the
  sync expert's LSE-C (``avse.talking.expert.assign_sources``; ``--assign sync``);
- ``auto``: what ``avse separate`` does by default: lip sync, unless an output of the blind
  model is near silent (then ``av per face``);
- ``blind, by Light-ASD`` (with ``--light-asd``): the same outputs given by Light-ASD's mean
  "speaking" logit instead (``avse.models.light_asd``, the user's checkpoint), for comparison;
- ``blind, oracle``: the better output, the ceiling of any assignment.

SI-SDRi of the target's voice with 95 % intervals per SNR, and how often an assignment chose
the better output. Writes bench/results/NAME.json and NAME.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "real"
SNRS = (-5.0, 0.0, 5.0)
SR = 16000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avse_bench_real",
                    help="front-end cache, shared with bench_real.py")
    ap.add_argument("--landmarks-cache", type=Path, default=Path(tempfile.gettempdir()) / "avse_bench_sync_expert",
                    help="the clips' landmarks, shared with bench_sync_expert.py")
    ap.add_argument("--light-asd", type=Path, default=None, help="a Light-ASD checkpoint (e.g. pretrain_AVA_CVPR.model) to compare")
    ap.add_argument("--name", default="assign")
    args = ap.parse_args()
    if not (args.real / "grid").is_dir():
        raise SystemExit(f"no real clips in {args.real}")
    import bench_real as br
    import torch
    from bench_sync_expert import real_clips
    from tqdm import tqdm

    from avse.api import SILENT_OUTPUT_DB, Enhancer, Separator, output_levels_db
    from avse.evaluation.metrics import si_sdr
    from avse.evaluation.run import mean_ci
    from avse.talking.expert import SyncExpert, assign_sources, best_assignment

    torch.set_num_threads(2)
    clips = br.load_clips(args.real, args.cache / "frontend")  # lips as avse enhance gets them, audio
    crops = [c["faces"] for c in real_clips(args.real, args.landmarks_cache)]  # aligned face crops [N, 96, 96, 3]
    pair = br.partners(clips)
    blind = Separator("separate", av=None)
    av = Enhancer("av", fallback=None, atten_lim_db=None)
    expert = SyncExpert.from_pretrained()
    detector = None
    if args.light_asd is not None:
        from avse.models.light_asd import crops_from_faces, load_detector

        detector = load_detector(args.light_asd)
    methods = ["av per face", "blind, by lip sync", "auto"] + (["blind, by Light-ASD"] if detector else []) + ["blind, oracle"]
    rows = []
    t0 = time.perf_counter()
    jobs = [(snr, i) for snr in SNRS for i in range(len(clips))]
    for snr, i in tqdm(jobs, desc="mixtures"):
        c, o = clips[i], clips[pair[i]]
        n = len(c.audio)
        mixture, ref = br.mix(c.audio, br.fit(o.audio, n), snr)
        base = si_sdr(mixture, ref)
        outs = blind.separate(mixture, SR)  # [2, T]
        sdr = [si_sdr(y, ref) for y in outs]
        faces = [crops[i], br.fit(crops[pair[i]], len(crops[i]))]  # the target's face, then the other's
        order, lse_c = assign_sources(faces, outs, expert)
        row = {"snr": snr, "target": c.name, "other": o.name, "lse_c": np.round(lse_c, 4).tolist(),
               "blind_si_sdri": [round(s - base, 3) for s in sdr], "better": int(np.argmax(sdr))}
        est = {"av per face": av.enhance(mixture, SR, video=c.features), "blind, by lip sync": outs[order[0]]}
        silent = min(output_levels_db(outs, mixture)) < SILENT_OUTPUT_DB
        est["auto"] = est["av per face"] if silent else est["blind, by lip sync"]
        row["chosen"] = {"blind, by lip sync": order[0]}
        if detector is not None:
            with torch.no_grad():
                asd = np.array([[float(detector.scores(crops_from_faces(f), y).mean()) for y in outs] for f in faces])
            k = best_assignment(asd)[0]
            est["blind, by Light-ASD"] = outs[k]
            row["chosen"]["blind, by Light-ASD"] = k
            row["light_asd"] = np.round(asd, 4).tolist()
        est["blind, oracle"] = outs[row["better"]]
        row["si_sdri"] = {m: round(si_sdr(est[m], ref) - base, 3) for m in methods}
        row["one_voice"] = bool(silent)
        rows.append(row)
    summary: dict = {}
    for snr in SNRS:
        rs = [r for r in rows if r["snr"] == snr]
        s = summary[f"{snr:+.0f} dB"] = {}
        for m in methods:
            ci = mean_ci([r["si_sdri"][m] for r in rs])
            s[m] = {"si_sdri": round(ci["mean"], 3), "ci95": round(ci["mean"] - ci["ci_low"], 3), "n": ci["n"]}
            if m in rs[0]["chosen"]:
                s[m]["chose_better"] = round(float(np.mean([r["chosen"][m] == r["better"] for r in rs])), 3)
        s["auto"]["used_av"] = int(sum(r["one_voice"] for r in rs))
    result = {"clips": len(clips), "mixtures": len(rows), "methods": methods, "seconds": round(time.perf_counter() - t0, 1),
              "summary": summary, "rows": rows}
    save(args.name, result)
    plot(summary, methods, RESULTS / f"{args.name}.png")
    for snr, s in summary.items():
        print(snr, "  ".join(f"{m}: {v['si_sdri']:+.2f} ± {v['ci95']:.2f}" + (f" ({v['chose_better']:.0%})" if "chose_better" in v else "")
                             for m, v in s.items()))


def plot(summary: dict, methods: list[str], path: Path) -> None:
    """Bars of each method's mean SI-SDRi per SNR with the 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snrs = list(summary)
    fig, ax = plt.subplots(figsize=(8, 4))
    w = 0.8 / len(methods)
    for k, m in enumerate(methods):
        x = np.arange(len(snrs)) + (k - (len(methods) - 1) / 2) * w
        ax.bar(x, [summary[s][m]["si_sdri"] for s in snrs], w, yerr=[summary[s][m]["ci95"] for s in snrs], label=m, capsize=3)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(snrs)), [f"target at {s}" for s in snrs])
    ax.set_ylabel("SI-SDRi of the target's voice (dB)")
    ax.set_title("Real two-talker mixtures, both faces seen (23 real clips)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
