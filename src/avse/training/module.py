"""Lightning module for separation/enhancement training, and ``fit``: a whole run from one config dict."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import re
import signal
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor

from avse.config import check_types, override
from avse.errors import ConfigError, MediaError, OutputPathError, first_line
from avse.models.checkpoint import save_checkpoint
from avse.models.registry import build_model, make_config
from avse.training.losses import compressed_spectral_loss, neg_si_sdr
from avse.training.tasks import TASKS, get_task
from avse.utils.fs import atomic_path, check_output_folder
from avse.utils.pool import remove_stale_parts

if TYPE_CHECKING:
    from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT

AVSE_SUFFIX = ".avse.pt"


def avse_path(lightning_path: str | Path) -> Path:
    """The avse checkpoint written next to a Lightning one: ``X.ckpt`` -> ``X.avse.pt``."""
    p = Path(lightning_path)
    return p.with_name(p.stem + AVSE_SUFFIX)


class SeparationModule(pl.LightningModule):
    """A registry model trained on a task (``avse.training.tasks``) with negative SI-SDR.

    ``task`` "enhance" / "extract": one output, loss ``neg_si_sdr(estimate,
    target)``. "separate": two outputs, permutation-invariant loss over
    (target, interferer). "known": two outputs in a fixed order, output 0
    the target (speaker A), output 1 the interferer (speaker B), loss the mean
    of their neg SI-SDRs (no permutation). ``loss_spectral`` > 0 adds that
    weight times ``compressed_spectral_loss`` of the estimates (in reference
    order) against the references. Audio-visual models (the model
    interface's ``audio_visual``) get ``batch["features"]`` [B, F, Dv]
    transposed to [B, Dv, F]. Logs ``train/loss``, ``val/loss`` and
    ``val/si_sdri`` (dB, estimate SI-SDR minus the mixture's, averaged over the
    sources; for tasks with named outputs also ``val/si_sdri_0``,
    ``val/si_sdri_1``, ...). ``speakers`` (names of the outputs, in order) is
    written into the avse checkpoint's extra.
    """

    def __init__(
        self,
        model: str,
        model_config: Mapping[str, Any] | None = None,
        task: str = "extract",
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        speakers: list[str] | None = None,
        loss_max_db: float | None = None,
        loss_spectral: float = 0.0,
        lr_schedule: str = "constant",
        lr_min: float = 0.0,
        schedule_steps: int = -1,
    ):
        super().__init__()
        self.task = get_task(task)
        self.save_hyperparameters()
        self.model_name = model
        self.model_cfg = make_config(model, model_config)
        self.model = build_model(model, asdict(self.model_cfg))
        self.speakers = None if speakers is None else [str(s) for s in speakers]
        n_out, want = self.model.n_outputs, self.task.n_outputs
        if n_out != want:
            raise ConfigError(f"task {task!r} needs a model with {want} output(s); {model!r} is configured for {n_out}")
        if self.speakers is not None and len(self.speakers) != n_out:
            raise ConfigError(f"{len(self.speakers)} speaker name(s) for a model with {n_out} output(s)")

    @property
    def audio_visual(self) -> bool:
        """Whether the model takes a visual stream."""
        return self.model.audio_visual

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Batch dict (mixture [B, T], features [B, F, Dv] for AV models) -> estimates [B, S, T]."""
        visual = None
        if self.model.audio_visual:
            if "features" not in batch:
                raise ConfigError(f"model {self.model_name!r} is audio-visual but the batch has no 'features'")
            visual = batch["features"].transpose(1, 2)  # [B, Dv, F]
        return self.model.estimates(batch["mixture"], visual)  # [B, S, T]

    def _loss(self, est: Tensor, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """est [B, S, T] -> (loss [B], estimates in reference order [B, S, T])."""
        loss, est = self.task.loss(est, batch, max_db=self.hparams.get("loss_max_db"))
        weight = float(self.hparams.get("loss_spectral") or 0.0)
        if weight > 0.0:
            loss = loss + weight * compressed_spectral_loss(est, self.task.references(batch)).mean(-1)  # [B]
        return loss, est

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step: mean loss over the batch."""
        loss = self._loss(self(batch).float(), batch)[0].mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["mixture"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Loss and SI-SDR improvement of one validation batch."""
        est = self(batch).float()  # [B, S, T]
        loss, est = self._loss(est, batch)
        refs = self.task.references(batch)  # [B, S, T]
        mix = batch["mixture"][:, None].expand_as(refs)  # [B, S, T]
        per_source = neg_si_sdr(mix, refs) - neg_si_sdr(est, refs)  # [B, S]
        n = batch["mixture"].shape[0]
        self.log("val/loss", loss.mean(), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/si_sdri", per_source.mean(), batch_size=n, sync_dist=True)
        if self.task.named_outputs:  # the outputs have identities: report each
            for s in range(per_source.shape[1]):
                self.log(f"val/si_sdri_{s}", per_source[:, s].mean(), batch_size=n, sync_dist=True)

    def configure_optimizers(self) -> Any:
        """AdamW over all parameters (clip gradients with ``Trainer(gradient_clip_val=...)``), with its learning-rate schedule.

        ``lr_schedule`` "constant": ``lr`` throughout. "cosine": from ``lr``
        down to ``lr_min`` along half a cosine over ``schedule_steps``
        optimiser steps, then ``lr_min``; stepped every step, and its place
        is in the checkpoint, so a resumed run goes on where it stopped.
        """
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        schedule = self.hparams.get("lr_schedule", "constant")
        if schedule == "constant":
            return opt
        if schedule != "cosine":
            raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")
        total = int(self.hparams["schedule_steps"])
        lr = float(self.hparams["lr"])
        floor = float(self.hparams.get("lr_min", 0.0)) / lr if lr > 0 else 1.0
        sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(cosine_factor, total=total, floor=floor))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        """Tell the data module which epoch's mixtures to draw."""
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record what rebuilds the bare model (name, config, task, names, validation scores) in Lightning's checkpoint."""
        avse: dict[str, Any] = {"model": self.model_name, "config": asdict(self.model_cfg), "task": self.task.name}
        if self.speakers is not None:
            avse["speakers"] = list(self.speakers)
        metrics = self.trainer.callback_metrics  # only the trainer saves checkpoints, so it is attached
        avse["metrics"] = {k: float(v) for k, v in metrics.items() if k.startswith("val/")}
        checkpoint["avse"] = avse
        # the random state, so that a resumed run goes on drawing what an uninterrupted one would
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["avse_rng"] = rng

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put back the random state ``on_save_checkpoint`` recorded (checkpoints without one leave it as it is)."""
        rng = checkpoint.get("avse_rng")
        if not isinstance(rng, dict):
            return
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])


def export_avse(lightning_path: str | Path, path: str | Path | None = None) -> Path:
    """Write the bare model of a Lightning checkpoint saved by ``fit`` as an avse checkpoint -> its path.

    ``path`` defaults to ``avse_path(lightning_path)``. Its extra holds
    ``task``, ``epoch``, ``global_step``, ``speakers`` (the outputs' names,
    in order, when known), ``metrics`` (the validation scores at saving time)
    and ``lightning_checkpoint`` (the file name it came from).
    """
    src = Path(lightning_path)
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    meta = ckpt.get("avse")
    if not isinstance(meta, dict):
        raise ConfigError(f"{src}: not a checkpoint written by avse training (no 'avse' entry)")
    model = build_model(meta["model"], meta["config"])
    prefix = "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    extra: dict[str, Any] = {"task": meta["task"], "epoch": int(ckpt["epoch"]), "global_step": int(ckpt["global_step"])}
    if "speakers" in meta:
        extra["speakers"] = list(meta["speakers"])
    extra.update(metrics=dict(meta.get("metrics", {})), lightning_checkpoint=src.name)
    return save_checkpoint(path or avse_path(src), model, meta["model"], meta["config"], extra=extra)


class AvseExport(Callback):
    """Keeps an avse checkpoint ``X.avse.pt`` beside every Lightning checkpoint ``X.ckpt`` in ``dirpath``.

    Lightning runs the checkpoint callbacks after every other callback of a
    hook, so a save made at the end of a validation or an epoch is seen at the
    next training batch (and at the end of the epoch or the fit). Then (rank
    zero only) every ``X.ckpt`` newer than its ``X.avse.pt`` is exported
    (``export_avse``), and every ``X.avse.pt`` whose ``X.ckpt`` is gone is
    removed. The folder is only looked at when a save may have happened, not
    at every step. It reads only the files on disk, so it needs nothing of the
    checkpoint callbacks' internals.
    """

    def __init__(self, dirpath: str | Path):
        super().__init__()
        self.dirpath = Path(dirpath)
        self._stale = False  # a checkpoint callback may have saved since the last sync

    def sync(self, trainer: pl.Trainer) -> None:
        """Export new or changed Lightning checkpoints, drop avse files whose Lightning checkpoint was removed."""
        self._stale = False
        if not trainer.is_global_zero or not self.dirpath.is_dir():
            return
        for ckpt in self.dirpath.glob("*.ckpt"):
            side = avse_path(ckpt)
            if not side.is_file() or side.stat().st_mtime_ns < ckpt.stat().st_mtime_ns:
                export_avse(ckpt, side)
        for side in self.dirpath.glob(f"*{AVSE_SUFFIX}"):
            if not side.with_name(side.name[: -len(AVSE_SUFFIX)] + ".ckpt").is_file():
                side.unlink()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The checkpoint callbacks may save right after this: look at the next batch."""
        self._stale = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        """Catch up with what the checkpoint callbacks saved after the last validation or epoch."""
        if self._stale:
            self.sync(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Catch up now (a validation may have ended the epoch); the epoch-end saves follow this hook."""
        self.sync(trainer)
        self._stale = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """And once more when the fit ends, after the last save."""
        self.sync(trainer)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, each file written beside its destination and renamed into place.

    A run killed while saving leaves the previous checkpoint whole and at
    worst a temp file ``.NAME.XXXXXXXX.part.ckpt``, which ``fit`` removes when
    it starts.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``fit`` needs; ``model_config`` holds the model's options, ``data`` the data module's.

    ``data_module`` says what ``data`` describes: ``"corpus"`` (AvseDataModule
    arguments, ``root`` a corpus folder) or ``"speakers"``
    (KnownSpeakersDataModule arguments, ``speaker_a`` and ``speaker_b``
    folders of recordings; see avse.training.known). None: the task's own
    (``"speakers"`` for task "known", else ``"corpus"``).
    """

    model: str = "avnet"
    model_config: dict[str, Any] = field(default_factory=dict)
    task: str = "extract"
    data_module: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": lr -> lr_min over max_steps (see SeparationModule.configure_optimizers)
    lr_min: float = 0.0
    weight_decay: float = 1e-2
    max_epochs: int = 100
    max_steps: int = -1  # -1: no step limit
    gradient_clip_val: float = 5.0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | int | None = None  # None: "16-mixed" on CUDA, else "32-true"
    log_every_n_steps: int = 50
    limit_val_batches: int | float = 1.0
    seed: int = 0
    loss_max_db: float | None = None  # SI-SDR saturates softly here (e.g. 30 with clean training items)
    loss_spectral: float = 0.0  # weight of the compressed spectral distance added to the SI-SDR loss (losses.py)
    init_from: str | None = None  # a shipped model name or an .avse.pt: start from its weights (not on resume)
    init_skip: list[str] = field(default_factory=list)  # weights (name prefixes) init_from leaves at their new init
    init_grow: bool = False  # init_from's model has fewer repeats of temporal blocks: the new ones start as no-ops
    keep_checkpoints: int = 1  # the k best by val/loss kept as epochNNN-stepNNNNNNN; -1: every validation's

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}")

        need(math.isfinite(self.lr) and self.lr >= 0, "lr", "a finite number >= 0")
        need(self.lr_schedule in ("constant", "cosine"), "lr_schedule", "'constant' or 'cosine'")
        need(math.isfinite(self.lr_min) and 0 <= self.lr_min <= self.lr, "lr_min", "a finite number from 0 to lr")
        if self.lr_schedule == "cosine" and self.max_steps == -1:
            raise ConfigError("lr_schedule 'cosine' runs over max_steps: set max_steps")
        need(math.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a finite number >= 0")
        need(self.max_epochs == -1 or self.max_epochs >= 1, "max_epochs", "-1 (no limit) or >= 1")
        need(self.max_steps == -1 or self.max_steps >= 1, "max_steps", "-1 (no limit) or >= 1")
        need(math.isfinite(self.gradient_clip_val) and self.gradient_clip_val >= 0, "gradient_clip_val", "a finite number >= 0")
        need(self.log_every_n_steps >= 1, "log_every_n_steps", ">= 1")
        need(self.num_nodes >= 1, "num_nodes", ">= 1")
        need(math.isfinite(self.limit_val_batches) and self.limit_val_batches >= 0, "limit_val_batches", "a number >= 0")
        need(self.loss_max_db is None or math.isfinite(self.loss_max_db), "loss_max_db", "a finite number or null")
        need(math.isfinite(self.loss_spectral) and self.loss_spectral >= 0, "loss_spectral", "a finite number >= 0")
        need(self.keep_checkpoints == -1 or self.keep_checkpoints >= 1, "keep_checkpoints", "-1 (all) or >= 1")
        if self.init_skip and self.init_from is None:
            raise ConfigError("init_skip names weights init_from leaves out: set init_from too")
        if self.init_grow and self.init_from is None:
            raise ConfigError("init_grow grows the model init_from gives: set init_from too")


DATA_MODULES = ("corpus", "speakers")


def cosine_factor(step: int, total: int, floor: float) -> float:
    """The cosine schedule's multiplier of the peak learning rate at ``step``: 1 at 0, ``floor`` from ``total`` on."""
    t = min(max(step, 0), total) / max(total, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def _val_loss(path: Path) -> float:
    """The validation loss an avse checkpoint written by ``fit`` recorded (inf when it has none)."""
    from avse.models.checkpoint import read_checkpoint

    loss = read_checkpoint(path).get("extra", {}).get("metrics", {}).get("val/loss")
    return float(loss) if loss is not None and math.isfinite(float(loss)) else math.inf


#: a temporal block's weights in a state dict: the stack's name, the block's index, the rest
_BLOCK_KEY = re.compile(r"^(?P<stack>(?:.+\.)?blocks)\.(?P<index>\d+)\.(?P<rest>.+)$")


def grown_blocks(model: torch.nn.Module, ckpt: Mapping[str, Any]) -> dict[str, Tensor]:
    """The weights ``model`` has beyond ``ckpt``'s (fewer) repeats of temporal blocks, set so that they add nothing.

    A Conv-TasNet stack made deeper by more repeats (``n_repeats``, the same
    ``n_blocks``, so the checkpoint's blocks keep their dilations): its new
    blocks keep their fresh weights but for zero skip and residual convs, and the
    checkpoint's last block, which fed only its skip output, gets a zero residual
    conv. With these and the checkpoint's weights the grown model computes
    exactly what the checkpoint's did, and training takes it on from there.
    Raises ConfigError when the model is not a deeper one of the same kind.
    """
    mine = getattr(model, "cfg", None)
    theirs = dict(ckpt["config"])
    if mine is None or not hasattr(mine, "n_repeats") or "n_repeats" not in theirs:
        raise ConfigError(f"init_grow: model {ckpt['model']!r} has no repeats of temporal blocks to grow")
    if getattr(mine, "n_blocks", None) != theirs.get("n_blocks") or mine.n_repeats <= theirs["n_repeats"]:
        raise ConfigError(
            f"init_grow: the recipe's model must have the checkpoint's n_blocks ({theirs.get('n_blocks')}) and more than its "
            f"n_repeats ({theirs['n_repeats']}), got {getattr(mine, 'n_blocks', None)} and {mine.n_repeats}"
        )
    counts: dict[str, int] = {}
    for key in ckpt["state_dict"]:
        if (m := _BLOCK_KEY.match(key)) is not None:
            counts[m["stack"]] = max(counts.get(m["stack"], 0), int(m["index"]) + 1)
    grown: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        m = _BLOCK_KEY.match(key)
        if m is None or m["stack"] not in counts or key in ckpt["state_dict"]:
            continue
        index, n = int(m["index"]), counts[m["stack"]]
        silent = m["rest"].startswith(("skip.", "residual."))
        if index >= n:  # a new block: fresh, but what it adds to the skips and the residual path is zero
            grown[key] = torch.zeros_like(value) if silent else value
        elif index == n - 1 and m["rest"].startswith("residual."):  # the old last block now feeds the new ones
            grown[key] = torch.zeros_like(value)
    return grown


def warm_start(model: torch.nn.Module, model_name: str, source: str, skip: Sequence[str] = (), grow: bool = False) -> dict[str, Any]:
    """Load the weights of ``source`` (a shipped model name, an avse checkpoint path, or a run folder) into ``model``.

    A run folder (what ``fit`` wrote) gives its best checkpoint: the
    ``epoch*.avse.pt`` kept by validation loss (of several, kept by ``keep_checkpoints``, the lowest). The checkpoint must hold the same model (``model_name``) with the same
    layers and sizes; options that add or remove no weights (output form,
    lip normalisation, dropout) may differ, which is how a shipped model is
    fine-tuned with a new recipe. A model with ``"causal"`` or ``"hop"``
    synthesis also loads an ``"overlap"`` model (``fit`` then refits its decoder).
    ``skip``: name prefixes of weights that are not loaded but keep the new
    model's initialisation (e.g. ``visual_frontend.in_proj`` for a new visual
    input); every prefix must name at least one weight of the model, and all
    other weights must fit. ``grow``: the model is a deeper one (more repeats of
    temporal blocks) whose new blocks start as no-ops (``grown_blocks``). Raises ConfigError naming the checkpoint when it does not fit. Returns
    the checkpoint (``read_checkpoint``'s dict).
    """
    from avse.api import model_path  # the shipped names live with the inference API
    from avse.models.checkpoint import read_checkpoint

    run = Path(source)
    if run.is_dir():
        best = sorted(run.glob("epoch*" + AVSE_SUFFIX))
        if not best:
            raise ConfigError(f"init_from {run}: a run folder holds its best checkpoints (epoch*{AVSE_SUFFIX}); found 0")
        path = best[0] if len(best) == 1 else min(best, key=_val_loss)
    else:
        path = model_path(source)
    ckpt = read_checkpoint(path)
    if ckpt["model"] != model_name:
        raise ConfigError(f"init_from {path}: holds model {ckpt['model']!r}, the recipe trains {model_name!r}")
    skip = tuple(skip)
    own = model.state_dict()
    for prefix in skip:
        if not any(k.startswith(prefix) for k in own):
            raise ConfigError(f"init_skip: {prefix!r} names no weight of the model")
    fresh = {k: v for k, v in own.items() if k.startswith(skip)}  # none without skip: str.startswith(()) is False
    kept = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(skip)}
    grown = grown_blocks(model, ckpt) if grow else {}
    try:
        model.load_state_dict({**fresh, **grown, **kept})  # strict: every other weight from the checkpoint, at its size
    except RuntimeError as err:
        raise ConfigError(f"init_from {path}: its weights do not fit the recipe's model ({first_line(err, with_type=False)})") from None
    return ckpt


#: training batches (each used as mixtures and as clean targets) a new decoder is fitted on
DECODER_FIT_BATCHES = 40


def refit_decoder(model: torch.nn.Module, source: Mapping[str, Any], dm: pl.LightningDataModule, batches: int = DECODER_FIT_BATCHES) -> int | None:
    """After ``warm_start`` from an ``"overlap"`` model into a ``"causal"`` or ``"hop"`` one: fit its decoder by least squares.

    ``source`` is the checkpoint ``warm_start`` returned. The source model runs
    on ``batches`` training batches of ``dm`` (its mixtures, and its clean
    targets, so that clean speech is reproduced too) and the new decoder is
    fitted to give, from the same masked encodings, the output the overlap
    decoder gave (``tasnet.DecoderFit``). Returns the number of frames
    fitted on, or None when there was nothing to refit (an overlap model, or a
    source that was not one).
    """
    from avse.models.tasnet import DecoderFit

    cfg = getattr(model, "cfg", None)
    synthesis = getattr(cfg, "synthesis", "overlap")
    if synthesis == "overlap" or source["config"].get("synthesis", "overlap") != "overlap":
        return None
    teacher = build_model(source["model"], source["config"])
    teacher.load_state_dict(source["state_dict"])
    teacher.eval()
    source_decoder = cast(torch.nn.ConvTranspose1d, teacher.decoder)
    fitter = DecoderFit(source_decoder.in_channels, source_decoder.stride[0], synthesis)
    seen: dict[str, Tensor] = {}
    hook = source_decoder.register_forward_hook(lambda _m, i, o: seen.update(src=i[0], out=o))
    dm.setup("fit")
    try:
        with torch.inference_mode():
            for n, batch in enumerate(dm.train_dataloader()):
                if n >= batches:
                    break
                visual = batch["features"].transpose(1, 2) if teacher.audio_visual else None
                for x in (batch["mixture"], batch["target"]):
                    teacher.estimates(x, visual)
                    fitter.add(seen["src"], seen["out"])  # [B S, N, K], [B S, 1, (K + 1) hop]
    finally:
        hook.remove()
    with torch.no_grad():
        cast(torch.nn.ConvTranspose1d, model.decoder).weight.copy_(fitter.solve())
    return fitter.frames


def run_folder_last(out_dir: Path, resume: bool) -> Path:
    """Check a training run's folder before any work -> the path of its ``last.ckpt``.

    OutputPathError when ``out_dir`` is a file (or not writable); ConfigError when
    ``resume`` is asked for and there is no ``last.ckpt`` to resume from.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(f"{out_dir}: the run folder is a file")
    check_output_folder(out_dir)
    last = out_dir / "last.ckpt"
    if resume and not last.is_file():
        raise ConfigError(f"cannot resume: {last} does not exist")
    return last


def fit(config: Mapping[str, Any], out_dir: str | Path, resume: bool = False, progress: bool = False) -> Path:
    """Train from ``config`` (TrainConfig fields) into ``out_dir``; returns the best avse checkpoint's path.

    ``out_dir`` receives Lightning checkpoints (best by ``val/loss``, and
    ``last.ckpt`` after every validation), an avse checkpoint ``*.avse.pt``
    next to each (``AvseExport``), and TensorBoard logs under ``out_dir/tb``.
    ``resume=True`` continues from ``out_dir/last.ckpt`` (ConfigError when it
    is missing); raise ``max_steps`` or ``max_epochs`` in ``config`` to train
    further. When no validation has run yet (e.g. ``max_steps`` ended the run
    mid-epoch) the last checkpoint is returned. With ``data_module:
    speakers`` (the default of task "known") the two-known-speakers data
    module is used (audio-only models); the decoded audio that does not fit in
    memory goes to ``out_dir/audio_cache`` unless ``data.cache_dir`` says
    otherwise, and the checkpoints' extra gets ``speakers``: ``[name_a,
    name_b]`` for task "known", ``[name_a]`` for "extract" / "enhance" (one
    output, speaker A). Several GPUs or nodes: ``devices``, ``num_nodes`` and
    ``strategy="ddp"`` (launched by torchrun or SLURM). ``progress`` shows
    Lightning's progress bar (steps, loss, validation) on stderr.
    """
    cfg = override(TrainConfig(), dict(config))
    task = get_task(cfg.task)
    source = cfg.data_module or task.data
    if source not in DATA_MODULES:
        raise ConfigError(f"data_module must be one of {', '.join(DATA_MODULES)}, got {source!r}")
    if source == "corpus" and "root" not in cfg.data:
        raise ConfigError("config['data'] needs 'root' (the corpus folder); two folders of recordings need data_module: speakers")
    out_dir = Path(out_dir)
    last = run_folder_last(out_dir, resume)
    if resume:
        _check_resumable(last, cfg.model)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, speakers = _data_module(cfg, out_dir, source)
    module = SeparationModule(
        cfg.model,
        cfg.model_config,
        task=cfg.task,
        lr=cfg.lr,
        lr_schedule=cfg.lr_schedule,
        lr_min=cfg.lr_min,
        schedule_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        speakers=None if speakers is None else task.output_names(speakers),
        loss_max_db=cfg.loss_max_db,
        loss_spectral=cfg.loss_spectral,
    )
    if source == "speakers" and module.audio_visual:
        raise ConfigError(f"model {cfg.model!r} is audio-visual; the two-known-speakers data has audio only (use e.g. tasnet)")
    if module.audio_visual and getattr(dm, "p_masker_target", 0.0) > 0.0:
        raise ConfigError(f"data.p_masker_target: a masker in the target's place has no lips; model {cfg.model!r} is audio-visual")
    if cfg.init_from is not None and not resume:
        source_ckpt = warm_start(module.model, cfg.model, cfg.init_from, cfg.init_skip, cfg.init_grow)
        if source == "corpus":
            refit_decoder(module.model, source_ckpt, dm)
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the config holds together
    for folder in (out_dir, out_dir / "audio_cache"):  # what a run killed while writing left
        remove_stale_parts(folder)
    best = ModelCheckpoint(
        dirpath=out_dir,
        filename="epoch{epoch:03d}-step{step:07d}",
        auto_insert_metric_name=False,
        monitor="val/loss",
        mode="min",
        save_top_k=cfg.keep_checkpoints,
    )
    # no monitor: saved after every validation (or epoch), whatever the score, under one name
    latest = ModelCheckpoint(dirpath=out_dir, filename="last", save_top_k=1, enable_version_counter=False)
    precision = cfg.precision or ("16-mixed" if torch.cuda.is_available() else "32-true")
    trainer = pl.Trainer(
        default_root_dir=out_dir,
        logger=TensorBoardLogger(out_dir, name="tb"),
        callbacks=[best, latest, AvseExport(out_dir)],
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
        gradient_clip_val=cfg.gradient_clip_val,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cast("_PRECISION_INPUT", precision),  # a config string: Lightning checks it
        log_every_n_steps=cfg.log_every_n_steps,
        limit_val_batches=cfg.limit_val_batches,
        enable_progress_bar=progress,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )
    _run_fit(trainer, module, dm, str(last) if resume else None)
    path = best.best_model_path or latest.best_model_path
    if not path:
        raise ConfigError("training saved no checkpoint (no training step ran?)")
    return avse_path(path)


class _NoInterruptNotice(logging.Filter):
    """Drops Lightning's notice of a Ctrl-C; the command says it in its own words."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "KeyboardInterrupt" not in record.getMessage()


def _run_fit(trainer: pl.Trainer, module: pl.LightningModule, dm: pl.LightningDataModule, ckpt_path: str | None) -> None:
    """``trainer.fit``, where a Ctrl-C ends as KeyboardInterrupt (Lightning stops the trainer and exits with 1)."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    notice = _NoInterruptNotice()
    log.addFilter(notice)
    handler = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        log.removeFilter(notice)
        if handler is not None:  # Lightning ignores SIGINT while it shuts down
            signal.signal(signal.SIGINT, handler)


def _check_resumable(path: Path, model: str) -> None:
    """MediaError unless ``path`` is a Lightning checkpoint that ``fit`` wrote; ConfigError when it holds another model than ``model``."""
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of foreign files before failing
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on foreign or truncated files
        raise MediaError(path, f"not a readable checkpoint ({first_line(err)}); remove it to start afresh") from None
    meta = ckpt.get("avse") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not isinstance(ckpt.get("state_dict"), dict) or "global_step" not in ckpt:
        raise MediaError(path, "not a checkpoint written by avse training; remove it to start afresh")
    if meta.get("model") != model:
        raise ConfigError(f"{path}: holds a {meta.get('model')!r} model, the recipe trains {model!r}; use another --out")


def _data_module(cfg: TrainConfig, out_dir: Path, source: str) -> tuple[pl.LightningDataModule, list[str] | None]:
    """The data module ``cfg.data`` describes, and the names of its sources (None when they have none)."""
    if source == "corpus":
        from avse.training.data import AvseDataModule

        data = _check_options("AvseDataModule (a corpus)", AvseDataModule, cfg.data)
        if "visual_stream" in data:
            raise ConfigError("data.visual_stream is the model's: set model_config.visual_stream")
        stream = cfg.model_config.get("visual_stream", "lip_features")
        return AvseDataModule(**data, visual_stream=stream), None
    from avse.training.known import KnownSpeakersDataModule

    if "speaker_a" not in cfg.data or "speaker_b" not in cfg.data:
        raise ConfigError("two known speakers need both data.speaker_a and data.speaker_b (folders of recordings)")
    data = _check_options("two known speakers", KnownSpeakersDataModule, cfg.data)
    dm = KnownSpeakersDataModule(**{"cache_dir": str(out_dir / "audio_cache"), **data})
    return dm, list(dm.speakers)


def _check_options(what: str, cls: type[pl.LightningDataModule], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``cls.__init__``: ConfigError naming an unknown key or a value of the wrong type.

    Returns the options as ``check_types`` gives them back (an integral float given for an integer made one).
    """
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown data option(s) for {what}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return check_types("data.", dict(options), cls)


__all__ = ["TASKS", "AvseExport", "SeparationModule", "TrainConfig", "avse_path", "export_avse", "fit"]
