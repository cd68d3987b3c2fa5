"""Lightning module for separation/enhancement training, and ``fit``: a whole run from one config dict."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from avse.config import override
from avse.errors import ConfigError
from avse.models.checkpoint import save_checkpoint
from avse.models.registry import build_model, make_config
from avse.training.losses import neg_si_sdr, pit_neg_si_sdr

TASKS = ("enhance", "extract", "separate", "known")
TWO_OUTPUT_TASKS = ("separate", "known")
AVSE_SUFFIX = ".avse.pt"


def avse_path(lightning_path: str | Path) -> Path:
    """The avse checkpoint written next to a Lightning one: ``X.ckpt`` -> ``X.avse.pt``."""
    p = Path(lightning_path)
    return p.with_name(p.stem + AVSE_SUFFIX)


class SeparationModule(pl.LightningModule):
    """A registry model trained with negative SI-SDR.

    ``task`` "enhance" / "extract": one output, loss ``neg_si_sdr(estimate,
    target)``. "separate": two outputs, permutation-invariant loss over
    (target, interferer). "known": two outputs in a fixed order, output 0
    the target (speaker A), output 1 the interferer (speaker B), loss the mean
    of their neg SI-SDRs (no permutation). Audio-visual models (a
    ``forward(mixture, visual)``) get ``batch["features"]`` [B, F, Dv]
    transposed to [B, Dv, F]. Logs ``train/loss``, ``val/loss`` and
    ``val/si_sdri`` (dB, estimate SI-SDR minus the mixture's, averaged over the
    sources; for "known" also ``val/si_sdri_0`` and ``val/si_sdri_1`` per
    output). ``speakers`` (names of the outputs, in order) is written into the
    avse checkpoint's extra.
    """

    def __init__(
        self,
        model: str,
        model_config: Mapping[str, Any] | None = None,
        task: str = "extract",
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        speakers: list[str] | None = None,
    ):
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.save_hyperparameters()
        self.model_name = model
        self.model_cfg = make_config(model, model_config)
        self.model = build_model(model, asdict(self.model_cfg))
        self.task = task
        self.speakers = None if speakers is None else [str(s) for s in speakers]
        self.audio_visual = len(inspect.signature(self.model.forward).parameters) >= 2
        n_out = getattr(self.model_cfg, "n_sources", 1)
        want = 2 if task in TWO_OUTPUT_TASKS else 1
        if n_out != want:
            raise ConfigError(f"task {task!r} needs a model with {want} output(s); {model!r} is configured for {n_out}")
        if self.speakers is not None and len(self.speakers) != n_out:
            raise ConfigError(f"{len(self.speakers)} speaker name(s) for a model with {n_out} output(s)")

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Batch dict (mixture [B, T], features [B, F, Dv] for AV models) -> estimates [B, S, T]."""
        mixture = batch["mixture"]  # [B, T]
        if self.audio_visual:
            if "features" not in batch:
                raise ConfigError(f"model {self.model_name!r} is audio-visual but the batch has no 'features'")
            out = self.model(mixture, batch["features"].transpose(1, 2))  # [B, T] or [B, S, T]
        else:
            out = self.model(mixture)  # [B, S, T]
        return out[:, None] if out.dim() == 2 else out  # [B, S, T]

    def _loss(self, est: Tensor, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """est [B, S, T] -> (loss [B], estimates in reference order [B, S, T]), references [B, S, T]."""
        if self.task == "separate":
            refs = torch.stack([batch["target"], batch["interferer"]], dim=1)  # [B, 2, T]
            loss, perm = pit_neg_si_sdr(est, refs)  # [B], [B, 2]
            est = torch.gather(est, 1, perm[..., None].expand(-1, -1, est.shape[-1]))  # [B, 2, T]
            return loss, est
        if self.task == "known":  # fixed order: output 0 is the target (speaker A), output 1 the interferer (B)
            return neg_si_sdr(est, self._refs(batch)).mean(-1), est  # [B], [B, 2, T]
        return neg_si_sdr(est[:, 0], batch["target"]), est  # [B], [B, 1, T]

    def _refs(self, batch: Mapping[str, Tensor]) -> Tensor:
        if self.task in TWO_OUTPUT_TASKS:
            return torch.stack([batch["target"], batch["interferer"]], dim=1)  # [B, 2, T]
        return batch["target"][:, None]  # [B, 1, T]

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step: mean loss over the batch."""
        loss = self._loss(self(batch).float(), batch)[0].mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["mixture"].shape[0])
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Loss and SI-SDR improvement of one validation batch."""
        est = self(batch).float()  # [B, S, T]
        loss, est = self._loss(est, batch)
        refs = self._refs(batch)  # [B, S, T]
        mix = batch["mixture"][:, None].expand_as(refs)  # [B, S, T]
        per_source = neg_si_sdr(mix, refs) - neg_si_sdr(est, refs)  # [B, S]
        n = batch["mixture"].shape[0]
        self.log("val/loss", loss.mean(), prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/si_sdri", per_source.mean(), batch_size=n, sync_dist=True)
        if self.task == "known":  # the outputs have identities: report each
            for s in range(per_source.shape[1]):
                self.log(f"val/si_sdri_{s}", per_source[:, s].mean(), batch_size=n, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over all parameters (clip gradients with ``Trainer(gradient_clip_val=...)``)."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_train_epoch_start(self) -> None:
        """Tell the data module which epoch's mixtures to draw."""
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record what rebuilds the bare model (name, config) in Lightning's checkpoint too."""
        checkpoint["avse"] = {"model": self.model_name, "config": asdict(self.model_cfg), "task": self.task}
        if self.speakers is not None:
            checkpoint["avse"]["speakers"] = list(self.speakers)

    def save_avse(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the bare model as an avse checkpoint (``avse.models.load_checkpoint`` reads it).

        Its extra holds ``task``, ``epoch``, ``global_step``, ``speakers`` (the
        outputs' names, in order, when known) and ``extra``.
        """
        info: dict[str, Any] = {"task": self.task, "epoch": int(self.current_epoch), "global_step": int(self.global_step)}
        if self.speakers is not None:
            info["speakers"] = list(self.speakers)
        return save_checkpoint(path, self.model, self.model_name, self.model_cfg, extra={**info, **dict(extra or {})})


class AvseModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that also writes ``X.avse.pt`` (avse format) next to every ``X.ckpt`` it saves, and removes it with it.

    With ``save_last`` it writes ``last.ckpt`` after every validation, not only
    when the monitored metric improved (Lightning's own rule), so that a resumed
    run continues from where it stopped.
    """

    def _save_last_if_missing(self, trainer: pl.Trainer) -> None:
        if self.save_last and not trainer.sanity_checking and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save the best (when it improved), then the last checkpoint if this step has none yet."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The same when Lightning saves at the end of the training epoch (e.g. no validation data)."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missing(trainer)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        module = trainer.lightning_module
        if trainer.is_global_zero and isinstance(module, SeparationModule):
            score = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            module.save_avse(avse_path(filepath), extra={"metrics": score, "lightning_checkpoint": Path(filepath).name})

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        side = avse_path(filepath)
        if trainer.is_global_zero and side.is_file():
            side.unlink()


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``fit`` needs; ``model_config`` holds the model's options, ``data`` the data module's.

    ``data`` holds AvseDataModule arguments (``root``: a corpus) or, for two
    known speakers, KnownSpeakersDataModule arguments (``speaker_a`` and
    ``speaker_b``: folders of recordings; see avse.training.known).
    """

    model: str = "avnet"
    model_config: dict[str, Any] = field(default_factory=dict)
    task: str = "extract"
    data: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    max_epochs: int = 100
    max_steps: int = -1  # -1: no step limit
    gradient_clip_val: float = 5.0
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = None  # None: "16-mixed" on CUDA, else "32-true"
    log_every_n_steps: int = 50
    limit_val_batches: int | float = 1.0
    seed: int = 0


def fit(config: Mapping[str, Any], out_dir: str | Path, resume: bool = False, progress: bool = False) -> Path:
    """Train from ``config`` (TrainConfig fields) into ``out_dir``; returns the best avse checkpoint's path.

    ``out_dir`` receives Lightning checkpoints (best by ``val/loss``, and
    ``last.ckpt``), an avse checkpoint ``*.avse.pt`` next to each, and
    TensorBoard logs under ``out_dir/tb``. ``resume=True`` continues from
    ``out_dir/last.ckpt`` (ConfigError when it is missing); raise ``max_steps``
    or ``max_epochs`` in ``config`` to train further. When no validation has
    run yet (e.g. ``max_steps`` ended the run mid-epoch) the last checkpoint
    is returned. With ``speaker_a`` / ``speaker_b`` in ``data`` the
    two-known-speakers data module is used (audio-only models); the decoded
    audio that does not fit in memory goes to ``out_dir/audio_cache`` unless
    ``data.cache_dir`` says otherwise, and the checkpoints' extra gets
    ``speakers``: ``[name_a, name_b]`` for task "known", ``[name_a]`` for
    "extract" / "enhance" (one output, speaker A). Several GPUs or nodes: ``devices``, ``num_nodes`` and
    ``strategy="ddp"`` (launched by torchrun or SLURM); "ddp"-family strategy
    names are switched to their ``*_find_unused_parameters_true`` form, since the
    TCN models leave their last residual convolution unused. ``progress`` shows
    Lightning's progress bar (steps, loss, validation) on stderr.
    """
    cfg = override(TrainConfig(), dict(config))
    known = "speaker_a" in cfg.data or "speaker_b" in cfg.data
    if not known and "root" not in cfg.data:
        raise ConfigError("config['data'] needs 'root' (the corpus folder), or 'speaker_a' and 'speaker_b' (folders of recordings)")
    out_dir = Path(out_dir)
    last = out_dir / "last.ckpt"
    if resume and not last.is_file():
        raise ConfigError(f"cannot resume: {last} does not exist")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, speakers = _data_module(cfg, out_dir, known)
    module = SeparationModule(
        cfg.model, cfg.model_config, task=cfg.task, lr=cfg.lr, weight_decay=cfg.weight_decay, speakers=speakers
    )
    if known and module.audio_visual:
        raise ConfigError(f"model {cfg.model!r} is audio-visual; the two-known-speakers data has audio only (use e.g. tasnet)")
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the config holds together
    ckpt = AvseModelCheckpoint(
        dirpath=out_dir,
        filename="epoch{epoch:03d}-step{step:07d}",
        auto_insert_metric_name=False,
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        save_last=True,
    )
    strategy = cfg.strategy
    if strategy in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        # the registry's TCNs leave the last block's residual conv unused, which plain DDP refuses
        strategy = f"{strategy}_find_unused_parameters_true"
    precision = cfg.precision or ("16-mixed" if torch.cuda.is_available() else "32-true")
    trainer = pl.Trainer(
        default_root_dir=out_dir,
        logger=TensorBoardLogger(out_dir, name="tb"),
        callbacks=[ckpt],
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
        gradient_clip_val=cfg.gradient_clip_val,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=strategy,
        num_nodes=cfg.num_nodes,
        precision=precision,
        log_every_n_steps=cfg.log_every_n_steps,
        limit_val_batches=cfg.limit_val_batches,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
    best = ckpt.best_model_path or ckpt.last_model_path
    if not best:
        raise ConfigError("training saved no checkpoint (no training step ran?)")
    return avse_path(best)


def _data_module(cfg: TrainConfig, out_dir: Path, known: bool) -> tuple[pl.LightningDataModule, list[str] | None]:
    """The data module ``cfg.data`` describes, and the names of the model's outputs (None when not fixed)."""
    if not known:
        from avse.training.data import AvseDataModule

        _check_options("AvseDataModule (a corpus)", AvseDataModule, cfg.data)
        return AvseDataModule(**cfg.data), None
    from avse.training.known import KnownSpeakersDataModule

    if "speaker_a" not in cfg.data or "speaker_b" not in cfg.data:
        raise ConfigError("two known speakers need both data.speaker_a and data.speaker_b (folders of recordings)")
    _check_options("two known speakers", KnownSpeakersDataModule, cfg.data)
    dm = KnownSpeakersDataModule(**{"cache_dir": str(out_dir / "audio_cache"), **cfg.data})
    names = {"known": dm.speakers, "extract": dm.speakers[:1], "enhance": dm.speakers[:1]}
    return dm, names.get(cfg.task)


def _check_options(what: str, cls: type, options: Mapping[str, Any]) -> None:
    """ConfigError naming the keys of ``options`` that ``cls.__init__`` does not take."""
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown data option(s) for {what}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")


__all__ = ["AvseModelCheckpoint", "SeparationModule", "TrainConfig", "avse_path", "fit"]
