"""Training the talking-face generator: face-crop windows from the preprocessing cache, the GAN losses, Lightning."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from avse import SAMPLES_PER_FRAME
from avse.audio.features import spec_augment
from avse.config import override
from avse.data.prepare import load_cached
from avse.errors import ConfigError, MediaError
from avse.talking.audio import WINDOW, features, frame_windows
from avse.talking.model import Discriminator, TalkingFaceConfig, TalkingFaceNet

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def cache_items(root: str | Path, split: str) -> list[Path]:
    """The cache files of ``split`` that hold face crops (``avse prepare --faces``), sorted; MediaError when none."""
    folder = Path(root) / split
    files = sorted(p for p in folder.glob("*.npz") if not p.name.startswith("."))  # not a writer's temp file
    if not files:
        raise MediaError(folder, "no cache files (make them with `avse prepare CORPUS OUT --faces`)")
    return files


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One cache file -> (faces uint8 [N, 96, 96, 3], audio float32 [N * 640]); MediaError without face crops."""
    d = load_cached(path, keys=("faces", "audio"))
    return d["faces"], d["audio"]


def color_jitter(images: Tensor, rng: np.random.Generator, strength: float = 1.0) -> Tensor:
    """One random colour change for a whole stack: images [..., 3, H, W] in [0, 1] -> same shape.

    Per-channel gains, a brightness offset, contrast and gamma, all drawn once, so the
    reference and the frames of one item change together (the generator must copy
    colours from its reference instead of learning the drawn faces' palette).
    """
    gain = torch.tensor(1.0 + strength * rng.uniform(-0.25, 0.25, 3), dtype=images.dtype).view(3, 1, 1)
    offset = float(strength * rng.uniform(-0.1, 0.1))
    contrast = float(1.0 + strength * rng.uniform(-0.3, 0.3))
    gamma = float(np.exp(strength * rng.uniform(-0.3, 0.3)))
    x = images * gain
    mean = x.mean(dim=(-3, -2, -1), keepdim=True)
    x = (x - mean) * contrast + mean + offset
    return x.clamp(0.0, 1.0).pow(gamma)


class FaceWindows(Dataset):
    """Windows of ``frames`` consecutive face crops with their speech, from the preprocessing cache.

    ``files``: cache files (``avse prepare --faces``), or clips in memory as (faces uint8 [N, 96, 96, 3],
    audio float32 [N * 640]) pairs, e.g. aligned crops of real videos.

    Item: ``faces`` [T, 3, 96, 96] and ``reference`` [3, 96, 96] float in [-1, 1] (the reference is
    another frame of the same utterance, away from the window when the utterance is long
    enough), ``audio`` [T, C, 16] (the generator's features, SpecAugment-masked when ``augment``)
    and ``audio_clean`` [T, 80, 16] (log-mel windows without masking, for the sync expert).
    With ``augment`` a random colour change and a horizontal flip are applied to the whole
    item. Item i of an epoch draws utterance ``i % len(files)``; the draws are seeded by
    (seed, epoch-free index) when ``augment`` is off, so validation is the same every time.
    """

    def __init__(self, files: Sequence[Path | tuple[np.ndarray, np.ndarray]], frames: int = 5, augment: bool = True,
                 kind: str = "mel",
                 n_mfcc: int = 20, items_per_file: int = 1, seed: int = 0):
        if frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        self.files, self.frames, self.augment = list(files), int(frames), bool(augment)
        self.kind, self.n_mfcc, self.items_per_file, self.seed = kind, n_mfcc, int(items_per_file), int(seed)

    def __len__(self) -> int:
        return len(self.files) * self.items_per_file

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng(None if self.augment else (self.seed, index))
        source = self.files[index % len(self.files)]
        faces, audio = source if isinstance(source, tuple) else _load(source)
        n, t = len(faces), self.frames
        if n < t:
            where = Path(f"<clip {index % len(self.files)}>") if isinstance(source, tuple) else source
            raise MediaError(where, f"{n} frames, fewer than the window's {t}")
        t0 = int(rng.integers(0, n - t + 1))
        far = [i for i in range(n) if i < t0 - 2 or i >= t0 + t + 2]
        ref = int(rng.choice(far)) if far else int(rng.integers(0, n))
        # audio features of a stretch a little wider than the window, then the per-frame windows
        pad = 4  # video frames of context either side
        a0, a1 = max(0, t0 - pad), min(n, t0 + t + pad)
        clip = torch.from_numpy(audio[a0 * SAMPLES_PER_FRAME : a1 * SAMPLES_PER_FRAME])
        if self.augment:
            clip = clip * float(10 ** (rng.uniform(-6, 6) / 20))
        mel = features(clip, "mel")  # [80, M]
        clean = frame_windows(mel, a1 - a0, WINDOW)[t0 - a0 : t0 - a0 + t]  # [T, 80, 16]
        feats = mel if self.kind == "mel" else features(clip, self.kind, self.n_mfcc)
        if self.augment:
            gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31)))
            feats = spec_augment(feats, freq_masks=1, freq_width=8, time_masks=1, time_width=4, generator=gen,
                                 value=float(feats.mean()))
        gen_audio = frame_windows(feats, a1 - a0, WINDOW)[t0 - a0 : t0 - a0 + t]  # [T, C, 16]
        imgs = torch.from_numpy(np.concatenate([faces[t0 : t0 + t], faces[ref : ref + 1]])).permute(0, 3, 1, 2)
        imgs = imgs.contiguous().float() / 255.0  # [T + 1, 3, 96, 96]
        if self.augment:
            imgs = color_jitter(imgs, rng)
            if rng.random() < 0.5:
                imgs = imgs.flip(-1)
        imgs = imgs * 2.0 - 1.0
        return {"faces": imgs[:t], "reference": imgs[t], "audio": gen_audio.float(), "audio_clean": clean.float()}


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TalkTrainConfig:
    """A talking-face training run; a recipe's keys override these defaults.

    Loss weights: ``l1`` (lower face), ``adversarial`` (non-saturating), ``r1`` (gamma of the
    R1 penalty, applied every ``r1_every`` steps), ``perceptual`` (feature matching in the
    discriminator's layers), ``identity`` (cosine distance of the discriminator's deepest
    features), ``orthogonality`` (canonical vs motion codes), ``sync`` (the lip-sync expert,
    ``sync_expert``: a checkpoint path or "pretrained"; 0 or None switches it off; it joins
    after ``sync_start`` steps).
    """

    model: str = "talking_face"
    model_config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # root (cache folder), frames, batch_size, items_per_file, val_items
    lr: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.99)
    l1: float = 1.0
    adversarial: float = 0.05
    r1: float = 1.0
    r1_every: int = 4
    perceptual: float = 0.5
    identity: float = 0.1
    orthogonality: float = 0.01
    sync: float = 0.03
    sync_expert: str | None = None
    sync_start: int = 0  # steps before the sync loss joins
    init_from: str | None = None  # a talking-face run's last.ckpt (or its folder): start from its weights
    gan_start: int = 200  # steps of reconstruction only before the discriminator joins
    max_steps: int = 2000
    max_epochs: int = 10000
    log_every_n_steps: int = 20
    checkpoint_every: int = 100
    val_every: int = 200  # training batches between validations (and exports)
    seed: int = 0
    num_workers: int = 0


def _masked_l1(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """Mean |a - b| over the mask's weight: a, b [..., 3, S, S], mask [1, 1, S, S]."""
    w = mask.expand_as(a)
    return ((a - b).abs() * w).sum() / w.sum().clamp_min(1e-8)


def orthogonality_loss(out: Mapping[str, Tensor]) -> Tensor:
    """The generator output's (``TalkingFaceNet``) canonical code [B, D] against its motion codes [B, T, D]: the mean
    squared cosine, 0 when every motion code is orthogonal to the identity's."""
    return F.cosine_similarity(out["canonical"][:, None], out["motion"], dim=-1).pow(2).mean()


def frames_sync_loss(expert: Any, frames: Tensor, audio_clean: Tensor) -> Tensor:
    """A frozen lip-sync expert's loss on generated frames: frames [B, T, 3, S, S] in [-1, 1], audio_clean
    [B, T, 80, 16] (the clean speech's window of each frame) -> its loss on the middle frame's window (a scalar)."""
    from avse.talking.expert import mouth_frames, sync_loss

    t = frames.shape[1]
    mouth = mouth_frames((frames + 1.0) / 2.0)  # [B, T, 48, 96]
    return sync_loss(expert, audio_clean[:, t // 2], mouth)


class TalkingFaceModule(pl.LightningModule):
    """Generator and discriminator trained together (manual optimisation)."""

    def __init__(self, cfg: TalkTrainConfig):
        super().__init__()
        self.cfg = cfg
        self.net_cfg = override(TalkingFaceConfig(), dict(cfg.model_config))
        self.net = TalkingFaceNet(self.net_cfg)
        self.disc = Discriminator(self.net_cfg)
        self.automatic_optimization = False
        # the frozen expert is kept out of the module's state (a list, not a submodule), so a run
        # can be resumed with the sync loss switched on or off
        self._expert: list[Any] = []
        if cfg.sync and cfg.sync_expert:
            from avse.talking.expert import SyncExpert

            expert = SyncExpert.from_pretrained(None if cfg.sync_expert == "pretrained" else cfg.sync_expert)
            for p in expert.parameters():
                p.requires_grad_(False)
            self._expert.append(expert.eval())

    @property
    def expert(self) -> Any:
        """The frozen lip-sync expert, or None when the sync loss is off."""
        return self._expert[0] if self._expert else None

    def _sync_loss(self, frames: Tensor, audio_clean: Tensor) -> Tensor:
        """frames [B, T, 3, S, S] in [-1, 1], audio_clean [B, T, 80, 16] -> the expert's loss on the middle window."""
        assert self.expert is not None
        return frames_sync_loss(self.expert, frames, audio_clean)

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        cfg = self.cfg
        opts = self.optimizers()
        assert isinstance(opts, list)
        opt_g, opt_d = opts
        real = batch["faces"]  # [B, T, 3, S, S]
        out = self.net(batch["audio"], batch["reference"], real)
        fake = out["frames"]
        mask = self.net.mask
        step = self.global_step // 2  # Lightning counts each optimizer's step
        use_gan = step >= cfg.gan_start and (cfg.adversarial > 0 or cfg.perceptual > 0 or cfg.identity > 0)
        # --- discriminator
        if use_gan:
            real_flat = real.flatten(0, 1)
            d_real, _ = self.disc(real_flat)
            d_fake, _ = self.disc(fake.detach().flatten(0, 1))
            loss_d = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
            if cfg.r1 > 0 and step % cfg.r1_every == 0:
                x = real_flat.detach().requires_grad_(True)
                score, _ = self.disc(x)
                (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
                loss_d = loss_d + cfg.r1 / 2 * cfg.r1_every * grad.pow(2).flatten(1).sum(1).mean()
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.step()
            self.log("train/d", loss_d.detach())
        # --- generator
        l1 = _masked_l1(fake, real, mask)
        loss = cfg.l1 * l1
        logs = {"train/l1": l1.detach()}
        if use_gan:
            for p in self.disc.parameters():
                p.requires_grad_(False)
            g_fake, f_fake = self.disc(fake.flatten(0, 1))
            with torch.no_grad():
                _, f_real = self.disc(real.flatten(0, 1))
            for p in self.disc.parameters():
                p.requires_grad_(True)
            adv = F.softplus(-g_fake).mean()
            fm = torch.stack([F.l1_loss(a, b) for a, b in zip(f_fake, f_real)]).mean()
            ident = (1.0 - F.cosine_similarity(f_fake[-1].mean(dim=(2, 3)), f_real[-1].mean(dim=(2, 3)), dim=1)).mean()
            loss = loss + cfg.adversarial * adv + cfg.perceptual * fm + cfg.identity * ident
            logs.update({"train/adv": adv.detach(), "train/perceptual": fm.detach(), "train/identity": ident.detach()})
        orth = orthogonality_loss(out)
        loss = loss + cfg.orthogonality * orth
        logs["train/orth"] = orth.detach()
        if self.expert is not None and step >= cfg.sync_start:
            sync = self._sync_loss(fake, batch["audio_clean"])
            loss = loss + cfg.sync * sync
            logs["train/sync"] = sync.detach()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()
        if not use_gan:  # keep the two optimizers' step counts together
            opt_d.zero_grad(set_to_none=True)
            opt_d.step()
        logs["train/loss"] = loss.detach()
        self.log_dict(logs, prog_bar=False)

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self.net.generator.noise_mode = "const"
        out = self.net(batch["audio"], batch["reference"], batch["faces"])
        self.net.generator.noise_mode = "random"
        fake, real = out["frames"], batch["faces"]
        l1 = _masked_l1(fake, real, self.net.mask)
        mse = (((fake - real) / 2.0) ** 2 * self.net.mask).sum() / (self.net.mask.expand_as(real).sum())
        self.log("val/l1", l1, batch_size=real.shape[0])
        self.log("val/psnr_lower", -10 * torch.log10(mse.clamp_min(1e-10)), batch_size=real.shape[0])
        if self.expert is not None:
            self.log("val/sync", self._sync_loss(fake, batch["audio_clean"]), batch_size=real.shape[0])
            self.log("val/sync_real", self._sync_loss(real, batch["audio_clean"]), batch_size=real.shape[0])
        if batch_idx == 0:
            self._samples = (batch["reference"][:4], fake[:4].detach(), real[:4])

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        betas = (float(cfg.betas[0]), float(cfg.betas[1]))
        g = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=betas)
        d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_d, betas=betas)
        return [g, d]


def warm_start_talking(module: TalkingFaceModule, source: str | Path) -> list[str]:
    """Load generator and discriminator weights from a talking-face run (``last.ckpt``, or the
    run folder holding it) into ``module``; weights the source lacks (a part the config adds)
    keep their initial values. Returns the names of those; ConfigError if shapes disagree."""
    path = Path(source)
    if path.is_dir():
        path = path / "last.ckpt"
    if not path.is_file():
        raise MediaError(path, "no such talking-face checkpoint to start from")
    state = torch.load(path, map_location="cpu", weights_only=False).get("state_dict", {})
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ConfigError(f"{path}: its weights do not fit this config ({str(err).splitlines()[0]})") from None
    if unexpected:
        raise ConfigError(f"{path}: weights this config has no place for, e.g. {unexpected[0]}")
    return list(missing)


def save_generator(path: str | Path, net: TalkingFaceNet, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the generator as a self-describing checkpoint (loads with ``weights_only=True``).

    Floating-point weights are stored as float16 (half the size; ``load_generator`` turns them
    back into float32); training resumes from the Lightning checkpoint, not from this file.
    """
    from avse import SAMPLE_RATE, VIDEO_FPS, __version__
    from avse.talking.model import config_dict
    from avse.utils.fs import atomic_path

    ckpt = {
        "format": 1,
        "model": "talking_face",
        "config": config_dict(net.cfg),
        "sample_rate": SAMPLE_RATE,
        "video_fps": VIDEO_FPS,
        "versions": {"avse": __version__, "torch": str(torch.__version__)},
        "state_dict": {k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
                       for k, v in net.state_dict().items()},
        "extra": dict(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


class _Export(Callback):
    """After each validation: the generator as ``last.avse.pt`` and a sample sheet ``samples.png``."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        assert isinstance(pl_module, TalkingFaceModule)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        save_generator(self.out_dir / "last.avse.pt", pl_module.net, {"step": trainer.global_step // 2, **metrics})
        samples = getattr(pl_module, "_samples", None)
        if samples is not None:
            _sample_sheet(self.out_dir / "samples.png", *samples)


def _sample_sheet(path: Path, ref: Tensor, fake: Tensor, real: Tensor) -> None:
    """Rows: reference | generated frames | real frames, for up to 4 items (images in [-1, 1])."""
    import cv2

    def img(x: Tensor) -> np.ndarray:
        return ((x.clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 0).cpu().numpy()

    rows = []
    for i in range(len(ref)):
        rows.append(np.concatenate([img(ref[i])] + [img(f) for f in fake[i]], axis=1))
        rows.append(np.concatenate([np.zeros_like(img(ref[i]))] + [img(f) for f in real[i]], axis=1))
    sheet = np.concatenate(rows, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def fit_talking(config: Mapping[str, Any], out_dir: str | Path, resume: bool = False, progress: bool = False) -> Path:
    """Train the talking-face generator from ``config`` (``TalkTrainConfig`` fields) into ``out_dir``.

    Writes Lightning checkpoints (``last.ckpt`` every ``checkpoint_every`` steps and at the end,
    so ``resume=True`` continues an interrupted run), the generator as ``last.avse.pt`` after
    each validation and at the end, ``samples.png`` and TensorBoard logs. Returns the path of
    ``last.avse.pt``.
    """
    from avse.training.module import AtomicCheckpointIO, _run_fit, run_folder_last

    cfg = override(TalkTrainConfig(), dict(config))
    data = dict(cfg.data)
    known = {"root", "frames", "batch_size", "items_per_file", "val_items"}
    if set(data) - known:
        raise ConfigError(f"unknown data option(s) {sorted(set(data) - known)}; expected {sorted(known)}")
    if "root" not in data:
        raise ConfigError("config['data'] needs 'root': a preprocessing cache made with `avse prepare CORPUS OUT --faces`")
    out_dir = Path(out_dir)
    last = run_folder_last(out_dir, resume)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = TalkingFaceModule(cfg)
    if cfg.init_from is not None and not resume:
        warm_start_talking(module, cfg.init_from)
    net_cfg = module.net_cfg
    frames = int(data.get("frames", 5))
    train_files = cache_items(data["root"], "train")
    val_files = cache_items(data["root"], "dev")[: int(data.get("val_items", 32))]
    train = FaceWindows(train_files, frames, True, net_cfg.audio_kind, net_cfg.n_mfcc, int(data.get("items_per_file", 1)), cfg.seed)
    val = FaceWindows(val_files, frames, False, net_cfg.audio_kind, net_cfg.n_mfcc, 1, cfg.seed)
    bs = int(data.get("batch_size", 4))
    train_dl = DataLoader(train, batch_size=bs, shuffle=True, num_workers=cfg.num_workers, drop_last=True)
    val_dl = DataLoader(val, batch_size=bs, shuffle=False, num_workers=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=list))
    every = ModelCheckpoint(dirpath=out_dir, filename="last", save_top_k=1, enable_version_counter=False,
                            every_n_train_steps=2 * cfg.checkpoint_every)
    trainer = pl.Trainer(
        default_root_dir=out_dir,
        logger=TensorBoardLogger(out_dir, name="tb"),
        callbacks=[every, _Export(out_dir)],
        max_epochs=cfg.max_epochs,
        max_steps=2 * cfg.max_steps,  # two optimizers: Lightning counts both
        accelerator="auto",
        devices=1,
        log_every_n_steps=cfg.log_every_n_steps,
        val_check_interval=min(cfg.val_every, len(train_dl)),
        enable_progress_bar=progress,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )
    _run_fit(trainer, module, _DataModule(train_dl, val_dl), str(last) if resume else None)
    trainer.save_checkpoint(last)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return save_generator(out_dir / "last.avse.pt", module.net, {"step": trainer.global_step // 2, **metrics})


class _DataModule(pl.LightningDataModule):
    def __init__(self, train: DataLoader, val: DataLoader):
        super().__init__()
        self._train, self._val = train, val

    def train_dataloader(self) -> DataLoader:
        return self._train

    def val_dataloader(self) -> DataLoader:
        return self._val


__all__ = ["cache_items", "color_jitter", "FaceWindows", "TalkTrainConfig", "TalkingFaceModule", "warm_start_talking", "save_generator",
           "fit_talking"]
