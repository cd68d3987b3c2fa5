"""The real-recording benchmark: the real talking-face clips mixed with each other, put in real noise, and passed clean.

    python bench/bench_real.py [--real ../shared/data/real] [--models av=PATH ...] [--peers dfn3,gtcrn,...]
                               [--dnsmos ../shared/models/dnsmos] [--quick] [--postfilter STRENGTH] [--no-sync]
                               [--turns] [--conditions two-talker,noise,clean,turns]

Dev set: every clip of REAL/grid (*.mpg) and REAL/av (*/ *.mp4), 23 clips of about
22 real talkers. The front end runs once per clip (face, lip features, sync), as
``avse enhance`` runs it. Built deterministically from them:

(a) two-talker: each clip's audio plus another talker's clip (a fixed derangement
    that never pairs a talker with themself) at -5, 0 and +5 dB, the target's face
    given. The audio-visual models are also run with the *other* talker's face and
    with an all-zero visual stream, so the visual contribution is a number.
(b) real noise: each clip in each real noise file (kitchen, cafe; a fixed segment,
    looped when short) at 0 and 5 dB.
(c) clean: each clip alone (do no harm).
(d) with ``--turns``, taking turns: each clip, then its two-talker partner's clip at the same
    level while the target's face holds still (its last frame), as ``bench_assign.py`` builds
    them; scored against the target's turn followed by silence. ``--conditions`` picks some.

Methods: unprocessed, noisereduce, the shipped models (the enhancers with the
attenuation limit ``avse enhance`` applies, ``--atten-lim``; with ``--postfilter`` each
one-output model also as "NAME+pf", with ``avse enhance --postfilter``; each audio-visual
model also as "NAME+sync", as ``avse enhance`` runs it by default (``--assign auto``: the
blind ``separate`` model's output that the face's lips follow, where a second voice is
heard; its "blind_output" is the share of items where it was taken; the faces' crops come
from the landmarks of ``--landmarks-cache``, shared with bench_assign.py; ``--no-sync``
skips it), while "NAME" is the model alone; ``separate`` scored on the
better of its two outputs, an oracle choice), and the offline peers of
bench/peers (DeepFilterNet3, GTCRN, RNNoise, NSNet2) run in their own environment
(``bash bench/peers/setup``); a missing peer is skipped. With DeepFilterNet3 there,
each audio-visual model is also scored behind it ("dfn3 > av": DFN3 as a noise
stage in front of the model, the face given as before). Every output is scored
with SI-SDR (improvement over the input; on clean input the SI-SDR of the output
against the input), PESQ-WB, STOI and, when the DNSMOS models are there, DNSMOS
P.835 SIG/BAK/OVRL. Means with 95 % Student-t intervals per condition.

Writes bench/results/real.json (summary + every item) and bench/results/real.png.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

from avse import SAMPLES_PER_FRAME  # noqa: E402
from avse.config import ATTEN_LIM_DB, DEFAULT_SHIFTS  # noqa: E402

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "real"
DNSMOS_DIR = HERE.parents[1] / "shared" / "models" / "dnsmos"
PEERS_PY = HERE / "peers" / ".venv" / "bin" / "python"
LIGHT_ASD = HERE.parents[1] / "shared" / "models" / "light_asd" / "finetuning_TalkSet.model"
PEERS = ("dfn3", "gtcrn", "rnnoise", "nsnet2")
SHIPPED = ("av", "av-causal", "audio", "separate")
TWO_TALKER_SNRS = (-5.0, 0.0, 5.0)
NOISE_SNRS = (0.0, 5.0)
SR = 16000
PEAK = 0.9
CONDITIONS = ("two-talker", "noise", "clean")  # the default run; "turns" on request
ALL_CONDITIONS = (*CONDITIONS, "turns")


@dataclass
class Clip:
    """One real dev clip after the front end: its talker, 16 kHz audio [T], lip features [F, 82] and, when a model
    reads them, Light-ASD embeddings [F, 128]."""

    name: str
    talker: str
    audio: np.ndarray
    features: np.ndarray
    light_asd: np.ndarray | None = None
    face_crops: np.ndarray | None = None  # aligned face crops uint8 [F, 96, 96, 3] for "NAME+sync"


@dataclass
class Item:
    """One benchmark input: the mixture [T], its reference [T] (the target at its level in the mixture)."""

    id: str
    condition: str  # "two-talker" | "noise" | "clean" | "turns"
    snr: float | None
    target: str
    other: str | None
    mixture: np.ndarray
    reference: np.ndarray
    face: dict[str, np.ndarray]  # the target's visual streams: {"lip_features": [F, 82] (, "light_asd": [F, 128])}
    other_face: dict[str, np.ndarray] | None  # the other talker's, fitted to F frames (two-talker only)


def talker_of(path: Path) -> str:
    """A clip's talker key: GRID clips by the file's first letters are different talkers only by clip (one each);
    the 9-digit VoxCeleb2 names share their first 6 digits when they come from the same video."""
    stem = path.stem
    if path.parent.name == "voxceleb2_pcavs" and len(stem) == 9 and stem.isdigit():
        return f"vox{stem[:6]}"
    return f"{path.parent.name}/{stem}"


def clip_paths(real: Path) -> list[Path]:
    """The dev clips in the benchmark's order: REAL/grid/*.mpg, then REAL/av/*/*.mp4, each sorted."""
    return sorted((real / "grid").glob("*.mpg")) + sorted((real / "av").glob("*/*.mp4"))


def load_clips(real: Path, cache: Path) -> list[Clip]:
    """Front end on every dev clip (cached in ``cache`` as npz) -> clips sorted by path."""
    from avse.api import Enhancer
    from avse.video.frontend import process

    paths = clip_paths(real)
    enh = None
    clips = []
    cache.mkdir(parents=True, exist_ok=True)
    for p in paths:
        key = cache / f"{p.parent.name}_{p.stem}.npz"
        if key.is_file():
            z = np.load(key)
            audio, feats = z["audio"], z["features"]
        else:
            if enh is None:
                enh = Enhancer("av", fallback=None)
            front = process(p)
            audio = np.asarray(front.audio, dtype=np.float32)
            feats, why, _ = enh.visual_input(front, audio)  # the lips as `avse enhance` gives them (sync shift applied)
            if feats is None:
                raise SystemExit(f"{p}: {why}")
            np.savez(key, audio=audio, features=feats)
        clips.append(Clip(p.stem if p.parent.name == "grid" else f"{p.parent.name}/{p.stem}", talker_of(p), audio, feats))
        print(f"clip {clips[-1].name}: {len(audio) / SR:.1f} s, {len(feats)} frames", flush=True)
    return clips


def add_light_asd(clips: list[Clip], real: Path, enh, cache: Path) -> None:
    """Each clip's Light-ASD embeddings as ``avse enhance`` gives them to a model on that stream (the front end's
    landmarks, its A/V shift applied; ``enh.visual_input`` of such a model's Enhancer), cached in ``cache`` as npy."""
    cache.mkdir(parents=True, exist_ok=True)
    for p, c in zip(clip_paths(real), clips, strict=True):
        key = cache / f"{p.parent.name}_{p.stem}.npy"
        if key.is_file():
            c.light_asd = np.load(key)
            continue
        feats, why, _ = enh.visual_input(p, c.audio)
        if feats is None:
            raise SystemExit(f"{p}: {why}")
        if len(feats) != len(c.features):
            raise SystemExit(f"{p}: {len(feats)} Light-ASD frames for {len(c.features)} lip-feature frames")
        np.save(key, feats)
        c.light_asd = feats


def add_face_crops(clips: list[Clip], real: Path, cache: Path) -> None:
    """Each clip's aligned face crops (``avse.video.roi.face_crops`` of its tracked face, landmarks cached in
    ``cache``), fitted to its lip-feature frames."""
    from bench_sync_expert import real_clips

    found = real_clips(real, cache)
    for p, c, f in zip(clip_paths(real), clips, found, strict=True):
        if f["id"] != f"{p.parent.name}/{p.stem}":
            raise SystemExit(f"face crops of {f['id']} for clip {p}")
        c.face_crops = fit(f["faces"], len(c.features))


def streams(c: Clip, n: int | None = None) -> dict[str, np.ndarray]:
    """A clip's visual streams (and its face crops when loaded), fitted to ``n`` frames when given."""
    out = ({"lip_features": c.features} | ({"light_asd": c.light_asd} if c.light_asd is not None else {})
           | ({"face_crops": c.face_crops} if c.face_crops is not None else {}))
    return out if n is None else {k: fit(v, n) for k, v in out.items()}


def partners(clips: list[Clip], seed: int = 0) -> list[int]:
    """A fixed derangement: clip i's interferer is another talker's clip (seeded shuffle, then a cyclic shift)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    out = [-1] * len(clips)
    for k, i in enumerate(order):
        for step in range(1, len(clips)):
            j = order[(k + step) % len(clips)]
            if clips[j].talker != clips[i].talker:
                out[i] = int(j)
                break
    return out


def fit(x: np.ndarray, n: int) -> np.ndarray:
    """x [N, ...] -> [n, ...], looped when shorter."""
    return x[np.arange(n) % len(x)]


def mix(target: np.ndarray, other: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """target [T] + other [T] at ``snr_db`` (energy ratio), scaled to peak 0.9 -> (mixture [T], reference [T])."""
    g = math.sqrt(float(np.sum(target**2)) / max(float(np.sum(other**2)), 1e-12) / 10 ** (snr_db / 10))
    m = target + g * other
    s = PEAK / max(float(np.abs(m).max()), 1e-9)
    return (m * s).astype(np.float32), (target * s).astype(np.float32)


def turn_audio(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two talkers taking turns: a [Ta], then b [Tb] scaled to a's RMS -> (audio [Ta + Tb], a then silence)."""
    b = b * (np.std(a) / (np.std(b) + 1e-8))
    return np.concatenate([a, b]).astype(np.float32), np.concatenate([a, np.zeros_like(b)]).astype(np.float32)


def turn_item(i: int, c: Clip, o: Clip) -> Item:
    """Condition (d): c's clip, then o's, c's face (its visual streams) held at its last frame while o talks."""
    f = len(c.features)
    nb = max(1, len(o.audio) // SAMPLES_PER_FRAME)
    m, r = turn_audio(fit(c.audio, f * SAMPLES_PER_FRAME), fit(o.audio, nb * SAMPLES_PER_FRAME))
    s = PEAK / max(float(np.abs(m).max()), 1e-9)
    face = {k: np.concatenate([v, np.repeat(v[-1:], nb, axis=0)]) for k, v in streams(c).items()}
    return Item(f"turns_{i:02d}", "turns", None, c.name, o.name, m * s, r * s, face, None)


def build_items(clips: list[Clip], noises: dict[str, np.ndarray], quick: bool,
                conditions: tuple[str, ...] = CONDITIONS) -> list[Item]:
    """The conditions of the dev set (see the module docstring; "turns" only when asked) -> items, deterministic."""
    unknown = set(conditions) - set(ALL_CONDITIONS)
    if unknown:
        raise SystemExit(f"unknown condition(s) {sorted(unknown)}: choose from {', '.join(ALL_CONDITIONS)}")
    items: list[Item] = []
    pair = partners(clips)
    snrs2 = (0.0,) if quick else TWO_TALKER_SNRS
    for i, c in enumerate(clips):
        o = clips[pair[i]]
        n, f = len(c.audio), len(c.features)
        for snr in snrs2:
            m, r = mix(c.audio, fit(o.audio, n), snr)
            items.append(Item(f"2t_{snr:+.0f}_{i:02d}", "two-talker", snr, c.name, o.name, m, r, streams(c),
                              streams(o, f)))
    for i, c in enumerate(clips):
        for k, (nname, z) in enumerate(sorted(noises.items())):
            start = int(np.random.default_rng(1000 * i + k).integers(0, max(1, len(z) - len(c.audio))))
            seg = fit(z[start:], len(c.audio))
            for snr in ((0.0,) if quick else NOISE_SNRS):
                m, r = mix(c.audio, seg, snr)
                items.append(Item(f"nz_{nname}_{snr:+.0f}_{i:02d}", "noise", snr, c.name, nname, m, r, streams(c), None))
    for i, c in enumerate(clips):
        s = PEAK / max(float(np.abs(c.audio).max()), 1e-9)
        a = (c.audio * s).astype(np.float32)
        items.append(Item(f"clean_{i:02d}", "clean", None, c.name, None, a, a, streams(c), None))
    items += [turn_item(i, c, clips[pair[i]]) for i, c in enumerate(clips)]
    return [it for it in items if it.condition in conditions]


def model_methods(specs: dict[str, str], light_asd: Path | None = None,
                  atten_lim_db: float | None = ATTEN_LIM_DB,
                  postfilter: float | None = None, sync: bool = False,
                  separator: str = "separate", shifts: int = 1) -> dict[str, Callable[[Item, str], np.ndarray]]:
    """Shipped or given models -> method(item, visual) -> estimate [T]; visual is "target", "other" or "zero".
    ``light_asd``: the Light-ASD checkpoint a model on its embeddings needs; ``atten_lim_db``: the enhancers'
    attenuation limit (``avse.api.Enhancer``: default the product's, None or 0 none). An Enhancer's method carries
    it as ``.enhancer``. ``postfilter``: each one-output model is also a method "NAME+pf", with the enhancer's
    post-filter at that strength. ``sync``: each audio-visual model is also a method "NAME+sync", with the
    enhancer's ``assign`` "auto" (the items' faces carry their "face_crops") and the blind ``separator`` (a shipped
    name or a checkpoint); "NAME" is the model alone. ``shifts``: every enhancer's models run that many times on
    shifted input and averaged (``Enhancer(shifts=N)``, ``avse enhance --shifts N``)."""
    from avse.api import Enhancer, Separator, load_model

    out: dict[str, Callable[[Item, str], np.ndarray]] = {}
    runs = [(name, spec, None, "av") for name, spec in specs.items()]
    if postfilter:
        runs += [(f"{name}+pf", spec, postfilter, "av") for name, spec in specs.items()]
    if sync:
        runs += [(f"{name}+sync", spec, None, "auto") for name, spec in specs.items()]
    loaded: dict[str, tuple] = {}
    for name, spec, strength, assign in runs:
        if spec not in loaded:
            loaded[spec] = load_model(spec)
        model, info = loaded[spec]
        if (strength is not None and info["n_outputs"] != 1) or (assign != "av" and not info["audio_visual"]):
            continue
        if info["n_outputs"] == 1:
            enh = Enhancer((model, info), fallback=None, light_asd=light_asd, atten_lim_db=atten_lim_db, postfilter=strength,
                           assign=assign, separator=separator, shifts=shifts)

            def run(item: Item, visual: str, enh: Enhancer = enh) -> np.ndarray:
                if not enh.audio_visual:
                    return enh.enhance(item.mixture, SR)
                stream = enh.visual_stream
                if stream not in item.face:
                    raise SystemExit(f"model {enh.info['name']!r} reads {stream}: give --light-asd")
                own = item.face[stream]
                seen = {"target": item.face, "other": item.other_face or {}, "zero": {}}[visual]
                face = {"target": own, "other": seen.get(stream), "zero": np.zeros_like(own)}[visual]
                crops = seen.get("face_crops") if enh.assign != "av" else None
                if enh.assign != "av" and crops is None and visual != "zero":
                    raise SystemExit(f"{item.id}: no face crops for {enh.info['name']!r} with assign {enh.assign!r}")
                return enh.enhance(item.mixture, SR, video=face, face_crops=crops)

            run.audio_visual = enh.audio_visual  # type: ignore[attr-defined]
            run.enhancer = enh  # type: ignore[attr-defined]
        else:
            sep = Separator((model, info), av=None, shifts=shifts)

            def run(item: Item, visual: str, sep: Separator = sep) -> np.ndarray:
                from avse.evaluation.metrics import si_sdr

                outs = sep.separate(item.mixture, SR)  # [S, T]
                scores = [si_sdr(o, item.reference) if np.any(o) else -np.inf for o in outs]  # an output may be silent
                return outs[int(np.argmax(scores))]  # the better output (oracle)

            run.audio_visual = False  # type: ignore[attr-defined]
        out[name] = run
    return out


def run_peers(items: list[Item], peers: list[str], work: Path) -> dict[str, dict[str, np.ndarray]]:
    """Each available peer on every mixture, in the peers' own environment -> {peer: {item id: estimate [T]}}."""
    from avse.audio.io import load_audio, save_wav

    if not PEERS_PY.is_file():
        print(f"peers: skipped (no environment at {PEERS_PY}; run bash bench/peers/setup)", flush=True)
        return {}
    listed = subprocess.run([str(PEERS_PY), str(HERE / "peers" / "run.py"), "--list"], capture_output=True, text=True)
    available = set(listed.stdout.split())
    src = work / "mixtures"
    src.mkdir(parents=True, exist_ok=True)
    for it in items:
        if not (src / f"{it.id}.wav").is_file():
            save_wav(src / f"{it.id}.wav", it.mixture, SR)
    out: dict[str, dict[str, np.ndarray]] = {}
    for peer in peers:
        if peer not in available:
            print(f"peer {peer}: skipped (not available in {PEERS_PY.parent.parent})", flush=True)
            continue
        dst = work / peer
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        fresh = ["--fresh-state"] if peer == "dfn3" else []  # DFN3's state would otherwise run on from file to file
        subprocess.run([str(PEERS_PY), str(HERE / "peers" / "run.py"), peer, str(src), str(dst), *fresh], check=True, env=env)
        out[peer] = {it.id: load_audio(dst / f"{it.id}.wav", SR)[0] for it in items}
        print(f"peer {peer}: {len(items)} items in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def score(estimate: np.ndarray, item: Item, dnsmos, base: dict[str, float] | None) -> dict[str, float]:
    """Metrics of one estimate [T] against the item's reference (SI-SDRi relative to ``base``)."""
    from avse.evaluation.metrics import pesq_wb, si_sdr, stoi

    est = np.asarray(estimate, dtype=np.float32)[: len(item.reference)]
    if len(est) < len(item.reference):
        est = np.pad(est, (0, len(item.reference) - len(est)))
    row: dict[str, float] = {"si_sdr": float(si_sdr(est, item.reference))}
    if base is not None and item.condition != "clean":
        row["si_sdri"] = row["si_sdr"] - base["si_sdr"]
    try:
        row["pesq_wb"] = float(pesq_wb(est, item.reference, SR))
    except Exception:  # PESQ refuses some signals (e.g. no utterance detected)
        row["pesq_wb"] = math.nan
    row["stoi"] = float(stoi(est, item.reference, SR))
    if dnsmos is not None and not (item.condition == "two-talker" and item.snr != 0.0):  # DNSMOS: 0 dB two-talker only
        mos = dnsmos.score(est)
        row.update(dnsmos_sig=mos.sig, dnsmos_bak=mos.bak, dnsmos_ovrl=mos.ovrl)
    return row


def summarize(rows: list[dict], methods: list[str]) -> dict:
    """Mean and 95 % interval per condition (two-talker per SNR, noise per SNR, clean) x method x metric."""
    from avse.evaluation.run import mean_ci

    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = r["condition"] if r["snr"] is None else f"{r['condition']} {r['snr']:+.0f} dB"
        groups.setdefault(key, []).append(r)
        if r["condition"] == "noise":
            groups.setdefault("noise 0-5 dB", []).append(r)
    out: dict = {}
    for key, sub in groups.items():
        out[key] = {}
        for m in methods:
            vals = [r["methods"][m] for r in sub if m in r["methods"]]
            if vals:
                metrics = sorted({k for v in vals for k in v})
                out[key][m] = {k: mean_ci([v.get(k, math.nan) for v in vals]) for k in metrics}
    return out


def visual_contribution(rows: list[dict], av_models: list[str]) -> dict:
    """Per audio-visual model and two-talker SNR: SI-SDRi with the target's face, the other's, none, and how often
    the target's face beats the other's."""
    from avse.evaluation.run import mean_ci

    out: dict = {}
    for m in av_models:
        for snr in sorted({r["snr"] for r in rows if r["condition"] == "two-talker"}):
            sub = [r for r in rows if r["condition"] == "two-talker" and r["snr"] == snr and m in r["methods"]]
            if not sub:
                continue
            t = [r["methods"][m]["si_sdri"] for r in sub]
            o = [r["methods"][f"{m} (other face)"]["si_sdri"] for r in sub]
            z = [r["methods"][f"{m} (no face)"]["si_sdri"] for r in sub]
            out[f"{m} {snr:+.0f} dB"] = {
                "target_face": mean_ci(t), "other_face": mean_ci(o), "zero_visual": mean_ci(z),
                "target_minus_zero": mean_ci(np.subtract(t, z).tolist()),
                "target_minus_other": mean_ci(np.subtract(t, o).tolist()),
                "target_beats_other": float(np.mean(np.greater(t, o))),
            }
    return out


def plot(summary: dict, methods: list[str], path: Path) -> None:
    """One figure: SI-SDRi per condition (bars, 95 % intervals), DNSMOS OVRL in noise, PESQ and STOI on clean input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("two talkers, at once and in turns: SI-SDRi (dB), target's face given",
         [k for k in summary if k.startswith("two-talker")] + [k for k in summary if k == "turns"], "si_sdri"),
        ("real noise SI-SDRi (dB)", [k for k in summary if k.startswith("noise") and "-" not in k.split()[1]], "si_sdri"),
        ("real noise 0-5 dB: DNSMOS OVRL", ["noise 0-5 dB"], "dnsmos_ovrl"),
        ("clean input: PESQ-WB (goal 4.0)", ["clean"], "pesq_wb"),
        ("clean input: STOI (goal 0.98)", ["clean"], "stoi"),
        ("two-talker 0 dB: DNSMOS OVRL", ["two-talker +0 dB"], "dnsmos_ovrl"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(17, 8.5))
    colors = plt.get_cmap("tab20").colors
    for ax, (title, keys, metric) in zip(axes.ravel(), panels):
        keys = [k for k in keys if k in summary]
        shown = [m for m in methods if any(m in summary[k] and metric in summary[k][m] for k in keys)]
        width = 0.8 / max(1, len(shown))
        for j, m in enumerate(shown):
            xs, ys, lo, hi = [], [], [], []
            for i, k in enumerate(keys):
                st = summary[k].get(m, {}).get(metric)
                if st is None or st["mean"] is None:
                    continue
                xs.append(i + (j - (len(shown) - 1) / 2) * width)
                ys.append(st["mean"])
                lo.append(st["mean"] - (st["ci_low"] if st["ci_low"] is not None else st["mean"]))
                hi.append((st["ci_high"] if st["ci_high"] is not None else st["mean"]) - st["mean"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=m, color=colors[j % len(colors)])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([k.replace("two-talker ", "").replace("noise ", "") for k in keys])
        ax.set_title(title, fontsize=10)
        ax.axhline(0, color="k", lw=0.6)
        ax.grid(axis="y", alpha=0.3)
        if metric == "pesq_wb":
            ax.axhline(4.0, color="r", ls="--", lw=0.8)
            ax.set_ylim(1, 4.7)
        if metric == "stoi":
            ax.axhline(0.98, color="r", ls="--", lw=0.8)
            ax.set_ylim(0.6, 1.01)
    # the legend of the panel that shows the most methods (with --conditions, the first panels may be empty)
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes.ravel()), key=lambda hl: len(hl[1]))
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(8, len(labels)), fontsize=8)
    fig.suptitle("avse on real recordings (23 real talking-face clips; means with 95 % intervals)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--models", nargs="*", default=[], help="NAME=PATH checkpoints to score instead of the shipped ones")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers to run ('' for none)")
    ap.add_argument("--dnsmos", type=Path, default=DNSMOS_DIR, help="DNSMOS model folder (skipped when absent)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the front-end cache and peer files")
    ap.add_argument("--quick", action="store_true", help="0 dB only (a third of the items)")
    ap.add_argument("--turns", action="store_true", help="also condition (d), two talkers taking turns")
    ap.add_argument("--conditions", default=None,
                    help=f"comma-separated conditions to run (default: {','.join(CONDITIONS)}, and turns with --turns)")
    ap.add_argument("--light-asd", type=Path, default=LIGHT_ASD,
                    help="Light-ASD checkpoint, for models on its embeddings (default: %(default)s)")
    ap.add_argument("--name", default="real", help="results name: bench/results/NAME.json and NAME.png")
    ap.add_argument("--atten-lim", type=float, default=ATTEN_LIM_DB, metavar="DB",
                    help="the models' attenuation limit in dB, as avse enhance applies it (default: %(default)g; 0: none)")
    ap.add_argument("--no-sync", action="store_true",
                    help="do not score the audio-visual models as NAME+sync (avse enhance's default --assign auto)")
    ap.add_argument("--separator", default="separate",
                    help="the blind two-talker model of NAME+sync, a shipped name or a checkpoint (default: %(default)s)")
    ap.add_argument("--shifts", type=int, default=DEFAULT_SHIFTS, metavar="N",
                    help="the enhancers run their models N times on shifted inputs and average (avse enhance --shifts)")
    ap.add_argument("--landmarks-cache", type=Path, default=Path(tempfile.gettempdir()) / "avse_bench_sync_expert",
                    help="the clips' landmarks for their face crops, shared with bench_assign.py")
    ap.add_argument("--overlap-bar", type=float, default=None, metavar="SHARE",
                    help="NAME+sync takes the blind output only when two voices talk at once on this share of the active "
                         "frames (default: avse.api.ONE_VOICE_OVERLAP; 0: the check without that rule)")
    ap.add_argument("--postfilter", type=float, default=None, metavar="STRENGTH",
                    help="also score each one-output model with the post-filter at this strength, as NAME+pf")
    args = ap.parse_args()

    import torch

    from avse.audio.io import load_audio

    torch.set_num_threads(1)
    if args.overlap_bar is not None:
        import avse.api

        avse.api.ONE_VOICE_OVERLAP = args.overlap_bar
    if not (args.real / "grid").is_dir() and not (args.real / "av").is_dir():
        raise SystemExit(f"no real clips in {args.real} (grid/, av/)")
    work = args.work or Path(tempfile.gettempdir()) / "avse_bench_real"
    t0 = time.perf_counter()
    clips = load_clips(args.real, work / "frontend")
    noises = {p.stem: load_audio(p, SR)[0] for p in sorted((args.real / "noise").glob("*.wav"))}
    specs = dict(s.split("=", 1) for s in args.models) if args.models else {m: m for m in SHIPPED}
    models = model_methods(specs, args.light_asd if args.light_asd.is_file() else None, args.atten_lim, args.postfilter,
                           sync=not args.no_sync, separator=args.separator, shifts=args.shifts)
    if any(m.endswith("+sync") for m in models):
        add_face_crops(clips, args.real, args.landmarks_cache)
    asd = [fn.enhancer for fn in models.values() if getattr(getattr(fn, "enhancer", None), "visual_stream", None) == "light_asd"]
    if asd:
        add_light_asd(clips, args.real, asd[0], work / f"light_asd_{args.light_asd.stem}")
    conditions = (tuple(c for c in args.conditions.split(",") if c) if args.conditions
                  else CONDITIONS + (("turns",) if args.turns else ()))
    items = build_items(clips, noises, args.quick, conditions)
    print(f"{len(clips)} clips, {len(items)} items, front end {time.perf_counter() - t0:.0f} s", flush=True)
    av_models = [m for m, fn in models.items() if getattr(fn, "audio_visual", False)]
    dnsmos = None
    if args.dnsmos.is_dir():
        from avse.evaluation.dnsmos import Dnsmos

        dnsmos = Dnsmos(args.dnsmos)
    else:
        print(f"DNSMOS: skipped (no models in {args.dnsmos})", flush=True)
    peer_out = run_peers(items, [p for p in args.peers.split(",") if p], work / "peers")

    from tqdm import tqdm

    from avse.evaluation.baselines import noisereduce

    rows = []
    for it in tqdm(items, desc="scoring", unit="item"):
        base = score(it.mixture, it, dnsmos, None)
        res: dict[str, dict[str, float]] = {"unprocessed": {**base, "si_sdri": 0.0} if it.condition != "clean" else base}
        res["noisereduce"] = score(noisereduce(it.mixture, None, None, SR), it, dnsmos, base)
        for name, fn in models.items():
            res[name] = score(fn(it, "target"), it, dnsmos, base)
            if name.endswith("+sync"):  # which output avse enhance took
                res[name]["blind_output"] = float(fn.enhancer.last_info.get("talker", {}).get("used") == "blind")
            if name in av_models and it.condition == "two-talker":
                from avse.evaluation.metrics import si_sdr

                for visual, label in (("other", "other face"), ("zero", "no face")):
                    est = fn(it, visual)
                    res[f"{name} ({label})"] = {"si_sdri": float(si_sdr(est, it.reference)) - base["si_sdr"]}
        for peer, outs in peer_out.items():
            res[peer] = score(outs[it.id], it, dnsmos, base)
        if "dfn3" in peer_out:  # DeepFilterNet3 as a noise stage in front of each audio-visual model
            for name in av_models:
                staged = Item(**{**it.__dict__, "mixture": peer_out["dfn3"][it.id]})
                res[f"dfn3 > {name}"] = score(models[name](staged, "target"), it, dnsmos, base)
        rows.append({"id": it.id, "condition": it.condition, "snr": it.snr, "target": it.target, "other": it.other,
                     "seconds": round(len(it.mixture) / SR, 2), "methods": res})
    staged = [f"dfn3 > {m}" for m in av_models] if "dfn3" in peer_out else []
    methods = ["unprocessed", "noisereduce", *models, *[f"{m} ({lbl})" for m in av_models for lbl in ("other face", "no face")],
               *peer_out, *staged]
    summary = summarize(rows, methods)
    contribution = visual_contribution(rows, av_models)
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"{args.name}.png"
    plot(summary, ["unprocessed", "noisereduce", *models, *peer_out, *staged], png)
    brief = {k: {m: {x: round(v[x]["mean"], 3) for x in ("si_sdri", "pesq_wb", "stoi", "dnsmos_ovrl")
                     if x in v and v[x]["mean"] is not None} for m, v in s.items()} for k, s in summary.items()}
    from avse.api import ONE_VOICE_OVERLAP

    save(args.name, {"clips": len(clips), "items": len(items), "models": specs, "atten_lim_db": args.atten_lim,
                     "conditions": list(conditions), "overlap_bar": ONE_VOICE_OVERLAP,
                     "postfilter": args.postfilter, "separator": args.separator, "shifts": args.shifts,
                     "peers": sorted(peer_out),
                     "dnsmos": dnsmos is not None, "seconds": round(time.perf_counter() - t0, 1),
                     "means": brief, "visual_contribution": contribution, "summary": summary, "rows": rows})
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
