"""Real faces for the talking-face generator, cross-validated by talker: fine-tune it on some real clips, measure the rest.

    python bench/bench_talk_finetune.py [--steps 300] [--batch 4] [--lr 1e-4] [--sync 0.03] [--folds 5] [--first K]
                                        [--model PATH] [--light-asd PATH] [--real ../shared/data/real]
                                        [--landmarks-cache DIR] [--out NAME]

The generator learned from drawn faces only, which have no teeth, tongue or dark mouth
cavity, and on real faces it opens the mouth much less than the real videos do
(bench_talk.py). The real dev clips (23, about 22 talkers) are the only real talking
faces here, so they are split into ``--folds`` folds by talker (bench_real_finetune.py's
folds). For each fold the generator (``--model``, default the shipped one) trains
``--steps`` steps on the other folds' clips: items of 5 aligned face crops with their
speech and a reference frame from elsewhere in the clip (``avse.talking.train.FaceWindows``
on the crops in memory, colour change and flip as in training), the recipe's losses
without the discriminator (whose weights are not shipped): L1 on the lower face, the
orthogonality of the codes, and the shipped lip-sync expert's loss (``--sync``; 0: off).
The batches' clips are seeded; their windows and augmentation are drawn unseeded, as in
training, so a rerun differs a little.

The held-out fold's clips, whose talkers it never saw, are then generated before and after
(identity frame: the clip's first; speech: the clip's own; upper face and pose from the
clip's frames) and measured as bench_talk.py measures them, with its baselines: LSE-D /
LSE-C from the shipped expert, the MediaPipe lip distance to the real frames, Light-ASD's
speaking score (when its weights are there), PSNR / SSIM of the lower face and identity.

Writes bench/results/NAME.json (every clip, summary before / after with bench_talk.py's goal
checks, paired changes) and NAME.png. Needs the real clips; prints a message and stops when
they are absent.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402
from bench_real import talker_of  # noqa: E402
from bench_real_finetune import talker_folds  # noqa: E402
from bench_talk import BETTER, LIGHT_ASD, REAL, beats, closer, mean_ci, measure, plot, real_clips  # noqa: E402

METHODS = ("real", "still", "energy", "ours")
SYNC = ("lse_d", "lse_c", "lip_distance", "asd")


def finetune(talk, clips: list[tuple[str, np.ndarray, np.ndarray]], train: list[int], args, seed: int, expert):
    """A copy of ``talk``'s generator trained on the clips ``train`` (see the module docstring) -> (TalkingFace, losses).

    ``expert``: the frozen lip-sync expert of the sync loss (used when ``args.sync`` > 0)."""
    import torch
    from torch.utils.data import default_collate

    from avse.talking.generate import TalkingFace
    from avse.talking.train import FaceWindows, TalkTrainConfig, _masked_l1, frames_sync_loss, orthogonality_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(talk.net).train()
    net.generator.noise_mode = "random"
    ds = FaceWindows([(clips[i][1], clips[i][2]) for i in train], frames=5, augment=True, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.5, 0.99))
    losses, t0 = [], time.time()
    for step in range(args.steps):
        batch = default_collate([ds[int(i)] for i in rng.integers(0, len(ds), args.batch)])
        out = net(batch["audio"], batch["reference"], batch["faces"])
        fake, real = out["frames"], batch["faces"]
        # the generator's terms of TalkingFaceModule.training_step, less the discriminator's (L1, orthogonality, sync)
        loss = _masked_l1(fake, real, net.mask) + TalkTrainConfig.orthogonality * orthogonality_loss(out)
        if args.sync > 0:
            loss = loss + args.sync * frames_sync_loss(expert, fake, batch["audio_clean"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            losses.append(round(float(loss), 4))
            print(f"  step {step}: loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    net.generator.noise_mode = "const"
    return TalkingFace(net.eval(), talk.extra), losses


def summarize(rows: list[dict], which: str, measures: tuple[str, ...]) -> dict:
    """Per method (``which``'s generator as "ours") the mean and 95 % interval of every measure."""
    return {k: {m: mean_ci([r[which if k == "ours" else k][m] for r in rows]) for m in measures} for k in METHODS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="talking-face checkpoint to start from (default: the shipped one)")
    ap.add_argument("--light-asd", type=Path, default=LIGHT_ASD, help="Light-ASD weights (skipped when absent)")
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--landmarks-cache", type=Path, default=Path("/tmp/avse_bench_sync_expert"),
                    help="where the real clips' landmarks are kept between runs (shared with bench_talk.py)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--sync", type=float, default=0.03, help="weight of the lip-sync expert's loss (0: off)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--first", type=int, default=None, metavar="K", help="run only the first K folds (a quick look)")
    ap.add_argument("--out", default="talk_finetune", help="result name under bench/results (default: %(default)s)")
    args = ap.parse_args()
    if not (args.real / "grid").is_dir():
        print(f"no real clips at {args.real}: nothing to measure")
        return
    import torch

    from avse.talking.baselines import energy_mouth, still
    from avse.talking.expert import SyncExpert
    from avse.talking.generate import TalkingFace
    from avse.talking.metrics import lip_landmarks

    torch.set_num_threads(2)
    expert = SyncExpert.from_pretrained(None).eval().requires_grad_(False)  # measures, and the sync loss
    detector = None
    if args.light_asd.is_file():
        from avse.models.light_asd import load_detector

        detector = load_detector(args.light_asd)
    measures = ("lse_d", "lse_c", "lip_distance", "psnr", "ssim", "identity") + (("asd",) if detector is not None else ())
    talk = TalkingFace.from_pretrained(args.model)
    clips = real_clips(args.real, args.landmarks_cache)  # (name "real/FOLDER/STEM", faces, audio)
    folds = talker_folds([talker_of(Path(name.split("/", 1)[1])) for name, _, _ in clips], args.folds)
    rows, losses, t0 = [], [], time.time()
    for f, held in enumerate(folds[: args.first]):
        train = [i for i in range(len(clips)) if i not in held]
        print(f"fold {f}: held out {[clips[i][0] for i in held]}", flush=True)
        tuned, fold_losses = finetune(talk, clips, train, args, seed=2000 + f, expert=expert)
        losses.append(fold_losses)
        for i in held:
            name, real, audio = clips[i]
            n = len(real)
            outs = {"real": real, "still": still(real[0], n), "energy": energy_mouth(real[0], audio, n),
                    "before": talk.crops(audio, real[0], real), "after": tuned.crops(audio, real[0], real)}
            real_lips = lip_landmarks(real)
            row = {"clip": name, "fold": f, "frames": n}
            for k, faces in outs.items():
                row[k] = measure(expert, faces, real, audio, real_lips, True, None, detector)
            rows.append(row)
            print(f"  {name}: " + "  ".join(f"{k} D {row[k]['lse_d']:.3f} lips {row[k]['lip_distance']:.2f}"
                                            + (f" asd {row[k]['asd']:+.2f}" if detector is not None else "")
                                            for k in outs), flush=True)
    summary = {w: summarize(rows, w, measures) for w in ("before", "after")}
    sync = tuple(m for m in SYNC if m in measures)
    goal = {w: {"beats_both_baselines": {m: beats(summary[w], m, BETTER[m] == "lower") for m in sync},
                "nearer_to_real_than_both_baselines": {m: closer(summary[w], m) for m in sync if m != "lip_distance"}}
            for w in ("before", "after")}
    change = {m: mean_ci([r["after"][m] - r["before"][m] for r in rows]) for m in measures}
    plot({"real, before": summary["before"], "real, after fine-tuning": summary["after"]}, RESULTS / f"{args.out}.png",
         measures)
    save(args.out, {"model": args.model or "shipped", "steps": args.steps, "batch": args.batch, "lr": args.lr,
                    "sync": args.sync, "folds": [[clips[i][0] for i in fold] for fold in folds], "losses": losses,
                    "seconds": round(time.time() - t0, 1), "summary": summary, "goal": goal,
                    "change_after_minus_before": change, "items": rows})


if __name__ == "__main__":
    main()
