"""Training the lip-sync expert: clips from the face cache, heavy augmentation, contrastive Lightning module, ``train_expert``."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avse import SAMPLES_PER_FRAME
from avse.config import override
from avse.errors import AvseError, ConfigError
from avse.talking.audio import audio_windows
from avse.talking.expert import MOUTH_ROWS, Config, SyncExpert, lse_from_embeddings, stack_windows

#: rows of the face crop kept in memory for training: the mouth rows and a margin above them,
#: so that shifts, rotations and zooms still find real pixels
STORE_ROWS = (24, 96)
#: where the mouth sits in a 96 x 96 aligned face crop (x, y): the centre of rotations and zooms
MOUTH_CENTRE = (47.5, 63.5)
#: audio shifts (frames) of the validation's offset test; positive = audio late
VAL_SHIFTS = (-8, -4, -2, 0, 2, 4, 8)


@dataclass(frozen=True)
class ExpertTrainConfig:
    """Everything ``train_expert`` needs; a recipe (YAML) overrides these."""

    data: str = "data/talk_faces"  # the preprocessing cache (avse prepare ... --faces): {train,dev}/*.npz
    noise: list[str] = field(default_factory=lambda: ["data/real_models/train/interferers/noise"])  # folders of noise wavs
    expert: dict[str, Any] = field(default_factory=dict)  # SyncExpert Config overrides
    clips: int = 12  # utterances per batch
    windows: int = 15  # consecutive frames (windows) per utterance: same-clip negatives are 3 .. windows - 1 frames off
    steps_per_epoch: int = 150
    max_epochs: int = 12
    lr: float = 2e-3
    lr_min: float = 1e-4  # cosine decay from lr to lr_min over max_epochs * steps_per_epoch steps
    weight_decay: float = 1e-4
    temperature: float = 0.07  # of the contrastive softmax over cosine similarities
    bce_weight: float = 0.5  # weight of the calibration BCE (logit of "in sync") next to the contrastive loss
    ambiguous: int = 2  # windows this close (frames, same clip) are neither positive nor negative
    cross_clip: bool = False  # other clips' windows as negatives too (lets identity stand in for timing)
    val_items: int = 32  # dev utterances for the offset test
    max_offset: int = 15  # offset search of the validation (frames)
    snr_db: tuple[float, float] = (5.0, 30.0)
    clean_prob: float = 0.3  # batches items without added noise
    white_prob: float = 0.2  # of the noisy ones: white noise instead of a noise file
    gain_db: tuple[float, float] = (-12.0, 12.0)
    shift_px: float = 3.0
    scale: float = 0.07
    rotate_deg: float = 5.0
    jitter_px: float = 0.5  # per-frame alignment jitter (real tracking is not steady)
    squeeze: float = 0.0  # horizontal squeeze up to this fraction (a turned head), stretch up to a third of it
    invert_prob: float = 0.0  # gray levels inverted (a drawn mouth opens bright teeth, a real one a dark cavity)
    seed: int = 0
    init_from: str | None = None  # an expert checkpoint (.avse.pt) to start from (not on resume)

    def __post_init__(self) -> None:
        if self.clips < 2 or self.windows < 2 * self.ambiguous + 2:
            raise ConfigError(f"need clips >= 2 and windows >= 2 * ambiguous + 2, got {self.clips}, {self.windows}")
        if self.steps_per_epoch < 1 or self.max_epochs < 1:
            raise ConfigError("steps_per_epoch and max_epochs must be >= 1")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def _gray_rows(faces: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
    """faces uint8 [N, 96, 96, 3] -> gray uint8 [N, rows, 96] (BT.601)."""
    x = faces[:, rows[0] : rows[1]].astype(np.float32)
    return np.clip(x @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0, 255).astype(np.uint8)


class ClipStore:
    """The utterances of one split of the face cache, held in memory: gray face rows 24..96 and audio.

    ``refresh`` loads the files that appeared since the last call (the cache may still be
    growing); unreadable files are skipped and tried again at the next refresh.
    """

    def __init__(self, folder: str | Path, limit: int | None = None, min_frames: int = 1):
        self.folder = Path(folder)
        self.limit = limit
        self.min_frames = min_frames
        self.ids: list[str] = []
        self.faces: list[np.ndarray] = []  # uint8 [N, 72, 96]
        self.audio: list[np.ndarray] = []  # int16 [N * 640]

    def __len__(self) -> int:
        return len(self.ids)

    def refresh(self) -> int:
        """Load new cache files -> how many were added."""
        from avse.data.prepare import load_cached

        if not self.folder.is_dir():
            return 0
        known = set(self.ids)
        added = 0
        for path in sorted(self.folder.glob("*.npz")):
            if self.limit is not None and len(self.ids) >= self.limit:
                break
            if path.name.startswith(".") or path.stem in known:
                continue
            try:
                d = load_cached(path, keys=("faces", "audio"))
            except AvseError:
                continue  # still being written, or without faces
            if len(d["faces"]) < self.min_frames:
                continue
            self.ids.append(path.stem)
            self.faces.append(_gray_rows(d["faces"], STORE_ROWS))
            self.audio.append(np.round(d["audio"] * 32767).astype(np.int16))
            added += 1
        return added

    def mouths(self, i: int) -> Tensor:
        """Item i's mouth frames [N, 48, 96] float in [0, 1], unaugmented."""
        lo = MOUTH_ROWS[0] - STORE_ROWS[0]
        return torch.from_numpy(self.faces[i][:, lo : lo + MOUTH_ROWS[1] - MOUTH_ROWS[0]]).float() / 255.0

    def wav(self, i: int) -> np.ndarray:
        """Item i's audio float32 [N * 640]."""
        return self.audio[i].astype(np.float32) / 32767.0


def load_noises(folders: list[str], limit: int = 200) -> list[np.ndarray]:
    """Noise recordings (16 kHz wavs, at most ``limit``) from ``folders`` -> list of float32 [T]; missing folders are skipped."""
    from avse.audio.io import load_audio

    out: list[np.ndarray] = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.wav"))[:limit]:
            try:
                x = load_audio(path)[0]
            except AvseError:
                continue
            if len(x) >= 1600 and np.std(x) > 1e-5:
                out.append(x.astype(np.float32))
    return out


def augment_audio(wav: np.ndarray, rng: np.random.Generator, cfg: ExpertTrainConfig, noises: list[np.ndarray]) -> np.ndarray:
    """Random gain and additive noise (a noise recording or white noise at cfg.snr_db) on wav [T] -> [T]."""
    x = wav.astype(np.float32)
    if rng.random() >= cfg.clean_prob:
        power = float(np.mean(x**2)) + 1e-10
        snr = rng.uniform(*cfg.snr_db)
        if noises and rng.random() >= cfg.white_prob:
            src = noises[rng.integers(len(noises))]
            reps = int(math.ceil(len(x) / len(src))) + 1
            start = int(rng.integers(len(src)))
            n = np.tile(src, reps)[start : start + len(x)]
        else:
            n = rng.standard_normal(len(x)).astype(np.float32)
        n = n * np.sqrt(power / (float(np.mean(n**2)) + 1e-10) * 10 ** (-snr / 10))
        x = x + n
    x = x * 10 ** (rng.uniform(*cfg.gain_db) / 20)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return x / peak * 0.99 if peak > 0.99 else x


def augment_video(frames: Tensor, rng: np.random.Generator, cfg: ExpertTrainConfig) -> Tensor:
    """One clip's face rows 24..96, uint8 [L, 72, 96] -> augmented mouth frames [L, 48, 96] float in [0, 1].

    One random similarity for the whole clip (shift, zoom, rotation about the mouth, horizontal
    flip, a horizontal squeeze) plus a small per-frame jitter, then gamma, contrast, brightness,
    flicker, blur or a lower resolution, pixel noise, and sometimes inverted gray levels.
    """
    n = frames.shape[0]
    src = frames.float()[:, None] / 255.0  # [L, 1, 72, 96]
    h_out, w = MOUTH_ROWS[1] - MOUTH_ROWS[0], 96
    s = 1.0 + rng.uniform(-cfg.scale, cfg.scale) + rng.normal(0, 0.01, n)  # [L]
    th = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)) + rng.normal(0, np.deg2rad(0.5), n)
    t = rng.uniform(-cfg.shift_px, cfg.shift_px, 2)[None] + rng.normal(0, cfg.jitter_px, (n, 2))  # [L, 2]
    flip = rng.random() < 0.5
    ys, xs = torch.meshgrid(torch.arange(MOUTH_ROWS[0], MOUTH_ROWS[1], dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")  # output pixels (crop coordinates)
    cx, cy = MOUTH_CENTRE
    px = xs[None] - cx - torch.from_numpy(t[:, 0])[:, None, None]  # [L, H, W]
    py = ys[None] - cy - torch.from_numpy(t[:, 1])[:, None, None]
    ux = rng.uniform(1.0 - cfg.squeeze, 1.0 + cfg.squeeze / 3)  # horizontal squeeze of the whole clip
    c = torch.from_numpy(np.cos(th) / s)[:, None, None]
    sn = torch.from_numpy(np.sin(th) / s)[:, None, None]
    sx = cx + (c * px + sn * py) / ux  # inverse rotation and zoom
    sy = cy - sn * px + c * py
    if flip:
        sx = 2 * cx - sx
    gx = sx / (w - 1) * 2 - 1
    gy = (sy - STORE_ROWS[0]) / (STORE_ROWS[1] - STORE_ROWS[0] - 1) * 2 - 1
    grid = torch.stack([gx, gy], -1).float()  # [L, H, W, 2]
    x = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)  # [L, 1, H, W]
    r = rng.random()
    if r < 0.35:  # blur
        sigma = rng.uniform(0.4, 1.6)
        k = torch.arange(-3, 4, dtype=torch.float32)
        g = torch.exp(-0.5 * (k / sigma) ** 2)
        g = g / g.sum()
        x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), g.view(1, 1, 1, 7))
        x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), g.view(1, 1, 7, 1))
    elif r < 0.6:  # lower resolution (small faces, compression)
        f = rng.uniform(0.35, 0.75)
        small = F.interpolate(x, size=(max(8, int(h_out * f)), max(16, int(w * f))), mode="area")
        x = F.interpolate(small, size=(h_out, w), mode="bilinear", align_corners=False)
    x = x.clamp(0, 1) ** float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.5, 1.5) + mean + rng.uniform(-0.2, 0.2)
    x = x + torch.from_numpy(rng.normal(0, 0.015, n)).float()[:, None, None, None]  # flicker
    x = x + torch.randn_like(x) * float(rng.uniform(0, 0.05))
    x = x.clamp(0, 1)
    if rng.random() < cfg.invert_prob:
        x = 1.0 - x
    return x[:, 0]  # [L, 48, 96]


class TrainBatches(torch.utils.data.IterableDataset):
    """Batches of ``clips`` utterances x ``windows`` consecutive frames, augmented.

    Each batch: video [C, L, 5, 48, 96] float, audio [C, L, 80, 16] float (the windows of frames
    t0 .. t0 + L - 1 of each clip, the audio augmented over the whole utterance first). Drawn
    from a generator seeded by (seed, epoch); the store is refreshed at each epoch.
    """

    def __init__(self, store: ClipStore, noises: list[np.ndarray], cfg: ExpertTrainConfig):
        super().__init__()
        self.store, self.noises, self.cfg = store, noises, cfg
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Which epoch's draws to make (and refresh the store)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.cfg.steps_per_epoch

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        cfg = self.cfg
        self.store.refresh()
        if len(self.store) < cfg.clips:
            raise ConfigError(f"{self.store.folder}: {len(self.store)} usable utterances, a batch needs {cfg.clips}")
        rng = np.random.default_rng([cfg.seed, self.epoch])
        lw = cfg.windows
        for _ in range(cfg.steps_per_epoch):
            vids, auds = [], []
            for i in rng.choice(len(self.store), cfg.clips, replace=False):
                faces = self.store.faces[i]
                n = len(faces)
                t0 = int(rng.integers(2, n - lw - 2 + 1))  # windows t0 .. t0 + lw - 1, all frames inside
                clip = augment_video(torch.from_numpy(faces[t0 - 2 : t0 + lw + 2]), rng, cfg)  # [L + 4, 48, 96]
                vids.append(stack_windows(clip)[2 : 2 + lw])  # [L, 5, 48, 96]
                wav = augment_audio(self.store.wav(i), rng, cfg, self.noises)
                auds.append(audio_windows(wav, n_frames=n)[t0 : t0 + lw])  # [L, 80, 16]
            yield {"video": torch.stack(vids), "audio": torch.stack(auds)}


def validate_offsets(expert: SyncExpert, store: ClipStore, shifts: tuple[int, ...] = VAL_SHIFTS,
                     max_offset: int = 15) -> dict[str, float]:
    """The offset test on unaugmented clips: each item's audio shifted by each of ``shifts`` frames.

    Returns acc (fraction of (item, shift) with the found offset within +-1 frame of the shift),
    exact (found exactly), lse_d / lse_c (unshifted, mean over items) and lse_d_swapped /
    lse_c_swapped (each item's faces with the next item's audio).
    """
    hits, exact, d, c, ds, cs = [], [], [], [], [], []
    expert.eval()
    embs = []
    for i in range(len(store)):
        if len(store.faces[i]) < max_offset + 5:
            continue
        mouths = store.mouths(i)  # [N, 48, 96]
        n = len(mouths)
        with torch.no_grad():
            v = expert.embed_video(stack_windows(mouths))  # [N, D]
        wav = store.wav(i)
        embs.append((v, wav))
        for s in shifts:
            shifted = np.zeros_like(wav)
            k = s * SAMPLES_PER_FRAME
            if k >= 0:
                shifted[k:] = wav[: len(wav) - k]
            else:
                shifted[:k] = wav[-k:]
            with torch.no_grad():
                a = expert.embed_audio(audio_windows(shifted, n_frames=n))
            r = lse_from_embeddings(v, a, max_offset)
            hits.append(abs(r["offset_frames"] - s) <= 1)
            exact.append(r["offset_frames"] == s)
            if s == 0:
                d.append(r["lse_d"])
                c.append(r["lse_c"])
    for j, (v, _) in enumerate(embs):
        wav = embs[(j + 1) % len(embs)][1]
        n = v.shape[0]
        wav = np.pad(wav[: n * SAMPLES_PER_FRAME], (0, max(0, n * SAMPLES_PER_FRAME - len(wav))))
        with torch.no_grad():
            a = expert.embed_audio(audio_windows(wav, n_frames=n))
        r = lse_from_embeddings(v, a, max_offset)
        ds.append(r["lse_d"])
        cs.append(r["lse_c"])
    if not hits:
        return {}
    return {"acc": float(np.mean(hits)), "exact": float(np.mean(exact)), "lse_d": float(np.mean(d)), "lse_c": float(np.mean(c)),
            "lse_d_swapped": float(np.mean(ds)), "lse_c_swapped": float(np.mean(cs)), "items": float(len(embs))}


class _ValOnce(torch.utils.data.Dataset):
    """One dummy item: the validation works on the whole dev store in ``validation_step``."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> int:
        return i


# ---------------------------------------------------------------------------------------------
# Lightning
# ---------------------------------------------------------------------------------------------


def contrastive_losses(v: Tensor, a: Tensor, expert: SyncExpert, temperature: float, ambiguous: int,
                       cross_clip: bool = False) -> dict[str, Tensor]:
    """Embeddings v, a [C, L, D] (clip c, frame l) -> dict(nce, bce, acc) scalars.

    Every audio window against the video windows of its own clip (and back; with ``cross_clip``
    against every window of the batch): the softmax over cosine / temperature must pick the
    aligned one; windows of the same clip 1 .. ``ambiguous`` frames off are left out (they share
    most frames). Candidates from the same clip share the face and the voice, so only timing
    tells them apart: other clips can be told apart by who speaks (the synthetic corpus ties a
    face to a voice), a shortcut that real faces do not reward. The calibration BCE trains
    ``expert.logit``: aligned pairs 1, the other candidates 0 (the two classes weighted
    equally). acc: how often the aligned window is the closest of its own clip's.
    """
    c, w, dim = v.shape
    sims = a.reshape(-1, dim) @ v.reshape(-1, dim).T  # [CL, CL]: audio rows, video columns
    clip = torch.arange(c).repeat_interleave(w)
    pos = torch.arange(w).repeat(c)
    same = clip[:, None] == clip[None, :]
    gap = (pos[:, None] - pos[None, :]).abs()
    skip = same & (gap >= 1) & (gap <= ambiguous)  # [CL, CL]
    if not cross_clip:
        skip = skip | ~same
    logits = (sims / temperature).masked_fill(skip, float("-inf"))
    target = torch.arange(c * w)
    nce = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    eye = torch.eye(c * w, dtype=torch.bool)
    z = expert.logit(sims)
    neg = ~eye & ~skip
    bce = 0.5 * (F.binary_cross_entropy_with_logits(z[eye], torch.ones(c * w))
                 + F.binary_cross_entropy_with_logits(z[neg], torch.zeros(int(neg.sum()))))
    own = sims.masked_fill(~same | skip, float("-inf"))  # (skip already holds ~same without cross_clip)
    acc = (own.argmax(1) == target).float().mean()
    return {"nce": nce, "bce": bce, "acc": acc}


class ExpertModule(pl.LightningModule):
    """Trains a ``SyncExpert`` on ``TrainBatches``; validates with ``validate_offsets`` on the dev store."""

    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        self.save_hyperparameters({"config": dict(config)})
        self.cfg = cfg = _train_config(config)
        self.expert = SyncExpert(override(Config(), _tuples(cfg.expert)))
        self.val_store: ClipStore | None = None
        self.train_batches: TrainBatches | None = None

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        """Contrastive + calibration loss of one batch."""
        vid, aud = batch["video"], batch["audio"]  # [C, L, 5, 48, 96], [C, L, 80, 16]
        c, w = vid.shape[:2]
        v = self.expert.embed_video(vid.flatten(0, 1)).view(c, w, -1)  # [C, L, D]
        a = self.expert.embed_audio(aud.flatten(0, 1)).view(c, w, -1)
        out = contrastive_losses(v, a, self.expert, self.cfg.temperature, self.cfg.ambiguous, self.cfg.cross_clip)
        loss = out["nce"] + self.cfg.bce_weight * out["bce"]
        for k, x in out.items():
            self.log(f"train/{k}", x, prog_bar=k == "acc", batch_size=c)
        self.log("train/loss", loss, batch_size=c)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """The offset test of the dev store (``validate_offsets``)."""
        dev = Path(self.cfg.data) / "dev"
        if self.val_store is None or (self.val_store.folder != dev and any(dev.glob("*.npz"))):
            # the dev split, or while it is not built yet a few train items (a smoke test, not a score)
            folder = dev if any(dev.glob("*.npz")) else Path(self.cfg.data) / "train"
            limit = self.cfg.val_items if folder == dev else 8
            self.val_store = ClipStore(folder, limit=limit, min_frames=self.cfg.max_offset + 5)
        self.val_store.refresh()
        res = validate_offsets(self.expert, self.val_store, max_offset=self.cfg.max_offset)
        if not res:
            res = {"acc": 0.0}
        res["on_dev"] = float(self.val_store.folder.name == "dev")
        for k, x in res.items():
            self.log(f"val/{k}", x, prog_bar=k == "acc", batch_size=1)

    def on_train_epoch_start(self) -> None:
        """Tell the batches which epoch to draw."""
        if self.train_batches is not None:
            self.train_batches.set_epoch(self.current_epoch)

    def configure_optimizers(self) -> Any:
        """AdamW with a per-step cosine decay from lr to lr_min over the whole run."""
        cfg = self.cfg
        opt = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = cfg.max_epochs * cfg.steps_per_epoch
        floor = cfg.lr_min / cfg.lr

        def factor(step: int) -> float:
            t = min(step, total) / total
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class ExportExpert(pl.Callback):
    """After each validation: ``last.avse.pt`` (the expert now) and ``best.avse.pt`` (best val/acc so far, ties -> later)."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = out

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the expert's checkpoints with its scores in ``extra``."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        assert isinstance(pl_module, ExpertModule)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        extra = {"epoch": int(trainer.current_epoch), "global_step": int(trainer.global_step), "metrics": metrics,
                 "train": {"data": pl_module.cfg.data, "items": len(pl_module.train_batches.store) if pl_module.train_batches else 0}}
        pl_module.expert.save(self.out / "last.avse.pt", extra)
        best_path = self.out / "best.avse.pt"
        score = (metrics.get("val/on_dev", 0.0), metrics.get("val/acc", 0.0))  # a dev score beats a smoke-test one
        best = (-1.0, -1.0)
        if best_path.is_file():
            old = SyncExpert.from_pretrained(best_path).info.get("extra", {}).get("metrics", {})
            best = (float(old.get("val/on_dev", 0.0)), float(old.get("val/acc", -1.0)))
        if score >= best:
            pl_module.expert.save(best_path, extra)


def _tuples(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _train_config(config: Mapping[str, Any]) -> ExpertTrainConfig:
    """A recipe dict -> ExpertTrainConfig; a ``model`` key (how ``avse train`` routes recipes) must say sync_expert."""
    config = dict(config)
    model = config.pop("model", "sync_expert")
    if model != "sync_expert":
        raise ConfigError(f"a sync expert recipe has model: sync_expert, got {model!r}")
    return override(ExpertTrainConfig(), _tuples({k: v for k, v in config.items() if k not in ("noise", "expert")})
                    | {k: config[k] for k in ("noise", "expert") if k in config})


def train_expert(config: Mapping[str, Any], out: Path, resume: bool = False, progress: bool = False) -> Path:
    """Train a sync expert from ``config`` (``ExpertTrainConfig`` fields, and optionally ``model: sync_expert``)
    into ``out`` -> the best avse checkpoint's path (best dev offset accuracy, ``val/acc``).

    ``out`` receives ``last.ckpt`` (Lightning, after every epoch: ``resume=True`` continues from it;
    raise ``max_epochs`` to train further), ``best.avse.pt`` / ``last.avse.pt`` (the expert:
    ``SyncExpert.from_pretrained``) and TensorBoard logs in ``out/tb``. The cache folder may still be
    growing: each epoch picks up the new files.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from avse.training.module import AtomicCheckpointIO, run_folder_last

    cfg = _train_config(config)
    out = Path(out)
    last = run_folder_last(out, resume)
    data = Path(cfg.data)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = ExpertModule(asdict(cfg))
    if cfg.init_from is not None and not resume:
        module.expert.load_state_dict(SyncExpert.from_pretrained(cfg.init_from).state_dict())
    store = ClipStore(data / "train", min_frames=cfg.windows + 4)
    module.train_batches = TrainBatches(store, load_noises(cfg.noise), cfg)
    out.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(
        default_root_dir=out,
        logger=TensorBoardLogger(out, name="tb"),
        callbacks=[ModelCheckpoint(dirpath=out, filename="last", save_top_k=1, enable_version_counter=False), ExportExpert(out)],
        max_epochs=cfg.max_epochs,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=5.0,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
    )
    train = torch.utils.data.DataLoader(module.train_batches, batch_size=None, num_workers=0)
    val = torch.utils.data.DataLoader(_ValOnce(), batch_size=None)
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=str(last) if resume else None)
    best = out / "best.avse.pt"
    if not best.is_file():
        raise ConfigError("training saved no expert (no validation ran?)")
    return best


__all__ = ["ExpertTrainConfig", "ClipStore", "TrainBatches", "augment_video", "augment_audio", "load_noises",
           "validate_offsets", "contrastive_losses", "ExpertModule", "ExportExpert", "train_expert"]
