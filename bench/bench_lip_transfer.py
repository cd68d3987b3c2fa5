"""Which visual stream carries over from rendered faces to real ones: lips -> speech envelope, trained on synthetic, tested on real.

    python bench/bench_lip_transfer.py [--root data/models] [--cache CACHE] [--real ../shared/data/real] [--steps 1500]
        [--train-limit N] [--light-asd CKPT] [--light-asd-talkset CKPT] [--folds 5] [--seeds 1] [--variants KEY ...]
        [--out NAME]

A separation model can only use the lips if what it learned from rendered faces
still means the same on real ones. This measures that directly and cheaply: a
small lip-feature network (``avse.models.visual.LipsFrontend`` + a linear head,
non-causal, 15-frame context) learns to predict the target's per-frame speech
envelope (log energy of each 40 ms frame, standardised per utterance) from its
lips, on the synthetic corpus's train split. It is then scored, unchanged, by
the mean per-utterance Pearson r between predicted and true envelope on

- the synthetic dev split (in domain), and
- the 23 real talking-face clips (lips from the front end, as ``avse enhance``
  gets them), plus the same with the *other* clip's envelope (the chance level
  of a talker-discriminating cue).

Variants of the visual stream, each trained with the same seed and steps:
``raw`` (the lip features as the shipped models get them), ``norm`` (each
channel minus its per-utterance mean over face frames: ``AVNet
visual_norm="utterance"``), ``norm+aug`` (plus the augmentation of
``avse.training.augment``), ``velocity`` (frame-to-frame differences only), and,
with ``--cache`` (an ``avse prepare`` folder of the corpus: MediaPipe run on the
rendered faces), ``mediapipe+norm+aug``.

Two more visual streams come from a visual encoder trained on *real* faces:
``light_asd`` and ``light_asd_talkset`` are the frozen visual encoder of the
active-speaker detector Light-ASD (``avse.models.light_asd``; its released
AVA and TalkSet-finetuned checkpoints, ``--light-asd`` and
``--light-asd-talkset``): one 128-vector per frame from a 112 x 112 grayscale
face crop (placed by the same landmarks the lip features come from: the
renderer's on the corpus, the front end's on the real clips, with the same A/V
shift), fed to the same head instead of the 82 lip features (``:raw``, and
``:norm`` with each channel's per-utterance mean removed). A missing
checkpoint skips its variants with a message. The embeddings are cached
(``--embed-cache``, default /tmp/avse_light_asd), so a rerun only trains.
``--train-limit N`` takes a fixed random N of the train utterances (the same
items for every variant).

With ``--folds K`` (default 5; 0 = off) each variant's head is also fitted on
the real clips themselves, K folds with the talkers held out (real -> real):
the ceiling for what that visual stream can tell about the envelope of a new
real talker with this head, against which the synthetic -> real number is read.
With ``--seeds N`` every head is trained N times (seeds 0..N-1) and each r is
averaged over them (23 clips make one seed's mean noisy).

Writes bench/results/NAME.json (``--out``, default lip_transfer).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402
from bench_real import REAL, clip_paths, load_clips, partners  # noqa: E402

SEGMENT = 50  # frames per training window (2 s)
LIGHT_ASD = REAL.parents[1] / "models" / "light_asd"  # ../shared/models/light_asd: the released checkpoints
LIP_VARIANTS = ("raw", "velocity", "norm", "norm+aug")


def envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """audio [T] at 16 kHz -> per-frame log energy (dB) of each 640-sample frame, standardised -> float32 [n_frames]."""
    x = np.pad(audio[: n_frames * 640], (0, max(0, n_frames * 640 - len(audio))))
    e = 10 * np.log10(np.mean(x.reshape(n_frames, 640) ** 2, axis=1) + 1e-8)
    e = np.maximum(e, e.max() - 50.0)
    return ((e - e.mean()) / (e.std() + 1e-6)).astype(np.float32)


def split_entries(root: Path, split: str, limit: int | None = None, seed: int = 0) -> list[dict]:
    """The targets of ``split`` (speech-list entries), or a fixed random ``limit`` of them (file order kept; the first
    ``limit`` of one seeded permutation, so a smaller limit takes a subset of a larger one's items)."""
    from avse.data.metadata import load_speech_list, target_speech_list_path

    entries = [e for e in load_speech_list(target_speech_list_path(root)) if e["dataset"] == split]
    if limit is not None and limit < len(entries):
        keep = np.sort(np.random.default_rng(seed).permutation(len(entries))[:limit])
        entries = [entries[i] for i in keep]
    return entries


def synthetic_split(root: Path, split: str, cache: Path | None, entries: list[dict]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features [F, 82], envelope [F]) of each target in ``entries``; features from the landmarks or the cache."""
    from avse.audio.io import load_audio
    from avse.data.datasets import target_lip_features
    from avse.data.metadata import target_wav_path

    out = []
    for e in entries:
        if cache is None:
            feats = target_lip_features(root, split, e["wavfile"])
        else:
            from avse.data.prepare import cache_path, load_cached

            feats = load_cached(cache_path(cache, e["wavfile"], split), keys=("features",))["features"]
        audio, _ = load_audio(target_wav_path(root, split, e["wavfile"]), 16000)
        out.append((np.asarray(feats, dtype=np.float32), envelope(audio, len(feats))))
    return out


def load_encoders(specs: dict[str, Path]) -> dict:
    """{source name: checkpoint} -> {source name: frozen Light-ASD visual encoder}; a missing file is skipped, said once."""
    from avse.models.light_asd import load_visual_encoder

    out = {}
    for name, path in specs.items():
        if not Path(path).is_file():
            print(f"{name}: no checkpoint at {path}, its variants are skipped", flush=True)
            continue
        out[name] = load_visual_encoder(path)
    return out


class Timer:
    """Seconds of CPU spent on Light-ASD features (not cache reads): decoding and cropping, and each encoder,
    and the video seconds they covered."""

    def __init__(self) -> None:
        self.frames = 0
        self.seconds: dict[str, float] = {"crops": 0.0}
        self.frames_per: dict[str, int] = {"crops": 0}

    def add(self, part: str, seconds: float, frames: int) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds
        self.frames_per[part] = self.frames_per.get(part, 0) + frames

    def summary(self) -> dict:
        """Per part: seconds and seconds per second of video (25 fps)."""
        return {part: {"video_seconds": round(self.frames_per[part] / 25.0, 1), "seconds": round(sec, 1),
                       "per_video_second": round(sec / (self.frames_per[part] / 25.0), 3) if self.frames_per[part] else None}
                for part, sec in self.seconds.items()}


def embed_video(video: Path, landmarks: dict, encoders: dict, want: list[str], timer: Timer) -> dict[str, np.ndarray]:
    """Light-ASD crops of ``video`` (one per landmark frame) through each encoder in ``want`` -> {name: float32 [N, 128]}."""
    from avse.models.light_asd import crops
    from avse.video.io import iter_grid_frames

    t0 = time.perf_counter()
    n = len(landmarks["lips"])
    faces = crops(iter_grid_frames(video, max_frames=n), landmarks)  # [N, 112, 112]
    timer.add("crops", time.perf_counter() - t0, n)
    out = {}
    for name in want:
        t0 = time.perf_counter()
        out[name] = encoders[name].embed(faces)
        timer.add(name, time.perf_counter() - t0, n)
    return out


def light_asd_split(root: Path, split: str, entries: list[dict], encoders: dict, cache: Path,
                    timer: Timer) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Light-ASD embeddings [F, 128] and envelopes [F] of ``entries`` -> {encoder name: items}; cached per item."""
    from avse.audio.io import load_audio
    from avse.data.metadata import target_landmarks_path, target_video_path, target_wav_path
    from avse.video.landmarks import read_landmarks

    out: dict[str, list] = {name: [] for name in encoders}
    t_last = time.perf_counter()
    for k, e in enumerate(entries):
        files = {name: cache / name / split / f"{e['wavfile']}.npy" for name in encoders}
        want = [name for name, f in files.items() if not f.is_file()]
        embs = {name: np.load(f) for name, f in files.items() if name not in want}
        if want:
            lm = read_landmarks(target_landmarks_path(root, split, e["wavfile"]))
            new = embed_video(target_video_path(root, split, e["wavfile"]), lm, encoders, want, timer)
            for name, emb in new.items():
                files[name].parent.mkdir(parents=True, exist_ok=True)
                np.save(files[name], emb)
            embs.update(new)
        audio, _ = load_audio(target_wav_path(root, split, e["wavfile"]), 16000)
        n = len(next(iter(embs.values())))
        env = envelope(audio, n)
        for name in encoders:
            out[name].append((embs[name], env))
        if time.perf_counter() - t_last > 60:
            t_last = time.perf_counter()
            print(f"light-asd {split}: {k + 1}/{len(entries)} items, {timer.summary()}", flush=True)
    return out


def light_asd_real(real: Path, n_frames: list[int], encoders: dict, cache: Path, timer: Timer) -> dict[str, list[np.ndarray]]:
    """Light-ASD embeddings of each real clip, on the front end's landmarks and moved by its A/V shift as the lip
    features are (``Enhancer.visual_input``) -> {encoder name: [float32 [F, 128] per clip]}; cached per clip."""
    from avse.api import shift_frames
    from avse.video.frontend import process

    out: dict[str, list] = {name: [] for name in encoders}
    for p, n in zip(clip_paths(real), n_frames):
        files = {name: cache / name / "real" / f"{p.parent.name}_{p.stem}.npy" for name in encoders}
        want = [name for name, f in files.items() if not f.is_file()]
        embs = {name: np.load(f) for name, f in files.items() if name not in want}
        if want:
            front = process(p)  # as load_clips ran it: the talker's landmarks and the A/V offset
            new = embed_video(p, front.landmarks, encoders, want, timer)
            shift = int(round(front.sync[0] / 40.0)) if front.sync[2] and not np.isnan(front.sync[0]) else 0
            for name, emb in new.items():
                emb = shift_frames(emb, shift) if shift else emb
                files[name].parent.mkdir(parents=True, exist_ok=True)
                np.save(files[name], emb)
                embs[name] = emb
        for name in encoders:
            emb = embs[name]
            if len(emb) != n:
                raise SystemExit(f"{p}: {len(emb)} Light-ASD frames for {n} lip-feature frames")
            out[name].append(emb)
    return out


def stream_of(variant: str) -> str:
    """The deterministic visual stream of a variant: "norm+aug" -> "norm", "raw" -> "raw"."""
    return variant.split("+")[0]


def transform(feats: np.ndarray, variant: str) -> np.ndarray:
    """The visual stream of a variant: features [F, D] -> [F, D] (normalisation and velocities; no randomness)."""
    import torch

    from avse.models.avnet import normalize_visual

    variant = stream_of(variant)
    if variant == "raw":
        return feats
    if variant == "velocity":
        v = np.diff(feats, axis=0, prepend=feats[:1])
        return np.where(np.any(feats != 0, axis=1, keepdims=True), v, 0).astype(np.float32)
    return normalize_visual(torch.from_numpy(feats.T[None]), causal=False)[0].numpy().T


def train(data: list[tuple[np.ndarray, np.ndarray]], variant: str, steps: int, seed: int = 0):
    """A LipsFrontend + linear head trained on random 2 s windows of ``data`` (features [F, D], envelope [F]) -> the
    model (eval mode)."""
    import torch

    from avse.models.visual import LipsFrontend, LipsFrontendConfig
    from avse.training.augment import augment_lip_features

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_features = data[0][0].shape[1]  # 82 lip features, or 128 for a Light-ASD embedding
    front = LipsFrontend(LipsFrontendConfig(n_features=n_features, channels=64, n_blocks=3))  # [B, F, D] -> [B, 64, F]
    head = torch.nn.Conv1d(64, 1, 1)
    net = torch.nn.Sequential(front, head)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    usable = [d for d in data if len(d[0]) >= SEGMENT]
    for _ in range(steps):
        xs, ys = [], []
        for i in rng.integers(0, len(usable), 16):
            f, e = usable[i]
            if "aug" in variant:
                f = augment_lip_features(f, rng)
            f = transform(f, variant)
            s = int(rng.integers(0, len(f) - SEGMENT + 1))
            xs.append(f[s : s + SEGMENT])
            ys.append(e[s : s + SEGMENT])
        x = torch.from_numpy(np.stack(xs))  # [B, F, 82]
        y = torch.from_numpy(np.stack(ys))  # [B, F]
        pred = net(x)[:, 0]  # [B, F]
        loss = torch.mean((pred - y) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def correlations(net, feats_list: list[np.ndarray], envs: list[np.ndarray], variant: str) -> list[float]:
    """Pearson r between the predicted envelope of each features [F, D] and its envelope [F] -> one r per item."""
    import torch

    out = []
    with torch.no_grad():
        for f, e in zip(feats_list, envs):
            pred = net(torch.from_numpy(transform(f, variant))[None])[0, 0].numpy()
            n = min(len(pred), len(e))
            out.append(float(np.corrcoef(pred[:n], e[:n])[0, 1]))
    return out


def real_folds(talkers: list[str], k: int, seed: int = 0) -> list[int]:
    """Each clip's fold (0..k-1): the talkers are shuffled (seeded) and dealt round-robin, so a talker's clips share one."""
    names = sorted(set(talkers))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: n % k for n, i in enumerate(order)}
    return [fold_of[t] for t in talkers]


def real_to_real(feats: list[np.ndarray], envs: list[np.ndarray], other_env: list[np.ndarray], folds: list[int],
                 variant: str, steps: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """The same head fitted on the real clips of all folds but one, scored on that one, for every fold
    -> (r per clip, r against the other clip's envelope per clip)."""
    r = [float("nan")] * len(feats)
    r_other = [float("nan")] * len(feats)
    for f in sorted(set(folds)):
        held = [i for i, g in enumerate(folds) if g == f]
        net = train([(feats[i], envs[i]) for i, g in enumerate(folds) if g != f], variant, steps, seed)
        for i, a, b in zip(held, correlations(net, [feats[i] for i in held], [envs[i] for i in held], variant),
                           correlations(net, [feats[i] for i in held], [other_env[i] for i in held], variant)):
            r[i], r_other[i] = a, b
    return r, r_other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("data/models"))
    ap.add_argument("--cache", type=Path, default=None, help="avse prepare folder of ROOT (MediaPipe lips of the rendered faces)")
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--work", type=Path, default=Path("/tmp/avse_bench_real"))
    ap.add_argument("--train-limit", type=int, default=None, help="a fixed random N of the train utterances (default all)")
    ap.add_argument("--light-asd", type=Path, default=LIGHT_ASD / "pretrain_AVA_CVPR.model",
                    help="Light-ASD checkpoint (AVA) for the light_asd variants (default: %(default)s)")
    ap.add_argument("--light-asd-talkset", type=Path, default=LIGHT_ASD / "finetuning_TalkSet.model",
                    help="Light-ASD checkpoint fine-tuned on TalkSet for the light_asd_talkset variants (default: %(default)s)")
    ap.add_argument("--embed-cache", type=Path, default=Path("/tmp/avse_light_asd"), help="where Light-ASD embeddings are cached")
    ap.add_argument("--folds", type=int, default=5, help="real -> real folds by talker (0: skip)")
    ap.add_argument("--seeds", type=int, default=1, help="train each head with seeds 0..N-1; r averaged over them")
    ap.add_argument("--variants", nargs="+", default=None,
                    help="only these, as SOURCE:VARIANT (landmarks:raw, light_asd:norm, ...), or a lip variant (raw) or a "
                         "Light-ASD source (light_asd = light_asd:raw)")
    ap.add_argument("--out", default="lip_transfer", help="result name: bench/results/NAME.json (default %(default)s)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    clips = load_clips(args.real, args.work / "frontend")
    real_env = [envelope(c.audio, len(c.features)) for c in clips]
    other = partners(clips)
    other_env = [np.resize(real_env[j], len(real_env[i])) for i, j in enumerate(other)]
    folds = real_folds([c.talker for c in clips], args.folds) if args.folds > 1 else None

    variants = [("landmarks", v) for v in LIP_VARIANTS]
    if args.cache is not None:
        variants += [("mediapipe", "norm"), ("mediapipe", "norm+aug")]
    variants += [(name, v) for name in ("light_asd", "light_asd_talkset") for v in ("raw", "norm")]
    if args.variants is not None:
        wanted = set()
        for key in args.variants:
            if ":" in key:
                wanted.add(tuple(key.split(":", 1)))
            elif key in LIP_VARIANTS:
                wanted.add(("landmarks", key))
            else:
                wanted.add((key, "raw"))
        unknown = wanted - set(variants)
        if unknown:
            raise SystemExit(f"unknown variants: {sorted(':'.join(u) for u in unknown)}")
        variants = [v for v in variants if v in wanted]

    train_entries = split_entries(args.root, "train", args.train_limit)
    dev_entries = split_entries(args.root, "dev")
    needed = {src for src, _ in variants}
    sources: dict[str, tuple] = {}  # name -> (train items, dev items, real features per clip)
    if "landmarks" in needed:
        sources["landmarks"] = (synthetic_split(args.root, "train", None, train_entries),
                                synthetic_split(args.root, "dev", None, dev_entries), [c.features for c in clips])
    if "mediapipe" in needed:
        sources["mediapipe"] = (synthetic_split(args.root, "train", args.cache, train_entries),
                                synthetic_split(args.root, "dev", args.cache, dev_entries), [c.features for c in clips])
    extraction = None
    specs = {"light_asd": args.light_asd, "light_asd_talkset": args.light_asd_talkset}
    encoders = load_encoders({name: path for name, path in specs.items() if name in needed})
    if encoders:
        timer = Timer()
        real_embs = light_asd_real(args.real, [len(c.features) for c in clips], encoders, args.embed_cache, timer)
        tr = light_asd_split(args.root, "train", train_entries, encoders, args.embed_cache, timer)
        dev = light_asd_split(args.root, "dev", dev_entries, encoders, args.embed_cache, timer)
        for name in encoders:
            sources[name] = (tr[name], dev[name], real_embs[name])
        extraction = timer.summary()
        print(f"light-asd features: {extraction}", flush=True)
    variants = [v for v in variants if v[0] in sources]

    results = {}
    for src, variant in variants:
        tr, dev, real_feats = sources[src]
        t1 = time.perf_counter()
        key = f"{src}:{variant}"
        runs: dict[str, list] = {"dev": [], "real": [], "other": [], "rr": [], "rr_other": []}  # per seed: r per item
        for seed in range(args.seeds):
            net = train(tr, variant, args.steps, seed)
            runs["dev"].append(correlations(net, [f for f, _ in dev], [e for _, e in dev], variant))
            runs["real"].append(correlations(net, real_feats, real_env, variant))
            runs["other"].append(correlations(net, real_feats, other_env, variant))
            if folds is not None:
                rr, rr_other = real_to_real(real_feats, real_env, other_env, folds, variant, args.steps, seed)
                runs["rr"].append(rr)
                runs["rr_other"].append(rr_other)
        r_real = np.mean(runs["real"], axis=0)  # [clips], mean over seeds
        r_other = np.mean(runs["other"], axis=0)
        results[key] = {
            "synthetic_dev_r": float(np.mean(runs["dev"])),
            "real_r": float(np.mean(r_real)),
            "real_r_other_talker": float(np.mean(r_other)),
            "real_own_beats_other": float(np.mean(np.greater(r_real, r_other))),
            "real_r_per_clip": [round(float(r), 3) for r in r_real],
        }
        if args.seeds > 1:
            results[key]["per_seed"] = {name: [round(float(np.mean(r)), 4) for r in rs] for name, rs in runs.items() if rs}
        line = (f"{key:28s} synthetic dev r={results[key]['synthetic_dev_r']:.3f}  real r={results[key]['real_r']:.3f}  "
                f"(other talker {results[key]['real_r_other_talker']:.3f}, own > other on "
                f"{results[key]['real_own_beats_other']:.0%})")
        if folds is not None:
            rr = np.mean(runs["rr"], axis=0)
            results[key].update({
                "real_to_real_r": float(np.mean(rr)),
                "real_to_real_r_other_talker": float(np.mean(runs["rr_other"])),
                "real_to_real_r_per_clip": [round(float(r), 3) for r in rr],
            })
            line += f"  real->real r={np.mean(rr):.3f} (other {np.mean(runs['rr_other']):.3f})"
        results[key]["seconds"] = round(time.perf_counter() - t1, 1)
        print(line, flush=True)
    save(args.out, {"root": str(args.root), "steps": args.steps, "seeds": args.seeds, "train_items": len(train_entries),
                    "train_limit": args.train_limit, "dev_items": len(dev_entries), "clips": len(clips),
                    "real_folds": args.folds if folds is not None else None, "light_asd_features": extraction,
                    "results": results, "seconds": round(time.perf_counter() - t0, 1)})


if __name__ == "__main__":
    main()
