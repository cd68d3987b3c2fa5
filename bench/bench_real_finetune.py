"""Real faces in training, cross-validated by talker: fine-tune ``av`` on some real dev clips, measure it on the others.

    python bench/bench_real_finetune.py [--train all|visual] [--steps 400] [--real-batch 4] [--corpus-batch 4]
                                        [--lr 1e-4] [--folds 5] [--model av] [--recipe configs/real/av_recognised.yaml]
                                        [--real ../shared/data/real] [--work DIR] [--first K] [--name NAME]

The real dev set (bench_real.py: 23 clips, about 22 talkers) is split into ``--folds``
folds by talker (a seeded shuffle of the talkers, dealt in turn). For each fold the
model starts from ``--model`` and trains ``--steps`` steps on batches of two halves:

- ``--corpus-batch`` items of the recipe's own training data (``--recipe``: its corpus,
  mixing, clean items and lip augmentation), so the model keeps what it learned there;
- ``--real-batch`` items cut from the other folds' clips: a 2 s window of a clip with its
  own lip features (as ``avse enhance`` gives them, with the recipe's lip augmentation),
  mixed with another talker's clip at -7.5 to +7.5 dB, or alone (one item in four).

``--train all`` trains every weight (AdamW, cosine decay to a tenth); ``--train visual``
only the lip encoder (``visual_frontend`` and ``visual_proj``): the separator stays as it
is and only what it reads from the lips can change.

Then the held-out fold's clips, whose talkers the run never heard or saw, are mixed
with each other (each with the next clip of another talker in the fold) at -5, 0 and
+5 dB, and given to the model before and after, with the target's face, the other
talker's and an all-zero visual stream (the model alone, on the whole clip); each clip
is also passed alone (SI-SDR, PESQ-WB and STOI against the input). Paired differences
(after - before) with 95 % Student-t intervals, over all folds.

Writes bench/results/NAME.json (every item, per-fold losses, summary) and NAME.png.
Needs the real clips (skips with a message when they are absent) and the recipe's corpus.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402
from bench_real import PEAK, REAL, SR, Clip, fit, load_clips, mix  # noqa: E402
from bench_real_noise import mean_ci as ci  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SNRS = (-5.0, 0.0, 5.0)
SEGMENT = 50  # frames: 2 s windows, as the recipes train
VISUAL = ("visual_frontend.", "visual_proj.")


def talker_folds(talkers: list[str], n: int, seed: int = 0) -> list[list[int]]:
    """Each clip's talker [C] -> clip indices in ``n`` folds by talker (a seeded shuffle of the sorted talkers, dealt
    in turn): n lists."""
    keys = sorted(set(talkers))
    order = np.random.default_rng(seed).permutation(len(keys))
    fold = {keys[j]: k % n for k, j in enumerate(order)}
    return [[i for i, t in enumerate(talkers) if fold[t] == f] for f in range(n)]


def _window(c: Clip, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random SEGMENT-frame window of clip ``c`` -> (audio float64 [SEGMENT * 640], lip features [SEGMENT, D])."""
    feats = np.nan_to_num(c.features)
    n = min(len(feats), len(c.audio) // 640)
    start = int(rng.integers(0, max(1, n - SEGMENT + 1)))
    audio = c.audio[start * 640 : (start + SEGMENT) * 640].astype(np.float64)
    f = feats[start : start + SEGMENT]
    if len(f) < SEGMENT:
        audio = np.pad(audio, (0, SEGMENT * 640 - len(audio)))
        f = np.concatenate([f, np.repeat(f[-1:], SEGMENT - len(f), 0)])
    return audio, f


def real_item(clips: list[Clip], train: list[int], rng: np.random.Generator, augment) -> tuple[np.ndarray, ...]:
    """One training item from the clips ``train`` -> (mixture [T], target [T], lip features [F, D]), float32, peak 0.9."""
    from avse.training.augment import augment_lip_features

    c = clips[int(rng.choice(train))]
    target, feats = _window(c, rng)
    if rng.random() < 0.25:  # the talker alone
        mixture = target.copy()
    else:
        others = [j for j in train if clips[j].talker != c.talker]
        o = clips[int(rng.choice(others))]
        k = int(rng.integers(0, max(1, len(o.audio) - len(target))))
        other = np.resize(o.audio[k:].astype(np.float64), len(target))
        snr = rng.uniform(-7.5, 7.5)
        g = math.sqrt(float(np.sum(target**2)) / max(float(np.sum(other**2)), 1e-12) / 10 ** (snr / 10))
        mixture = target + g * other
    s = PEAK / max(float(np.abs(mixture).max()), float(np.abs(target).max()), 1e-9)
    if augment is not None:
        feats = augment_lip_features(feats.astype(np.float32), rng, augment)
    return (mixture * s).astype(np.float32), (target * s).astype(np.float32), feats.astype(np.float32)


def eval_items(clips: list[Clip], held: list[int]) -> list[dict]:
    """The held-out fold's items: each clip with the next clip of another talker in the fold at SNRS, and alone."""
    items = []
    for k, i in enumerate(held):
        c = clips[i]
        face = np.nan_to_num(c.features).astype(np.float32)
        others = [j for j in held[k + 1 :] + held[:k] if clips[j].talker != c.talker]
        if others:
            o = clips[others[0]]
            other_face = fit(np.nan_to_num(o.features), len(face)).astype(np.float32)
            for snr in SNRS:
                m, r = mix(c.audio, fit(o.audio, len(c.audio)), snr)
                items.append({"id": f"{c.name}+{o.name}@{snr:+.0f}", "snr": snr, "mixture": m, "reference": r,
                              "faces": {"target": face, "other": other_face, "zero": np.zeros_like(face)}})
        a = (c.audio * PEAK / max(float(np.abs(c.audio).max()), 1e-9)).astype(np.float32)
        items.append({"id": f"{c.name}@clean", "snr": None, "mixture": a, "reference": a, "faces": {"target": face}})
    return items


def evaluate(model, items: list[dict]) -> list[dict]:
    """The model alone on every item -> per item {face: SI-SDRi (clean: SI-SDR, PESQ-WB, STOI against the input)}."""
    import torch

    from avse.evaluation.metrics import pesq_wb, si_sdr, stoi

    model.eval()
    out = []
    with torch.no_grad():
        for it in items:
            x = torch.from_numpy(it["mixture"])[None]
            row: dict = {}
            for name, face in it["faces"].items():
                y = model.estimates(x, torch.from_numpy(face).T[None])[0, 0].numpy()[: len(it["reference"])]
                if it["snr"] is None:
                    row.update(si_sdr=float(si_sdr(y, it["reference"])), pesq_wb=float(pesq_wb(y, it["reference"], SR)),
                               stoi=float(stoi(y, it["reference"], SR)))
                else:
                    row[name] = float(si_sdr(y, it["reference"]) - si_sdr(it["mixture"], it["reference"]))
            out.append(row)
    return out


def finetune(model, clips: list[Clip], train: list[int], args, recipe: dict, seed: int) -> list[float]:
    """Train ``model`` in place for ``args.steps`` steps (see the module docstring) -> the loss every 50 steps."""
    import torch

    from avse.training.data import AvseDataModule
    from avse.training.losses import neg_si_sdr

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = dict(recipe["data"], batch_size=max(1, args.corpus_batch))
    data["root"] = str((ROOT / data["root"]).resolve()) if not Path(data["root"]).is_absolute() else data["root"]
    dm = AvseDataModule(**data, seed=seed)
    dm.setup("fit")
    assert dm.train_set is not None
    augment = dm.augment  # the recipe's lip augmentation (None: none)
    sampler = torch.utils.data.RandomSampler(dm.train_set, generator=torch.Generator().manual_seed(seed))
    epoch, batches = 0, None
    model.train()
    for name, p in model.named_parameters():
        p.requires_grad_(args.train == "all" or name.startswith(VISUAL))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr)
    losses, t0 = [], time.time()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / args.steps)))
        parts = []
        if args.corpus_batch:
            b = next(batches, None) if batches is not None else None
            if b is None:
                dm.train_set.set_epoch(epoch)
                batches = iter(dm._loader(dm.train_set, args.corpus_batch, sampler))
                epoch += 1
                b = next(batches)
            parts.append((b["mixture"], b["target"], b["features"]))
        if args.real_batch:
            r = [real_item(clips, train, rng, augment) for _ in range(args.real_batch)]
            parts.append(tuple(torch.from_numpy(np.stack([x[k] for x in r])) for k in range(3)))
        mixture, target, feats = (torch.cat([p[k] for p in parts]) for k in range(3))
        est = model.estimates(mixture, feats.transpose(1, 2))[:, 0]
        loss = neg_si_sdr(est, target, max_db=recipe.get("loss_max_db")).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            losses.append(round(float(loss), 3))
            print(f"  step {step}: loss {loss.item():.2f} ({time.time() - t0:.0f} s)", flush=True)
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def summarize(rows: list[dict]) -> dict:
    """Per SNR: the target's SI-SDRi before / after and its change, the lips' steer (target minus other face) before /
    after and its change, target minus zero lips, the share the target's face wins; clean: SI-SDR, PESQ-WB, STOI."""
    out: dict = {}
    for snr in SNRS:
        rs = [r for r in rows if r["snr"] == snr]
        if not rs:
            continue
        s: dict = {}
        for when in ("before", "after"):
            s[when] = {"target": ci([r[when]["target"] for r in rs]),
                       "steer": ci([r[when]["target"] - r[when]["other"] for r in rs]),
                       "target_minus_zero": ci([r[when]["target"] - r[when]["zero"] for r in rs]),
                       "target_wins": round(float(np.mean([r[when]["target"] > r[when]["other"] for r in rs])), 3)}
        s["change"] = {"target": ci([r["after"]["target"] - r["before"]["target"] for r in rs]),
                       "steer": ci([(r["after"]["target"] - r["after"]["other"]) - (r["before"]["target"] - r["before"]["other"])
                                    for r in rs])}
        out[f"{snr:+.0f}"] = s
    clean = [r for r in rows if r["snr"] is None]
    if clean:
        out["clean"] = {when: {m: ci([r[when][m] for r in clean]) for m in ("si_sdr", "pesq_wb", "stoi")}
                        for when in ("before", "after")}
    return out


def plot(summary: dict, path: Path, title: str) -> None:
    """Two panels: the target's SI-SDRi and the lips' steer, before and after, per SNR, with 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snrs = [k for k in summary if k != "clean"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label in zip(axes, ("target", "steer"), ("target's face: SI-SDRi (dB)",
                                                           "lips' steer: target's face minus other's (dB)")):
        for k, when in enumerate(("before", "after")):
            means = [summary[s][when][key]["mean"] for s in snrs]
            errs = [summary[s][when][key]["ci95"] or 0.0 for s in snrs]
            ax.bar(np.arange(len(snrs)) + (k - 0.5) * 0.38, means, 0.38, yerr=errs, capsize=3,
                   label="before" if when == "before" else "after fine-tuning")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(np.arange(len(snrs)), [f"{s} dB" for s in snrs])
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--model", default="av", help="the model to start from (a shipped name or an .avse.pt)")
    ap.add_argument("--recipe", type=Path, default=ROOT / "configs" / "real" / "av_recognised.yaml",
                    help="the recipe whose corpus, mixing and augmentation fill the corpus half of each batch")
    ap.add_argument("--train", choices=("all", "visual"), default="all")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--real-batch", type=int, default=4)
    ap.add_argument("--corpus-batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--first", type=int, default=None, metavar="K", help="run only the first K folds (a quick look)")
    ap.add_argument("--work", type=Path, default=None, help="the front-end cache folder (bench_real.py's by default)")
    ap.add_argument("--name", default=None, help="results name (default real_finetune_TRAIN)")
    args = ap.parse_args()
    if not (args.real / "grid").is_dir():
        print(f"no real clips at {args.real}: nothing to measure")
        return
    import torch

    from avse.api import load_model
    from avse.training.recipe import load_recipe

    torch.set_num_threads(2)
    work = args.work or Path(tempfile.gettempdir()) / "avse_bench_real"
    clips = load_clips(args.real, work / "frontend")
    folds = talker_folds([c.talker for c in clips], args.folds)
    recipe = load_recipe(args.recipe)
    base, info = load_model(args.model)
    if not info["audio_visual"]:
        raise SystemExit(f"{args.model}: not an audio-visual model")
    rows, losses, t0 = [], [], time.time()
    for f, held in enumerate(folds[: args.first]):
        train = [i for i in range(len(clips)) if i not in held]
        print(f"fold {f}: held out {[clips[i].name for i in held]}", flush=True)
        items = eval_items(clips, held)
        before = evaluate(base, items)
        model = copy.deepcopy(base)
        losses.append(finetune(model, clips, train, args, recipe, seed=1000 + f))
        after = evaluate(model, items)
        rows += [{"fold": f, "id": it["id"], "snr": it["snr"], "before": b, "after": a}
                 for it, b, a in zip(items, before, after)]
        zero = [r for r in rows if r["snr"] == 0.0]
        print(f"fold {f} done: 0 dB target {np.mean([r['after']['target'] - r['before']['target'] for r in zero]):+.2f} dB "
              f"so far", flush=True)
    summary = summarize(rows)
    name = args.name or f"real_finetune_{args.train}"
    plot(summary, RESULTS / f"{name}.png", f"{args.model} fine-tuned on real clips ({args.train} weights, "
         f"{args.steps} steps), {len(folds[: args.first])} of {args.folds} folds by talker: held-out talkers")
    save(name, {"model": args.model, "recipe": str(args.recipe.relative_to(ROOT) if args.recipe.is_relative_to(ROOT) else args.recipe),
                "train": args.train, "steps": args.steps, "real_batch": args.real_batch,
                "corpus_batch": args.corpus_batch, "lr": args.lr,
                "folds": [[clips[i].name for i in fold] for fold in folds], "losses": losses,
                "seconds": round(time.time() - t0, 1), "summary": summary, "rows": rows})


if __name__ == "__main__":
    main()
