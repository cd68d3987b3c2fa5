"""The training loop of the small helper models (overlap detector, speaker encoder): schedule, checkpoints, resume."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import Tensor, nn

from avse.errors import ConfigError
from avse.models.checkpoint import SmallAudioModel

R = TypeVar("R")


def recipe_from_mapping(cls: type[R], cfg: Mapping[str, Any], what: str, paths: Sequence[str] = ("speech", "corpus", "noise"),
                        ranges: Sequence[str] = ()) -> R:
    """A recipe dataclass ``cls`` from a YAML mapping: ``paths`` (a string or a list) become tuples of strings,
    ``ranges`` tuples of floats; unknown keys are a ConfigError naming them ("WHAT recipe: unknown keys ...")."""
    known = {f.name for f in fields(cast(Any, cls))}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"{what} recipe: unknown keys {', '.join(unknown)}")
    raw = dict(cfg)
    for k in paths:
        if k in raw:
            raw[k] = (raw[k],) if isinstance(raw[k], str) else tuple(raw[k])
    for k in ranges:
        if k in raw:
            raw[k] = tuple(float(v) for v in raw[k])
    return cls(**raw)


def fit_small(
    model: SmallAudioModel,
    recipe: Any,
    out: str | Path,
    step_loss: Callable[[np.random.Generator], Tensor],
    validate: Callable[[], dict[str, float]],
    key: Callable[[dict[str, float]], tuple[float, ...]],
    extra: Mapping[str, Any],
    resume: bool = False,
    progress: bool = False,
    head: nn.Module | None = None,
) -> Path:
    """Train ``model`` into folder ``out`` -> its best checkpoint (``out/best.avse.pt``).

    ``recipe`` is a frozen dataclass with at least ``lr``, ``lr_min``, ``weight_decay``, ``steps_per_epoch``,
    ``max_epochs`` and ``seed``; ``step_loss(rng)`` draws one batch from ``rng`` (seeded by (seed, epoch, step), so a
    resumed run draws what it would have) and returns its loss; ``validate()`` scores the model after each epoch
    (it may switch to eval mode; training mode is set again after); the epoch whose ``key(scores)`` is highest is
    the best. ``head`` holds training-only weights (e.g. a classifier) that the optimiser and ``last.pt`` keep
    but the shipped checkpoint does not. AdamW with a cosine from ``lr`` to ``lr_min``, gradients clipped at 5.
    ``out/last.pt`` holds what ``resume`` needs (a fresh run refuses a folder that holds one; a resumed one
    refuses a changed recipe, except ``max_epochs``); every epoch is logged to ``out/log.jsonl`` and written to
    ``out/epoch_last.avse.pt``, with ``extra`` and the epoch's scores ("val") in the checkpoint's extra.
    """
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    r = recipe
    params = [*model.parameters(), *(head.parameters() if head is not None else [])]
    opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay)
    total = r.steps_per_epoch * r.max_epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (r.lr_min + 0.5 * (r.lr - r.lr_min) * (1 + math.cos(math.pi * min(s, total) / total))) / r.lr)
    start_epoch, best = 0, cast("tuple[float, ...]", (-math.inf,))
    last = out / "last.pt"
    same = {k: v for k, v in r.__dict__.items() if k != "max_epochs"}  # what a resumed run must not change
    if last.is_file() and not resume:
        raise ConfigError(f"{out} holds a run already (last.pt): resume it (--resume) or choose another folder")
    if resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        saved = state.get("recipe", {})
        defaults = {f.name: f.default for f in fields(cast(Any, r))}  # a field added since the run: its default
        changed = sorted(k for k, v in same.items() if saved.get(k, defaults.get(k)) != v)
        if changed:
            raise ConfigError(f"{out}: the recipe differs from the run's in {', '.join(changed)} (only max_epochs may "
                              "change on resume)")
        model.load_state_dict(state["model"])
        if head is not None:
            head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, best = int(state["epoch"]) + 1, tuple(state["best"])
    extra = {"recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in r.__dict__.items()}} | dict(extra)
    model.train()
    for epoch in range(start_epoch, r.max_epochs):
        t0 = time.time()
        losses = []
        bar = tqdm(range(r.steps_per_epoch), desc=f"epoch {epoch}", disable=not progress)
        for step in bar:
            loss = step_loss(np.random.default_rng([r.seed, epoch, step]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        scores = validate()
        model.train()
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": round(time.time() - t0, 1)} | scores
        with open(out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        if progress:
            print(json.dumps(entry), flush=True)
        k = key(scores)
        model.save(out / "epoch_last.avse.pt", extra | {"epoch": epoch, "val": scores})
        if k > best:
            best = k
            model.save(out / "best.avse.pt", extra | {"epoch": epoch, "val": scores})
        tmp = out / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "head": head.state_dict() if head is not None else None,
                    "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch, "best": list(best),
                    "recipe": same}, tmp)
        tmp.replace(last)
    return out / "best.avse.pt"


__all__ = ["fit_small", "recipe_from_mapping"]
