"""The lip-sync expert (SyncNet-style): mouth-window and speech-window embeddings, sync loss, LSE-D / LSE-C and A/V offset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS, __version__
from avse.api import PRETRAINED_DIR
from avse.errors import ConfigError, MediaError, first_line
from avse.talking.audio import WINDOW, audio_windows
from avse.utils.fs import atomic_path

if TYPE_CHECKING:
    from collections.abc import Callable

    from avse.video.sync import SyncEstimate

#: the checkpoint's model name
MODEL_NAME = "sync_expert"
#: where the trained expert ships
PRETRAINED = PRETRAINED_DIR / "sync_expert.avse.pt"
#: video frames in one window (0.2 s at 25 fps), centred on the frame the audio window belongs to
FRAMES = 5
#: rows of the 96 x 96 aligned face crop the expert sees: the lower half (nose base, mouth, chin)
MOUTH_ROWS = (48, 96)
#: ITU-R BT.601 luma weights (R, G, B), as OpenCV's RGB -> gray
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Config:
    """Sizes of the expert. ``video_channels`` / ``audio_channels``: widths of the conv stages."""

    frames: int = FRAMES
    height: int = MOUTH_ROWS[1] - MOUTH_ROWS[0]
    width: int = 96
    n_mels: int = 80
    audio_width: int = WINDOW
    video_channels: tuple[int, ...] = (24, 32, 48, 64, 96, 128)
    audio_channels: tuple[int, ...] = (32, 32, 64, 64, 96, 96)
    embed_dim: int = 128


_Config = Config


def _block(c_in: int, c_out: int, stride: int | tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


#: strides of the conv stages (video on [48, 96]: -> [3, 6]; audio on [80, 16]: -> [5, 2])
_VIDEO_STRIDES: tuple[Any, ...] = (2, 2, 1, 2, 1, 2)
_AUDIO_STRIDES: tuple[Any, ...] = (1, (2, 1), 2, 1, 2, 2)


class SyncExpert(nn.Module):
    """Says whether 5 mouth frames and 0.2 s of speech belong together.

    Video: 5 consecutive frames of the lower half of aligned face crops (``mouth_frames``),
    gray, [B, 5, 48, 96] in [0, 1]; each window is standardised on its own (mean and spread over
    its pixels: brightness and contrast do not matter) and the 4 frame differences are added as
    channels. Audio: the 16-frame log-mel window of the middle frame
    (``avse.talking.audio.audio_windows``), [B, 80, 16]. Both go through small conv stacks
    (BatchNorm, ReLU), average + max pooling and a linear layer to L2-normalised embeddings [B, D].
    ``logit`` maps their cosine similarity to the log-odds of being in sync (a learnt
    scale and bias), which ``sync_loss`` uses.
    """

    Config = Config
    info: dict[str, Any]  # what ``from_pretrained`` read besides the weights (config, versions, extra)

    def __init__(self, config: _Config | None = None):
        super().__init__()
        self.config = cfg = config or Config()
        self.info = {}
        if len(cfg.video_channels) != len(_VIDEO_STRIDES) or len(cfg.audio_channels) != len(_AUDIO_STRIDES):
            raise ConfigError(f"video_channels and audio_channels need {len(_VIDEO_STRIDES)} and {len(_AUDIO_STRIDES)} widths")
        chans = [2 * cfg.frames - 1, *cfg.video_channels]
        self.video = nn.Sequential(*[_block(chans[i], chans[i + 1], s) for i, s in enumerate(_VIDEO_STRIDES)])
        chans = [1, *cfg.audio_channels]
        self.audio = nn.Sequential(*[_block(chans[i], chans[i + 1], s) for i, s in enumerate(_AUDIO_STRIDES)])
        self.video_head = nn.Linear(2 * cfg.video_channels[-1], cfg.embed_dim)
        self.audio_head = nn.Linear(2 * cfg.audio_channels[-1], cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(10.0))  # cosine -> log-odds of "in sync"
        self.logit_bias = nn.Parameter(torch.tensor(-5.0))

    @staticmethod
    def _pool(x: Tensor) -> Tensor:
        return torch.cat([x.mean((-2, -1)), x.amax((-2, -1))], -1)  # [B, C, H, W] -> [B, 2C]

    def _check(self, x: Tensor, shape: tuple[int, ...], what: str) -> None:
        if not isinstance(x, Tensor) or x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(f"{what} must be [B, {', '.join(map(str, shape))}], got {got}")

    def embed_video(self, x: Tensor) -> Tensor:
        """Mouth windows [B, 5, 48, 96] (gray, [0, 1]) -> L2-normalised embeddings [B, D]."""
        cfg = self.config
        self._check(x, (cfg.frames, cfg.height, cfg.width), "mouth windows")
        x = x.float()
        mean = x.mean((1, 2, 3), keepdim=True)
        std = x.std((1, 2, 3), keepdim=True)
        x = (x - mean) / (std + 0.02)  # [B, 5, H, W], per window
        x = torch.cat([x, 2.0 * (x[:, 1:] - x[:, :-1])], 1)  # [B, 9, H, W]: frames and their differences
        h = self._pool(self.video(x))  # [B, 2C]
        return F.normalize(self.video_head(h), dim=-1)  # [B, D]

    def embed_audio(self, a: Tensor) -> Tensor:
        """Log-mel windows [B, 80, 16] (``audio_windows`` scaling) -> L2-normalised embeddings [B, D]."""
        cfg = self.config
        self._check(a, (cfg.n_mels, cfg.audio_width), "audio windows")
        h = self._pool(self.audio(a.float()[:, None]))  # [B, 1, 80, 16] -> [B, 2C]
        return F.normalize(self.audio_head(h), dim=-1)  # [B, D]

    def forward(self, a: Tensor, v: Tensor) -> Tensor:
        """Audio windows [B, 80, 16] and mouth windows [B, 5, 48, 96] -> cosine similarity [B] in [-1, 1]."""
        return (self.embed_audio(a) * self.embed_video(v)).sum(-1)

    def logit(self, similarity: Tensor) -> Tensor:
        """Cosine similarity [...] -> log-odds [...] that the pair is in sync (sigmoid of it: the probability)."""
        return self.logit_scale * similarity + self.logit_bias

    # -- checkpoints -----------------------------------------------------------------------------

    def checkpoint(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The self-describing checkpoint dict (name, config, rates, versions, weights, ``extra``)."""
        ckpt: dict[str, Any] = {
            "format": 1,
            "model": MODEL_NAME,
            "config": asdict(self.config),
            "sample_rate": SAMPLE_RATE,
            "video_fps": VIDEO_FPS,
            "interface": {"video": [self.config.frames, self.config.height, self.config.width],
                          "audio": [self.config.n_mels, self.config.audio_width], "mouth_rows": list(MOUTH_ROWS),
                          "embed_dim": self.config.embed_dim},
            "versions": {"avse": __version__, "torch": str(torch.__version__)},
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict().items()},
        }
        if extra is not None:
            ckpt["extra"] = dict(extra)
        return ckpt

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``checkpoint(extra)`` to ``path`` atomically -> ``path``."""
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.checkpoint(extra), tmp)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path | dict[str, Any] | None = None) -> SyncExpert:
        """The expert saved at ``path`` (a checkpoint dict or file; None: the shipped one), in eval mode.

        Its ``info`` attribute holds the checkpoint without the weights (config, versions, extra:
        training data, epoch, validation scores). Raises MediaError for a missing or foreign file,
        ConfigError for an unknown config key.
        """
        if isinstance(path, dict):
            ckpt, where = path, "checkpoint dict"
        else:
            from avse.models.checkpoint import read_checkpoint

            where = str(PRETRAINED if path is None else path)
            if path is None and not PRETRAINED.is_file():
                raise MediaError(PRETRAINED, "the shipped sync expert is not installed (train one: avse train configs/talking/sync_expert.yaml)")
            ckpt = read_checkpoint(PRETRAINED if path is None else path)
        if ckpt.get("model") != MODEL_NAME:
            raise MediaError(where, f"holds a {ckpt.get('model')!r} model, not a {MODEL_NAME}")
        names = {f.name for f in fields(Config)}
        unknown = sorted(set(ckpt["config"]) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown sync expert option(s) {', '.join(unknown)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()}
        cfg = Config(**values)
        model = cls(cfg)
        try:
            model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:
            raise MediaError(where, f"weights do not fit the sync expert: {first_line(err, with_type=False)}") from None
        model.info = {k: v for k, v in ckpt.items() if k != "state_dict"}
        return model.eval()


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def mouth_frames(faces: np.ndarray | Tensor) -> Tensor:
    """Aligned face crops -> the gray lower half the expert sees, float in [0, 1].

    faces: uint8 [..., 96, 96, 3] RGB (numpy or torch; e.g. a cache file's ``faces`` [N, 96, 96, 3])
    -> float32 [..., 48, 96]; or a float torch tensor [..., 3, 96, 96] in [0, 1] (a generator's
    output) -> [..., 48, 96] of the same dtype, differentiable. Gray = BT.601 luma.
    """
    x = faces if isinstance(faces, Tensor) else torch.from_numpy(np.ascontiguousarray(faces))
    lo, hi = MOUTH_ROWS
    if x.dtype == torch.uint8:
        if x.ndim < 3 or tuple(x.shape[-3:]) != (96, 96, 3):
            raise ConfigError(f"uint8 faces must be [..., 96, 96, 3] RGB, got {tuple(x.shape)}")
        w = torch.tensor(_LUMA, dtype=torch.float32)
        return (x[..., lo:hi, :, :].float() @ w) / 255.0  # [..., 48, 96]
    if not torch.is_floating_point(x) or x.ndim < 3 or tuple(x.shape[-3:]) != (3, 96, 96):
        raise ConfigError(f"faces must be uint8 [..., 96, 96, 3] or float [..., 3, 96, 96], got {x.dtype} {tuple(x.shape)}")
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
    return torch.einsum("...chw,c->...hw", x[..., lo:hi, :], w)  # [..., 48, 96]


def stack_windows(frames: Tensor, width: int = FRAMES) -> Tensor:
    """Per-frame windows: frames [..., N, H, W] -> [..., N, width, H, W], window i = frames i - width//2 .. i + width//2.

    Frames past either end repeat the edge frame. A gather: differentiable, no copy of the
    frames' autograd history is lost.
    """
    if frames.ndim < 3 or frames.shape[-3] < 1:
        raise ConfigError(f"frames must be [..., N >= 1, H, W], got {tuple(frames.shape)}")
    n = frames.shape[-3]
    idx = (torch.arange(n, device=frames.device)[:, None] + torch.arange(width, device=frames.device) - width // 2).clamp(0, n - 1)
    return frames[..., idx.reshape(-1), :, :].reshape(*frames.shape[:-3], n, width, *frames.shape[-2:])


def clip_embeddings(expert: SyncExpert, faces: np.ndarray | Tensor, audio: np.ndarray | Tensor,
                    batch: int = 256) -> tuple[Tensor, Tensor]:
    """A whole clip -> (video embeddings [N, D], audio embeddings [N, D]), one per video frame.

    faces: aligned face crops (see ``mouth_frames``) of N frames; audio: [T] float at 16 kHz,
    sample 0 at the start of frame 0 (cut or padded with silence to N * 640). No gradients.
    """
    v = video_embeddings(expert, faces, batch)
    return v, audio_embeddings(expert, audio, v.shape[0], batch)


def video_embeddings(expert: SyncExpert, faces: np.ndarray | Tensor, batch: int = 256) -> Tensor:
    """Aligned face crops of N frames (see ``mouth_frames``) -> video embeddings [N, D], one per frame. No gradients."""
    return mouth_embeddings(expert, mouth_frames(faces), batch)


def mouth_embeddings(expert: SyncExpert, mouths: Tensor, batch: int = 256) -> Tensor:
    """The gray lower faces of N frames (``mouth_frames``: float [N, 48, 96]) -> video embeddings [N, D], one per
    frame, as ``stack_windows`` windows them (edge frames repeated), ``batch`` windows at a time: memory follows the
    batch, not the clip. No gradients."""
    if mouths.ndim != 3 or mouths.shape[0] < 1:
        raise ConfigError(f"mouths must hold one clip [N, 48, 96], got {tuple(mouths.shape)}")
    n = mouths.shape[0]
    dev = next(expert.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            idx = (torch.arange(i, min(i + batch, n))[:, None] + torch.arange(FRAMES) - FRAMES // 2).clamp(0, n - 1)
            out.append(expert.embed_video(mouths[idx].float().to(dev)))  # windows [b, 5, 48, 96]
    return torch.cat(out).cpu()


def audio_embeddings(expert: SyncExpert, audio: np.ndarray | Tensor, n: int, batch: int = 256) -> Tensor:
    """Speech [T] at 16 kHz, sample 0 at the start of frame 0 (cut or padded with silence to n * 640) -> audio
    embeddings [n, D], one per video frame. No gradients."""
    wav = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not isinstance(audio, Tensor) else audio).float()
    if wav.ndim != 1:
        raise ConfigError(f"audio must be mono [T], got shape {tuple(wav.shape)}")
    wav = F.pad(wav[: n * SAMPLES_PER_FRAME], (0, max(0, n * SAMPLES_PER_FRAME - wav.numel())))
    dev = next(expert.parameters()).device
    with torch.no_grad():
        wins = audio_windows(wav, n_frames=n)  # [N, 80, 16]
        a = torch.cat([expert.embed_audio(wins[i : i + batch].to(dev)) for i in range(0, n, batch)])
    return a.cpu()


# ---------------------------------------------------------------------------------------------
# Loss and metrics
# ---------------------------------------------------------------------------------------------


def sync_loss(expert: SyncExpert, audio_win: Tensor, mouth: Tensor) -> Tensor:
    """Wav2Lip's expert sync loss: audio windows [B, 80, 16] and (generated) mouth windows [B, 5, 48, 96] -> scalar.

    The mean binary cross-entropy of "in sync" for each pair: -log sigmoid(expert.logit(cos)).
    Differentiable with respect to ``mouth`` (and ``audio_win``); the expert is used as it is:
    freeze it first (``expert.eval().requires_grad_(False)``) so only the generator learns.
    """
    sim = expert(audio_win, mouth)  # [B]
    logit = expert.logit(sim)
    return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))


def offset_distances(v: Tensor, a: Tensor, max_offset: int) -> Tensor:
    """Per-frame embeddings v [N, D], a [N, D] -> mean distance [2 max_offset + 1] at offsets -max..max frames.

    Entry k (offset o = k - max_offset) is the mean over frames t of ||v[t] - a[t + o]||
    (Euclidean, between unit vectors: 0 .. 2) over the frames where both exist.
    """
    n = v.shape[0]
    if a.shape != v.shape or max_offset < 0 or n - max_offset < 1:
        raise ConfigError(f"need v and a of one shape [N, D] with N > max_offset; got {tuple(v.shape)}, {tuple(a.shape)}, {max_offset}")
    d = frame_distances(v, a, max_offset)
    out = torch.empty(2 * max_offset + 1, dtype=torch.float64)
    for k, o in enumerate(range(-max_offset, max_offset + 1)):
        out[k] = d[k, max(0, -o) : min(n, n - o)].mean()  # the frames where both exist
    return out


def frame_distances(v: Tensor, a: Tensor, max_offset: int) -> Tensor:
    """Per-frame embeddings v [N, D], a [N, D] -> float64 [2 max_offset + 1, N]: entry [k, t] is ||v[t] - a[t + o]||
    at offset o = k - max_offset, NaN where frame t + o does not exist."""
    n = v.shape[0]
    vv, aa = v.double(), a.double()
    d = torch.full((2 * max_offset + 1, n), float("nan"), dtype=torch.float64)
    for k, o in enumerate(range(-max_offset, max_offset + 1)):
        t0, t1 = max(0, -o), min(n, n - o)  # v[t0:t1] meets a[t0 + o:t1 + o]
        if t1 > t0:
            d[k, t0:t1] = (vv[t0:t1] - aa[t0 + o : t1 + o]).norm(dim=-1)
    return d


def lse(expert: SyncExpert, faces: np.ndarray | Tensor, audio: np.ndarray | Tensor, max_offset: int = 15) -> dict[str, Any]:
    """SyncNet's evaluation of a talking-face clip: LSE-D, LSE-C and the A/V offset.

    faces: N aligned face crops (uint8 [N, 96, 96, 3] or float [N, 3, 96, 96], see ``mouth_frames``);
    audio: [T] float at 16 kHz, sample 0 at the start of frame 0. For each offset o in
    -max_offset .. max_offset frames, ``dists[o + max_offset]`` is the mean over frames t of the
    distance between the video embedding of frame t and the audio embedding of frame t + o
    (``offset_distances``). LSE-D = min(dists), LSE-C = median(dists) - LSE-D, offset_frames =
    the o of the minimum: positive = the audio is late (a sound is heard o frames after the mouth
    makes it), as in ``avse.video.sync``. The distance is the Euclidean distance between the
    L2-normalised embeddings (0 .. 2, = sqrt(2 - 2 cos)); SyncNet's published LSE-D / LSE-C use
    unnormalised embeddings and are on another scale: compare numbers of this expert only.
    Returns dict(lse_d float, lse_c float, offset_frames int, dists float64 numpy [2 max_offset + 1]).
    Needs N >= max_offset + 5 frames (ConfigError).
    """
    v, a = clip_embeddings(expert, faces, audio)
    n = v.shape[0]
    if max_offset < 0 or n < max_offset + 5:
        raise ConfigError(f"lse needs at least max_offset + 5 = {max_offset + 5} frames, got {n}")
    return lse_from_embeddings(v, a, max_offset)


def lse_from_embeddings(v: Tensor, a: Tensor, max_offset: int = 15, near: int | None = None,
                        center: int = 0) -> dict[str, Any]:
    """``lse`` on per-frame embeddings v [N, D] (video) and a [N, D] (audio) already computed.

    ``near``: the minimum (LSE-D, the offset) is looked for only within ``center`` -near .. +near frames (clipped
    to the search), a prior on the clip's A/V offset; the median (the baseline of LSE-C) stays over all offsets.
    None: all offsets."""
    dists = offset_distances(v, a, max_offset).numpy()
    lo, hi = 0, len(dists)
    if near is not None:
        c = int(np.clip(center, -max_offset, max_offset)) + max_offset
        lo, hi = max(0, c - near), min(len(dists), c + near + 1)
    k = lo + int(np.argmin(dists[lo:hi]))
    lse_d = float(dists[k])
    return {"lse_d": lse_d, "lse_c": float(np.median(dists) - lse_d), "offset_frames": k - max_offset, "dists": dists}


#: LSE-C a wrong pairing (the faces of one clip with the speech of another) rarely reaches on real
#: clips; ``estimate_offset_expert`` calls a clip reliable at or above it. Measured with the shipped
#: expert (bench/bench_sync_expert.py): real clips in sync 0.024-0.139 (median 0.064, 8 of 23 reach
#: 0.08), with another clip's audio 0.010-0.078. Drawn faces score higher both ways (in sync 0.12-0.30,
#: wrong pairings up to 0.18): the threshold is for real video.
RELIABLE_LSE_C = 0.08


def estimate_offset_expert(faces: np.ndarray | Tensor, audio: np.ndarray | Tensor, expert: SyncExpert | None = None,
                           max_offset: int = 15) -> SyncEstimate:
    """The A/V offset of a clip by the sync expert, as an ``avse.video.sync.SyncEstimate``.

    faces: N aligned face crops (``avse.video.roi.face_crops``: uint8 [N, 96, 96, 3]); audio [T]
    at 16 kHz on the video's timeline. ``lse`` over -max_offset .. max_offset frames: offset_ms =
    40 ms x offset_frames (positive = audio late), confidence = LSE-C, reliable = LSE-C >=
    ``RELIABLE_LSE_C``, lags_ms the offsets searched, corr_curve = minus the distance curve (higher
    is better; LSE-D = -max(corr_curve)). ``expert`` defaults to the shipped one. The search is
    narrowed to (N - 5) frames on short clips; fewer than 10 frames: ConfigError.
    """
    from avse.video.sync import SyncEstimate

    expert = SyncExpert.from_pretrained() if expert is None else expert
    n = len(faces)
    if n < 10:
        raise ConfigError(f"the sync expert needs at least 10 frames, got {n}")
    max_offset = int(min(max_offset, n - 5))
    r = lse(expert, faces, audio, max_offset)
    step = 1000.0 / VIDEO_FPS
    return SyncEstimate(
        offset_ms=r["offset_frames"] * step,
        confidence=r["lse_c"],
        reliable=r["lse_c"] >= RELIABLE_LSE_C,
        threshold=RELIABLE_LSE_C,
        lags_ms=np.arange(-max_offset, max_offset + 1) * step,
        corr_curve=-r["dists"],
        duration_s=n / VIDEO_FPS,
    )


#: ``assign_sources`` and ``assign_over_time`` look for a face's sync within this many frames (120 ms) of the
#: video's A/V offset (``center``; 0 when it is not known): a video's sound and picture are that close, while a face
#: whose lips move to words that are not in a voice finds a chance dip anywhere in the +-15 frames searched. Measured with the shipped expert on the real dev clips
#: (``bench/bench_assign.py``, ``offset_prior``): a face with its own speech scores a median whole-clip LSE-C of
#: 0.055 either way; with another clip's speech the 95th percentile falls from 0.057 (+-15 frames) to 0.040 (+-3),
#: and own beats other in 92 % of pairs instead of 83 %. 20 of the 23 clips are in sync within 3 frames.
ASSIGN_NEAR = 3


def window_center(offset: int | None, near: int = ASSIGN_NEAR) -> int:
    """Where the assignment centres its sync window, given the video's A/V offset in frames as measured some other
    way (e.g. from lip motion; None: not measured) -> 0 unless the offset lies beyond the window (|offset| > near).
    A window at 0 already covers a small offset, and the lip-motion estimate and the expert may read a real clip a
    frame or two apart."""
    return 0 if offset is None or abs(offset) <= near else int(offset)


def assign_sources(faces: Sequence[np.ndarray | Tensor], sources: np.ndarray, expert: SyncExpert | None = None,
                   max_offset: int = 15, near: int | None = ASSIGN_NEAR, center: int = 0) -> tuple[list[int], np.ndarray]:
    """Which separated voice belongs to which face: the assignment whose lips and speech agree best.

    faces: F clips of aligned face crops (uint8 [N, 96, 96, 3] each, ``avse.video.roi.face_crops``, or their
    mouth frames, float [N, 48, 96], ``video_mouths``),
    on the timeline of ``sources``: float [S, T] at 16 kHz (S >= F, e.g. a blind separator's outputs).
    Each pair is scored by LSE-C (``lse``: how clearly one A/V offset stands out; a face with speech
    that is not its own gives a flat distance curve); the assignment is the one-to-one choice of
    outputs with the largest sum of scores. Returns (order: the source index of each face [F],
    scores float64 [F, S]). ``expert`` defaults to the shipped one. Each pair's sync is looked for
    within ``near`` frames (``ASSIGN_NEAR``) of ``center``, the video's A/V offset in frames when known
    (positive: the sound is late); None: all of -max_offset .. max_offset. The search is narrowed on short clips as in
    ``estimate_offset_expert``; fewer than 10 frames or F > S: ConfigError.
    """
    _, seen, heard, max_offset = _pair_embeddings("assign_sources", faces, sources, expert, max_offset)
    scores = _lse_c_matrix(seen, heard, max_offset, near, center)
    return best_assignment(scores), scores


def _lse_c_matrix(seen: list[Tensor], heard: list[Tensor], max_offset: int, near: int | None, center: int) -> np.ndarray:
    """Video embeddings of F faces and audio embeddings of S sources ([N, D] each) -> the LSE-C of every pair [F, S]
    (the minimum looked for within ``near`` frames of ``center``, ``lse_from_embeddings``)."""
    return np.array([[lse_from_embeddings(v, a, max_offset, near, center)["lse_c"] for a in heard] for v in seen])


def _pair_embeddings(caller: str, faces: Sequence[np.ndarray | Tensor], sources: np.ndarray, expert: SyncExpert | None,
                     max_offset: int) -> tuple[np.ndarray, list[Tensor], list[Tensor], int]:
    """The checks and embeddings ``assign_sources`` and ``assign_over_time`` share -> (sources float32 [S, T],
    video embeddings of each face [N, D], audio embeddings of each source [N, D], max_offset narrowed to N - 5)."""
    src = np.asarray(sources, dtype=np.float32)
    if src.ndim != 2 or not faces or len(faces) > src.shape[0]:
        raise ConfigError(f"{caller} needs sources [S, T] and 1..S face clips, got {src.shape} and {len(faces)} faces")
    expert = SyncExpert.from_pretrained() if expert is None else expert
    n = min(len(f) for f in faces)
    if n < 10:
        raise ConfigError(f"the sync expert needs at least 10 frames, got {n}")
    heard = [audio_embeddings(expert, s, n) for s in src]
    seen = [mouth_embeddings(expert, torch.as_tensor(f[:n])) if _is_mouths(f) else video_embeddings(expert, f[:n])
            for f in faces]
    return src, seen, heard, int(min(max_offset, n - 5))


def _is_mouths(face: np.ndarray | Tensor) -> bool:
    """Whether one face clip is already its mouth frames (float [N, 48, 96], ``video_mouths``) rather than crops."""
    return face.ndim == 3 and tuple(face.shape[1:]) == (MOUTH_ROWS[1] - MOUTH_ROWS[0], 96)


#: frames in one window of ``assign_over_time`` (2 s at 25 fps) and the hop between windows (1 s)
ASSIGN_WINDOW = 50
ASSIGN_HOP = 25
#: what a change of pairing between two windows costs in ``assign_over_time``, in units of summed window LSE-C:
#: about what a face scores with another clip's speech in 1 window of 20. Measured with the shipped expert on the
#: real dev clips (``bench/bench_assign.py``, its ``window_calibration``): 2 s windows of a face with another
#: clip's speech score a median -0.002 and a 95th percentile 0.048; with its own speech a median 0.055, higher
#: than with the other speech in 93 % of windows
SWITCH_COST = 0.05


def window_confidence(v: Tensor, a: Tensor, offset: int, max_offset: int, starts: list[int], width: int) -> np.ndarray:
    """Windowed LSE-C at a fixed offset: per-frame embeddings v [N, D] (video), a [N, D] (audio), window
    starts [W] (frames) of ``width`` frames -> float64 [W]. For each window, the median over offsets
    -max_offset..max_offset of the window's mean distance minus its mean distance at ``offset`` (the
    clip's A/V offset, found on the whole clip: a 2 s window is too short to search for it)."""
    if a.shape != v.shape or not -max_offset <= offset <= max_offset or width <= max_offset:
        raise ConfigError(f"window_confidence: v {tuple(v.shape)}, a {tuple(a.shape)}, offset {offset}, "
                          f"max_offset {max_offset}, width {width}")
    dn = frame_distances(v, a, max_offset).numpy()
    out = np.empty(len(starts))
    for i, s in enumerate(starts):
        with np.errstate(invalid="ignore"):
            m = np.nanmean(dn[:, s : s + width], axis=1)  # [2 max_offset + 1]
        out[i] = np.nanmedian(m) - m[offset + max_offset]
    return out


def assign_over_time(faces: Sequence[np.ndarray | Tensor], sources: np.ndarray, expert: SyncExpert | None = None,
                     max_offset: int = 15, window: int = ASSIGN_WINDOW, hop: int = ASSIGN_HOP,
                     switch_cost: float = SWITCH_COST, near: int | None = ASSIGN_NEAR, center: int = 0) -> dict[str, Any]:
    """Which separated voice belongs to which face, window by window: for talkers who take turns.

    A blind separator does not keep a talker in one output when talkers take turns: it may put
    both turns in the same output. So the pairing of faces and outputs is chosen per 2 s window
    (``window`` frames every ``hop``) by the windowed LSE-C of each face and output
    (``window_confidence`` at the face's A/V offset, found against the sum of the outputs), and a
    Viterbi path over the windows picks the sequence of one-to-one pairings with the largest sum
    of scores, each change costing ``switch_cost``. Where the path never changes, the pairing is the
    whole clip's (``assign_sources``: each face and output at its own best offset), as it is for
    clips shorter than ``window + hop`` frames. Talkers who overlap all along keep one pairing.
    Sync is looked for within ``near`` frames of ``center``, as in ``assign_sources``.

    faces: F clips of aligned face crops (uint8 [N, 96, 96, 3] each, ``avse.video.roi.face_crops``, or their
    mouth frames, float [N, 48, 96], ``video_mouths``),
    on the timeline of ``sources``: float [S, T] at 16 kHz (S >= F). Returns dict(
    order: the whole clip's pairing [F] (``assign_sources``), lse_c: float64 [F, S] (the whole
    clip's), plan: int [N, F] (the source of each face at each frame), segments: list of
    (first frame, pairing [F]) where the pairing changes, window_scores: float64 [W, F, S], W = 0
    for a clip too short for windows). ``window`` must exceed ``max_offset`` (ConfigError).
    """
    from itertools import permutations

    expert = SyncExpert.from_pretrained() if expert is None else expert
    src, seen, heard, max_offset = _pair_embeddings("assign_over_time", faces, sources, expert, max_offset)
    n = seen[0].shape[0]
    mixture = audio_embeddings(expert, src.sum(axis=0), n)
    whole = _lse_c_matrix(seen, heard, max_offset, near, center)
    order = best_assignment(whole)
    f_n, s_n = len(faces), src.shape[0]

    def one_pairing(window_scores: np.ndarray) -> dict[str, Any]:  # the whole clip's pairing at every frame
        return {"order": order, "lse_c": whole, "plan": np.tile(np.array(order), (n, 1)),
                "segments": [(0, order)], "window_scores": window_scores}

    if n < window + hop:
        return one_pairing(np.zeros((0, f_n, s_n)))
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] + window < n:
        starts.append(n - window)
    scores = np.zeros((len(starts), f_n, s_n))
    for i, v in enumerate(seen):
        offset = lse_from_embeddings(v, mixture, max_offset, near, center)["offset_frames"]
        for j, a in enumerate(heard):
            scores[:, i, j] = window_confidence(v, a, offset, max_offset, starts, window)
    if not np.isfinite(scores).all():
        raise ConfigError("assign_over_time: the sync expert gave non-finite scores (a non-finite output or face)")
    states = list(permutations(range(s_n), f_n))
    gain = np.array([[sum(sc[i, p[i]] for i in range(f_n)) for p in states] for sc in scores])  # [W, P]
    total, back = gain[0].copy(), np.zeros(gain.shape, dtype=int)
    for w in range(1, len(starts)):
        stay = total[:, None] - switch_cost * (1 - np.eye(len(states)))  # [from, to]
        back[w] = stay.argmax(axis=0)
        total = stay.max(axis=0) + gain[w]
    path = [int(total.argmax())]
    for w in range(len(starts) - 1, 0, -1):
        path.append(int(back[w, path[-1]]))
    path.reverse()
    if len(set(path)) == 1:  # one pairing all along: judged on the whole clip, each pair at its own best offset
        return one_pairing(scores)
    plan = np.empty((n, f_n), dtype=int)
    segments: list[tuple[int, list[int]]] = []
    for w, k in enumerate(path):
        first = 0 if w == 0 else (starts[w - 1] + starts[w] + window) // 2  # midway between the windows' centres
        plan[first:] = states[k]
        if not segments or segments[-1][1] != list(states[k]):
            segments.append((first, list(states[k])))
    return {"order": order, "lse_c": whole, "plan": plan, "segments": segments, "window_scores": scores}


def missed_talker(levels_db: list[float], result: dict[str, Any]) -> str | None:
    """Did the blind model miss a talker? -> why (one line), or None when ``assign_over_time``'s pairing stands.

    levels_db: each output's level against the input's (``avse.api.output_levels_db``), [S];
    result: ``assign_over_time``'s. An output near silent (under ``avse.api.SILENT_OUTPUT_DB``) means
    the blind model heard one voice. That is right when one face talks and the other listens: the
    listener's near-silent output is its due. It is a miss when the pairing never changes and the
    face given the near-silent output clearly speaks what another output holds (whole-clip LSE-C at
    or above ``RELIABLE_LSE_C``): two talkers, one voice heard.
    """
    from avse.api import SILENT_OUTPUT_DB

    quiet = int(np.argmin(levels_db))
    if levels_db[quiet] >= SILENT_OUTPUT_DB or len(result["segments"]) > 1 or quiet not in result["order"]:
        return None
    face = result["order"].index(quiet)
    heard = max(float(c) for k, c in enumerate(result["lse_c"][face]) if k != quiet)
    if heard < RELIABLE_LSE_C:
        return None
    return (f"the blind model heard one voice (an output {levels_db[quiet]:+.1f} dB under the input) while face {face}, "
            f"left with it, speaks in another (LSE-C {heard:.3f})")


def route_sources(sources: np.ndarray, plan: np.ndarray, fade_frames: int = 5) -> np.ndarray:
    """Each face's voice from ``assign_over_time``'s plan: sources [S, T] at 16 kHz and plan int [N, F] -> [F, T].

    At frame t face f gets source plan[t, f]; where the plan changes, the two sources cross-fade
    over ``fade_frames`` frames (0.2 s). Samples after the last frame follow its pairing."""
    src = np.asarray(sources, dtype=np.float32)
    n, f_n = plan.shape
    t_n = src.shape[1]
    weights = np.zeros((f_n, src.shape[0], n), dtype=np.float32)
    for f in range(f_n):
        weights[f, plan[:, f], np.arange(n)] = 1.0
    if fade_frames > 1:
        k = np.ones(fade_frames, dtype=np.float32) / fade_frames
        pad = fade_frames // 2
        padded = np.pad(weights, ((0, 0), (0, 0), (pad, fade_frames - 1 - pad)), mode="edge")
        weights = np.apply_along_axis(lambda x: np.convolve(x, k, mode="valid"), 2, padded)
    centres = (np.arange(n) + 0.5) * SAMPLES_PER_FRAME
    t = np.arange(t_n)
    out = np.zeros((f_n, t_n), dtype=np.float32)
    for f in range(f_n):
        for s in range(src.shape[0]):
            w = np.interp(t, centres, weights[f, s])
            out[f] += w.astype(np.float32) * src[s]
    return out


#: ``one_voice``: the quieter of two outputs at or below this level against the input (dB) may be a listener's.
#: Two talkers leave it higher: on the real dev set's mixtures at -5 / 0 / +5 dB a median -7.3 / -6.1 / -7.3 dB
#: (``bench/bench_assign.py``); a talker alone beside a listener, a median -12.6 dB
ONE_VOICE_DB = -10.0
#: ``one_voice``: the face given that output speaks none of it below this whole-clip LSE-C: about the 90th
#: percentile of a face with speech not its own (0.032, the sync looked for near the offset; ``offset_prior`` in
#: ``bench/bench_assign.py``), where a face with its own speech scores a median 0.055
LISTENER_LSE_C = 0.03


@overload
def video_mouths(video: str | Path, landmarks: Mapping[str, np.ndarray], batch: int = ...) -> Tensor: ...


@overload
def video_mouths(video: str | Path, landmarks: Sequence[Mapping[str, np.ndarray]], batch: int = ...) -> list[Tensor]: ...


def video_mouths(video: str | Path, landmarks: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
                 batch: int = 250) -> Tensor | list[Tensor]:
    """One tracked face of a video file -> its mouth frames, float16 [N, 48, 96] in [0, 1] (N = the landmarks' frames);
    a list of K faces' landmarks -> K such clips, all cut in one pass over the video (N = the shortest track's frames).

    What ``mouth_frames`` makes of the aligned face crops (``avse.video.roi.face_crops``), cut straight from
    the decoded luma: only the lower half of each crop is warped, ``batch`` frames at a time, with no RGB
    conversion (1.4 times faster on the real dev clips, ``bench/bench_mouths.py``; decoding is most of what is left),
    and memory holds 9 KB a frame and face. The luma is
    the video's own (its Y plane in full range), within a level or two of the BT.601 luma of its RGB.
    """
    from itertools import islice

    from avse.video.io import iter_grid_frames
    from avse.video.roi import face_crops, face_matrices

    many = not isinstance(landmarks, Mapping)
    tracks: list[Mapping[str, np.ndarray]] = [landmarks] if isinstance(landmarks, Mapping) else list(landmarks)
    if not tracks:
        raise ConfigError("video_mouths needs the landmarks of at least one face")
    each = [face_matrices(lm) for lm in tracks]
    n_frames = min(len(m) for m in each)
    mats = np.stack([m[:n_frames] for m in each])  # [K, N, 2, 3]
    frames = iter_grid_frames(Path(video), max_frames=n_frames, gray=True)
    out: list[list[Tensor]] = [[] for _ in tracks]
    for start in range(0, n_frames, batch):
        chunk = list(islice(frames, batch))
        if not chunk:
            break
        crops = face_crops(chunk, mats[:, start : start + len(chunk)], gray=True, rows=MOUTH_ROWS)  # uint8 [K, n, 48, 96]
        for k in range(len(tracks)):
            out[k].append((torch.from_numpy(crops[k]).float() / 255.0).half())
    if not out[0]:
        raise MediaError(video, "no frames to cut the face from")
    mouths = [torch.cat(o) for o in out]
    return mouths if many else mouths[0]


def face_sync(face: Tensor, sounds: np.ndarray, expert: SyncExpert | None = None, max_offset: int = 15,
              near: int | None = ASSIGN_NEAR, center: int = 0) -> np.ndarray:
    """One face's whole-clip LSE-C with each of several sounds: face, its ``mouth_frames`` (float [N, 48, 96]) or
    their ``mouth_embeddings`` ([N, D], to score more sounds later without embedding the face again), and sounds
    float [S, T] at 16 kHz on the same timeline -> float64 [S] (higher: its lips follow that sound more clearly; each
    sound at its own best offset within ``near`` frames of ``center``, as ``assign_sources`` scores a pair). Fewer
    than 10 frames: ConfigError."""
    expert = SyncExpert.from_pretrained() if expert is None else expert
    src = np.asarray(sounds, dtype=np.float32)
    n = int(face.shape[0]) if face.ndim in (2, 3) else 0
    if src.ndim != 2 or n < 10:
        raise ConfigError(f"face_sync needs sounds [S, T] and at least 10 frames of the face, got {src.shape} and "
                          f"{tuple(face.shape)}")
    seen = [face if face.ndim == 2 else mouth_embeddings(expert, face)]
    heard = [audio_embeddings(expert, s, n) for s in src]
    return _lse_c_matrix(seen, heard, int(min(max_offset, n - 5)), near, center)[0]


#: ``talker_output``: the blind model's other output holds a second voice, not noise, when at least this share of
#: its active frames is voiced (``avse.audio.features.voiced_fraction``). On the real dev set's mixtures with one
#: face (``bench/bench_real.py``) the other output scores a median 0.64-0.69 with another talker (10th percentile
#: 0.29-0.42) and 0.14-0.24 in a café or a kitchen (90th percentile 0.27-0.50)
SECOND_VOICE_VOICED = 0.4


def talker_output(levels_db: Sequence[float], lse_outputs: Sequence[float] | Callable[[], Sequence[float]],
                  voiced: Sequence[float] | Callable[[int], float],
                  lse_input: float | Callable[[], float],
                  overlap: float | Callable[[], float | None] | None = None,
                  min_overlap: float = 0.0) -> tuple[int | None, str]:
    """With one face seen, should its voice be a blind two-talker model's output rather than what the audio-visual
    model makes of the input? -> (the output its lips follow, or None: the audio-visual model; why, one line).

    levels_db: each of the two outputs' level against the input's (``avse.api.output_levels_db``) [2];
    lse_outputs: the face's whole-clip LSE-C with output 0 and output 1 (``face_sync``) [2]; voiced: each output's
    ``voiced_fraction`` [2]; lse_input: the face's LSE-C with the input. The last three may be functions (of nothing,
    of the output's index, of nothing) that measure them: each is called only when the rules before have not decided.
    overlap: the share of the input's active frames with two voices at once (``avse.models.overlap.overlap_share``),
    or a function that measures it (None: no detector, the rule is skipped).
    The face's output is the one its lips follow better. It is taken when all four hold: the blind model heard two
    sounds (the quieter output above ``ONE_VOICE_DB``: a lone voice is split into a loud output and bits of it); two
    voices are heard at once on at least ``min_overlap`` of the input's active frames (a lone voice split word by word
    into two outputs of similar level has none); the other output is a voice (``SECOND_VOICE_VOICED``; noise the
    audio-visual model removes better); and the lips follow the face's output at least as clearly as the input (what
    was taken away is not their own speech). Two talkers who take turns and never talk at once are then left to the
    audio-visual model. The
    audio-visual model extracts a real talker from another's voice poorly, the blind model well
    (``bench/bench_real.py``: real two-talker mixtures at 0 dB +2.2 against -0.2 dB SI-SDRi).
    """
    if len(levels_db) != 2:
        raise ConfigError(f"talker_output needs the levels of 2 outputs, got {len(levels_db)}")
    if min(levels_db) <= ONE_VOICE_DB:
        return None, f"one voice (the blind model's quieter output {min(levels_db):+.1f} dB under the input)"
    share = overlap() if callable(overlap) else overlap
    if share is not None and share < min_overlap:
        return None, f"one voice (two voices at once on {share:.0%} of the active frames)"
    lse = [float(c) for c in (lse_outputs() if callable(lse_outputs) else lse_outputs)]
    if len(lse) != 2:
        raise ConfigError(f"talker_output needs the LSE-C of 2 outputs, got {len(lse)}")
    k = int(np.argmax(lse))
    other = float(voiced(1 - k) if callable(voiced) else voiced[1 - k])
    if other < SECOND_VOICE_VOICED:
        return None, f"no second voice (the other output is {other:.0%} voiced: noise)"
    heard = float(lse_input() if callable(lse_input) else lse_input)
    if lse[k] < heard:
        return None, f"the lips follow the input ({heard:.3f}) more than the output ({lse[k]:.3f})"
    at_once = "" if share is None else f", at once on {share:.0%} of the active frames"
    return k, (f"a second voice ({other:.0%} voiced, {levels_db[1 - k]:+.1f} dB{at_once}): the lips follow output {k} "
               f"(LSE-C {lse[k]:.3f}; the input {heard:.3f})")


def one_voice(levels_db: list[float], result: dict[str, Any]) -> int | None:
    """Did the blind model hear the voice of one of two faces while the other listens? -> the talking face, or None.

    levels_db: the level of each of two outputs against the input's (``avse.api.output_levels_db``), [2];
    result: ``assign_over_time``'s for two faces. Yes when the pairing never changes, the quieter output is
    at or below ``ONE_VOICE_DB`` and the face given it shows no sync with it (whole-clip LSE-C under
    ``LISTENER_LSE_C``). The talker's voice is then the whole input: what the blind model put in the
    quieter output is bits of it (a separator trained on two talkers splits a lone voice word by word).
    """
    if len(levels_db) != 2 or len(result["order"]) != 2 or len(result["segments"]) > 1:
        return None
    quiet = int(np.argmin(levels_db))
    if levels_db[quiet] > ONE_VOICE_DB:
        return None
    listener = result["order"].index(quiet)
    if float(result["lse_c"][listener][quiet]) >= LISTENER_LSE_C:
        return None
    return 1 - listener


def face_voices(sources: np.ndarray, result: dict[str, Any], mixture: np.ndarray | None = None,
                talker: int | None = None) -> np.ndarray:
    """Each face's voice by ``assign_over_time``'s result: sources [S, T] -> [F, T]; the whole clip's pairing
    when it never changes, else ``route_sources`` on its plan. ``talker``: a face that talks beside a listener
    (``one_voice``), which gets the whole ``mixture`` [T] the outputs came from; the listener keeps its quiet output."""
    if len(result["segments"]) == 1:
        voices = np.array(np.asarray(sources)[result["segments"][0][1]])
    else:
        voices = route_sources(sources, result["plan"])
    if talker is not None:
        if mixture is None:
            raise ConfigError("face_voices: a talker given the whole input needs the mixture")
        n = min(voices.shape[-1], len(mixture))
        voices[talker] = 0.0
        voices[talker, :n] = mixture[:n]
    return voices


def best_assignment(scores: np.ndarray) -> list[int]:
    """Scores [F, S] (F <= S; higher: face f and output s agree better) -> the one-to-one choice of an output
    for each face with the largest sum of scores [F] (every choice tried: F and S are a few)."""
    from itertools import permutations

    f, s = scores.shape
    return list(max(permutations(range(s), f), key=lambda p: sum(scores[i, j] for i, j in enumerate(p))))


def train_expert(config: dict[str, Any], out: str | Path, resume: bool = False, progress: bool = False) -> Path:
    """Train a sync expert from a recipe dict into ``out`` -> best checkpoint; see ``avse.talking.expert_data.train_expert``."""
    from avse.talking.expert_data import train_expert as _train

    return _train(config, Path(out), resume=resume, progress=progress)


__all__ = [
    "train_expert",
    "RELIABLE_LSE_C", "estimate_offset_expert", "assign_sources", "best_assignment",
    "ASSIGN_WINDOW", "ASSIGN_HOP", "SWITCH_COST", "window_confidence", "assign_over_time", "route_sources", "face_voices", "missed_talker",
    "one_voice", "ONE_VOICE_DB", "face_sync", "mouth_embeddings", "video_mouths", "talker_output", "SECOND_VOICE_VOICED", "LISTENER_LSE_C", "ASSIGN_NEAR", "window_center",
    "Config", "SyncExpert", "PRETRAINED", "FRAMES", "MOUTH_ROWS", "mouth_frames", "stack_windows", "clip_embeddings",
    "video_embeddings", "audio_embeddings",
    "sync_loss", "offset_distances", "frame_distances", "lse", "lse_from_embeddings",
]
