"""Real voices in real noise, per noise and SNR: where a model's gain in recorded noise comes from.

    python bench/bench_real_noise.py [--models NAME=PATH ...] [--snrs 0 5] [--corpus data/real_models] [--name real_noise]
                                     [--atten-lim 20]

Speech: the 23 real dev clips (as ``bench_real.py`` reads them: each clip's own audio)
and the 6 CMU ARCTIC utterances of ``REAL/speech``. Noise: each file of ``REAL/noise``
(kitchen, café), the segment ``bench_real.py`` draws for that clip and noise (looped when short),
mixed at each SNR as ``bench_real.py`` mixes. With ``--corpus ROOT`` (a corpus made with
real voices) the test split adds two speech sets (23 of its real-voice and 23 of its TTS
targets) and one noise set (its generated and recorded test noises, one per utterance in
turn), so that the gap between the noises a model was trained on and real ones is a
number. Every model runs audio only (an
audio-visual model gets no video), so that the numbers say what the audio path does
with a noise it was not trained on (with ``avse enhance``'s attenuation limit, ``--atten-lim``). Prints and writes the mean SI-SDRi with a 95 %
interval per (speech set, noise, SNR) and method, the mean over the real voices in
the real noises, and each later method's difference from the first one paired over those
same inputs: bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from bench_real import REAL, SR, fit, load_clips, mix  # noqa: E402

from avse.config import ATTEN_LIM_DB  # noqa: E402


def mean_ci(x: list[float]) -> dict[str, float | None]:
    """Mean and the half-width of its 95 % Student-t interval (``avse.evaluation.run.mean_ci``), rounded."""
    from avse.evaluation.run import mean_ci as interval

    r = interval(x)
    half = None if r["ci_high"] is None else round(r["ci_high"] - r["mean"], 3)
    return {"mean": None if r["mean"] is None else round(r["mean"], 3), "ci95": half, "n": r["n"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--models", nargs="*", default=["audio", "av"], help="shipped names or NAME=PATH checkpoints")
    ap.add_argument("--snrs", nargs="*", type=float, default=[0.0, 5.0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/avse_bench_real"), help="bench_real's front-end cache")
    ap.add_argument("--corpus", type=Path, help="also the test split's voices and noises of this corpus")
    ap.add_argument("--name", default="real_noise")
    ap.add_argument("--atten-lim", type=float, default=ATTEN_LIM_DB, metavar="DB",
                    help="the models' attenuation limit in dB, as avse enhance applies it (default: %(default)g; 0: none)")
    args = ap.parse_args()

    import torch

    from avse.api import Enhancer
    from avse.audio.io import load_audio
    from avse.evaluation.metrics import si_sdr

    torch.set_num_threads(1)
    noises = {p.stem: [load_audio(p, SR)[0]] for p in sorted((args.real / "noise").glob("*.wav"))}
    if not noises:
        raise SystemExit(f"no real noise in {args.real / 'noise'}")
    sets = {
        "dev clips": [c.audio for c in load_clips(args.real, args.work / "frontend")],
        "CMU Arctic": [load_audio(p, SR)[0] for p in sorted((args.real / "speech").glob("*.wav"))],
    }
    if args.corpus is not None:
        test = args.corpus / "test"
        targets = sorted((test / "targets").glob("*.wav"))
        sets["corpus test, real voices"] = [load_audio(p, SR)[0] for p in [t for t in targets if t.name.startswith("real_")][:23]]
        sets["corpus test, TTS voices"] = [load_audio(p, SR)[0] for p in [t for t in targets if not t.name.startswith("real_")][:23]]
        noises["corpus test noises"] = [load_audio(p, SR)[0] for p in sorted((test / "interferers" / "noise").glob("*.wav"))]
    real_noises = [n for n in noises if n != "corpus test noises"]
    specs = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.models)
    # one run, as the README's tables of this bench compare recipes
    models = {name: Enhancer(spec, fallback=None, atten_lim_db=args.atten_lim, shifts=1) for name, spec in specs.items()}
    table: dict[str, dict] = {}
    every: dict[str, list[float]] = {m: [] for m in models}
    for set_name, speech in sets.items():
        for k, nname in enumerate(sorted(real_noises) + [n for n in noises if n not in real_noises]):  # bench_real's k
            pool = noises[nname]
            for snr in args.snrs:
                gains: dict[str, list[float]] = {m: [] for m in models}
                for i, s in enumerate(speech):
                    z = pool[i % len(pool)]
                    start = int(np.random.default_rng(1000 * i + k).integers(0, max(1, len(z) - len(s))))
                    m_, r = mix(s, fit(z[start:], len(s)), snr)
                    base = si_sdr(m_, r)
                    for name, enh in models.items():
                        gains[name].append(float(si_sdr(enh.enhance(m_, SR), r) - base))
                key = f"{set_name}, {nname}, {snr:+.0f} dB"
                table[key] = {name: mean_ci(g) for name, g in gains.items()}
                if nname in real_noises and set_name in ("dev clips", "CMU Arctic"):
                    for name, g in gains.items():
                        every[name] += g
                print(key, {k: v["mean"] for k, v in table[key].items()}, flush=True)
    overall = {name: mean_ci(g) for name, g in every.items()}
    print("real voices in real noise:", {k: v["mean"] for k, v in overall.items()}, flush=True)
    first = next(iter(every))
    diffs = {name: np.subtract(g, every[first]) for name, g in every.items() if name != first}
    paired = {name: {**mean_ci(d.tolist()), "better": int(np.sum(d > 0))} for name, d in diffs.items()}
    if paired:
        print(f"paired against {first}:", {k: (v["mean"], v["ci95"]) for k, v in paired.items()}, flush=True)
    save(args.name, {"models": specs, "atten_lim_db": args.atten_lim, "snrs_db": args.snrs, "noises": sorted(noises), "per_condition": table,
                     "overall_si_sdri": overall, "paired_against": first, "paired_si_sdri": paired})


if __name__ == "__main__":
    main()
