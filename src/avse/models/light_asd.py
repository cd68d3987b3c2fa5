"""Light-ASD (the user's weights, frozen): its visual encoder, a visual stream for the models, and the whole active-speaker detector, a judge trained on real faces.

Light-ASD (Liao et al., CVPR 2023, "A Light Weight Model for Active Speaker
Detection"; MIT licence) is an active-speaker detector trained on real faces
(AVA-ActiveSpeaker, then optionally TalkSet). It is rebuilt here, written for this
package from the published architecture. The visual encoder:

- input: grayscale face crops [B, T, 112, 112], gray levels 0..255, standardised
  as (x / 255 - 0.4161) / 0.1688;
- three blocks, each the sum of two branches (a 1 x k x k spatial conv then a
  k x 1 x 1 temporal conv, k = 3 and k = 5, each conv followed by batch norm and
  ReLU) and then a 1 x 1 x 1 conv + batch norm + ReLU; 1 -> 32 -> 64 -> 128
  channels. The first block's spatial convs have stride 2; a 3 x 3 max pool
  with stride 2 follows the first and the second block (112 -> 56 -> 28 -> 14);
- a max over the remaining 14 x 14 positions gives [B, T, 128].

The detector adds (``LightASD``):

- audio: 13 MFCCs at 100 frames a second (:func:`mfcc`: 25 ms frames, 10 ms hop,
  pre-emphasis 0.97, 26 mel bands, lifter 22, the first coefficient replaced by the
  log frame energy, on int16-scaled samples, as the release computes them);
- an audio encoder of the same three blocks in 2-D (a k x 1 conv over the
  coefficients, then a 1 x k conv over time), a max pool of 3 with stride 2 over
  time after the first and the second block (100 -> 25 frames a second), then the
  mean over the coefficients: [B, 4 T, 13] -> [B, T, 128];
- the sum of the two embeddings through a forward GRU, GELU, a GRU run backwards
  in time, GELU (128 units each), and a linear layer to two classes; the score of
  a frame is the "speaking" logit (> 0: speaking), averaged, as the release does,
  over passes that cut the clip into pieces of 1 .. 6 seconds.

No conv has a bias; batch norms use eps 1e-3. The temporal convs see +-6
frames in all. The weights are the released checkpoints' entries, loaded by key
(``load_visual_encoder``, ``load_detector``).

The face crop (``crop_matrices``) follows Light-ASD's own demo pipeline: a face
box of half-side s around (x, y) is cut as rows y - s .. y + 1.8 s and columns
x - 1.4 s .. x + 1.4 s (its ``cropScale`` 0.4), resized to 224 x 224, and the
centre 112 x 112 is kept: rows y - 0.3 s .. y + 1.1 s, columns x - 0.7 s ..
x + 0.7 s at 80 / s pixels per source pixel, outside the frame gray 110. Here
the face box is not a detector's but a fixed box in the reference face of
``avse.video.roi`` (the extent of MediaPipe's face mesh there, median over the
23 real dev clips: centre (128, 122), 172 px tall, so s = 86), placed by the
similarity fitted on eyes and nose (``avse.video.roi.estimate_similarity``,
averaged over +-6 frames like the other crops). The same geometry then holds
for rendered faces, whose landmark files define ``face_box`` differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from avse.errors import ConfigError, MediaError
from avse.utils.signal import centred_mean
from avse.video.roi import HALF_WINDOW, STABLE_POINTS, _numbered, _points, estimate_similarity

#: side of the crop the encoder takes (pixels)
CROP = 112
#: gray-level mean and standard deviation (of x / 255) the encoder was trained with
MEAN, STD = 0.4161, 0.1688
#: Light-ASD's demo ``cropScale``
CROP_SCALE = 0.4
#: the face box in the 256 x 256 reference frame of ``avse.video.roi``: centre x, centre y, half-side s
FACE_BOX_REF = (128.0, 122.0, 86.0)
#: gray level of the padding outside the frame (Light-ASD pads with 110)
PAD_GRAY = 110
#: key prefix of the visual encoder in the released checkpoints
PREFIX = "model.visualEncoder."
#: output size per frame
EMBED_DIM = 128


class _Block(nn.Module):
    """Two branches (a conv named ``first`` -> a temporal conv ``t``), k = 3 and 5, summed, then a 1 x 1 mix; each
    conv followed by batch norm and ReLU. Subclasses make the convs (``{first}_k``, ``t_k``, ``last`` and their
    ``bn_`` norms, the released checkpoints' names)."""

    first = ""
    last: nn.Module
    bn_last: nn.Module

    def _branch(self, x: Tensor, k: int) -> Tensor:
        y = torch.relu(getattr(self, f"bn_{self.first}_{k}")(getattr(self, f"{self.first}_{k}")(x)))
        return torch.relu(getattr(self, f"bn_t_{k}")(getattr(self, f"t_{k}")(y)))

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, ...] -> [B, C_out, ...] (VisualBlock: [B, C, T, H, W]; AudioBlock: [B, C, 13, A])."""
        return torch.relu(self.bn_last(self.last(self._branch(x, 3) + self._branch(x, 5))))


class VisualBlock(_Block):
    """Two (spatial 1 x k x k -> temporal k x 1 x 1) branches, k = 3 and 5, summed, then a 1 x 1 x 1 mix."""

    first = "s"

    def __init__(self, c_in: int, c_out: int, down: bool = False):
        super().__init__()
        stride = (1, 2, 2) if down else (1, 1, 1)
        for k in (3, 5):
            p = k // 2
            setattr(self, f"s_{k}", nn.Conv3d(c_in, c_out, (1, k, k), stride=stride, padding=(0, p, p), bias=False))
            setattr(self, f"bn_s_{k}", nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.01))
            setattr(self, f"t_{k}", nn.Conv3d(c_out, c_out, (k, 1, 1), padding=(p, 0, 0), bias=False))
            setattr(self, f"bn_t_{k}", nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.01))
        self.last = nn.Conv3d(c_out, c_out, 1, bias=False)
        self.bn_last = nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.01)


class LightASDVisualEncoder(nn.Module):
    """Gray face crops [B, T, 112, 112] (0..255) -> per-frame embeddings [B, T, 128]."""

    #: frames each side that one output frame depends on (three blocks, +-2 each)
    context = 6

    def __init__(self):
        super().__init__()
        self.block1 = VisualBlock(1, 32, down=True)
        self.pool1 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.block2 = VisualBlock(32, 64)
        self.pool2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.block3 = VisualBlock(64, 128)

    def forward(self, crops: Tensor) -> Tensor:
        """crops [B, T, H, W] gray 0..255 (any dtype) -> [B, T, 128] float32."""
        if crops.dim() != 4:
            raise ConfigError(f"expected crops [B, T, H, W], got shape {tuple(crops.shape)}")
        x = (crops.float()[:, None] / 255.0 - MEAN) / STD  # [B, 1, T, H, W]
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        x = self.block3(x)  # [B, 128, T, h, w]
        return x.amax(dim=(3, 4)).transpose(1, 2)  # [B, T, 128]

    @torch.no_grad()
    def embed(self, crops: np.ndarray, chunk: int = 200) -> np.ndarray:
        """One clip's crops uint8 [N, 112, 112] -> float32 [N, 128], in chunks of ``chunk`` frames with
        ``context`` frames of overlap each side, so the result equals one pass over the whole clip."""
        n, c = len(crops), self.context
        out = np.empty((n, EMBED_DIM), dtype=np.float32)
        x = torch.from_numpy(np.ascontiguousarray(crops))
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            lo, hi = max(0, a - c), min(n, b + c)
            y = self(x[None, lo:hi])[0]  # [hi - lo, 128]
            out[a:b] = y[a - lo : b - lo].numpy()
        return out


def _entries(path: str | Path, prefixes: Mapping[str, str]) -> dict[str, Tensor]:
    """A released Light-ASD checkpoint, read once -> its entries whose key (after any ``module.``) starts with a
    prefix of ``prefixes``, that prefix replaced by its value. MediaError when there is no such file, ConfigError
    when it is not a Light-ASD checkpoint (unreadable, or a prefix with no entries)."""
    if not Path(path).is_file():
        raise MediaError(path, "no such Light-ASD checkpoint")
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on foreign or truncated files
        raise ConfigError(f"{path}: not a readable Light-ASD checkpoint ({type(err).__name__})") from None
    if not isinstance(state, Mapping):
        raise ConfigError(f"{path}: not a state dict")
    out: dict[str, Tensor] = {}
    for prefix, new in prefixes.items():
        found = {new + k[len(prefix):]: v for k, v in ((k.replace("module.", ""), v) for k, v in state.items())
                 if k.startswith(prefix)}
        if not found:
            raise ConfigError(f"{path}: no {prefix}* entries (not a Light-ASD checkpoint?)")
        out |= found
    return out


def visual_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A released Light-ASD checkpoint (a state dict of the whole ASD wrapper) -> the visual encoder's entries,
    the prefix ``model.visualEncoder.`` (and any ``module.``) stripped. MediaError when there is no such file,
    ConfigError when it is not a Light-ASD checkpoint."""
    return _entries(path, {PREFIX: ""})


def load_visual_encoder(path: str | Path) -> LightASDVisualEncoder:
    """The frozen visual encoder of a Light-ASD checkpoint (strict key match), in eval mode."""
    enc = LightASDVisualEncoder()
    enc.load_state_dict(visual_state_dict(path), strict=True)
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc.eval()


def reference_crop() -> np.ndarray:
    """The stable points (4 eye corners, nose tip) [5, 2] float64 in Light-ASD's 112 x 112 crop."""
    cx, cy, s = FACE_BOX_REF
    half = s * (1 + CROP_SCALE) / 2  # the centre half of the 2 (1 + cs) s square: 0.7 s for cs = 0.4
    left, top = cx - half, cy - s + (1 + CROP_SCALE) * s / 2  # y - s + 0.7 s = y - 0.3 s
    return (STABLE_POINTS - np.array([left, top])) * (CROP / (2 * half))


def crop_matrices(landmarks: Mapping[str, Any], half_window: int = HALF_WINDOW) -> np.ndarray:
    """Per-frame affine matrices [N, 2, 3] float64: frame pixels -> Light-ASD crop pixels.

    landmarks: eyes [N, 4, 2], nose [N, 2], lips [N, 40, 2] (gaps filled). The stable points are
    averaged over frames i - half_window .. i + half_window (translation kept at frame i's), as in
    ``avse.video.roi.face_matrices``, and a similarity is fitted onto ``reference_crop()``.
    """
    pts = _points(landmarks)[:, :5]
    smooth = centred_mean(pts, int(half_window))
    smooth = smooth + (pts.mean(1) - smooth.mean(1))[:, None, :]
    return estimate_similarity(smooth, reference_crop())


def crops(frames: Iterable[Any], landmarks: Mapping[str, Any]) -> np.ndarray:
    """frames (an iterable of uint8 [H, W, 3] RGB, one per landmark frame) -> gray crops uint8 [N, 112, 112].

    Bilinear; outside the frame gray 110 as Light-ASD pads.
    """
    mats = crop_matrices(landmarks)
    out = np.empty((len(mats), CROP, CROP), dtype=np.uint8)
    for i, frame in _numbered(frames, len(mats)):
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        cv2.warpAffine(gray, mats[i], (CROP, CROP), dst=out[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_GRAY)
    return out


def embed_frames(frames: Iterable[Any], landmarks: Mapping[str, Any], encoder: LightASDVisualEncoder) -> np.ndarray:
    """frames (uint8 [H, W, 3] RGB, one per landmark frame) and their landmarks -> embeddings float32 [N, 128].

    Frames without a face (all-NaN lips in ``landmarks``) get an all-zero row, the
    visual stream's "no face" (``avse.video.lipfeat``); the crops of the others
    are placed from gap-filled landmarks as :func:`crops` places them.
    """
    from avse.video.track import fill_gaps

    lips = np.asarray(landmarks["lips"], dtype=np.float64)
    missing = ~np.isfinite(lips).all(axis=(1, 2))  # [N]
    if missing.all():
        return np.zeros((len(lips), EMBED_DIM), dtype=np.float32)
    filled = fill_gaps(landmarks) if missing.any() else landmarks
    out = encoder.embed(crops(frames, filled))  # [N, 128]
    out[missing] = 0.0
    return out


def embed_video(video: str | Path, landmarks: Mapping[str, Any], encoder: LightASDVisualEncoder) -> np.ndarray:
    """A video file's frames on the 25 fps grid (``avse.video.io.iter_grid_frames``) and one landmark set per frame
    -> Light-ASD embeddings float32 [N, 128] (:func:`embed_frames`), N = the landmarks' frame count."""
    from avse.video.io import iter_grid_frames

    n = len(landmarks["lips"])
    return embed_frames(iter_grid_frames(video, max_frames=n), landmarks, encoder)


# --- the whole detector -----------------------------------------------------------------------------------

#: audio frames a second of the detector's MFCCs, and per video frame
MFCC_RATE, MFCC_PER_FRAME = 100, 4
#: the piece lengths (seconds) whose scores are averaged, as the release evaluates a face track
DURATIONS = (1, 2, 3, 4, 5, 6)


def _mfcc_filterbank(n_filters: int = 26, n_fft: int = 512, sr: int = 16000) -> np.ndarray:
    """Triangular filters [n_filters, n_fft // 2 + 1] on HTK mel points 0 .. sr / 2, edges floored to FFT bins."""
    mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + sr / 2 / 700.0), n_filters + 2)
    edges = np.floor((n_fft + 1) * 700.0 * (10.0 ** (mel / 2595.0) - 1.0) / sr).astype(int)
    fb = np.zeros((n_filters, n_fft // 2 + 1))
    for j in range(n_filters):
        a, b, c = edges[j : j + 3]
        fb[j, a:b] = (np.arange(a, b) - a) / (b - a)
        fb[j, b:c] = (c - np.arange(b, c)) / (c - b)
    return fb


def mfcc(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Light-ASD's audio features: mono speech [T] (float, full scale 1) at 16 kHz -> float32 [N, 13], 100 a second.

    25 ms rectangular frames every 10 ms (the last zero-padded; N = 1 + ceil((T - 400) / 160)),
    pre-emphasis 0.97, |FFT 512|^2 / 512, 26 mel bands, log, orthonormal DCT-II, lifter 22,
    the first coefficient replaced by the log frame energy; on samples scaled to int16,
    as the release reads its wav files.
    """
    from avse.audio.features import dct_matrix

    if sr != 16000:
        raise ConfigError(f"Light-ASD's MFCCs are taken at 16 kHz, got {sr} Hz")
    x = np.asarray(audio, dtype=np.float64).reshape(-1) * 32768.0
    if x.size == 0:
        raise ConfigError("no audio samples")
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    win, hop = 400, 160
    n = 1 if len(x) <= win else 1 + int(np.ceil((len(x) - win) / hop))
    x = np.pad(x, (0, (n - 1) * hop + win - len(x)))
    frames = x[np.arange(n)[:, None] * hop + np.arange(win)[None, :]]  # [N, 400]
    power = np.abs(np.fft.rfft(frames, 512)) ** 2 / 512.0  # [N, 257]
    tiny = np.finfo(np.float64).eps
    energy = power.sum(1)
    bands = power @ _mfcc_filterbank().T  # [N, 26]
    bands[bands == 0] = tiny
    cep = np.log(bands) @ dct_matrix(13, 26, torch.float64).numpy().T  # [N, 13]
    cep *= 1.0 + 11.0 * np.sin(np.pi * np.arange(13) / 22.0)
    cep[:, 0] = np.log(np.where(energy == 0, tiny, energy))
    return cep.astype(np.float32)


class AudioBlock(_Block):
    """Two (k x 1 over the coefficients -> 1 x k over time) branches, k = 3 and 5, summed, then a 1 x 1 mix."""

    first = "m"

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        for k in (3, 5):
            p = k // 2
            setattr(self, f"m_{k}", nn.Conv2d(c_in, c_out, (k, 1), padding=(p, 0), bias=False))
            setattr(self, f"bn_m_{k}", nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01))
            setattr(self, f"t_{k}", nn.Conv2d(c_out, c_out, (1, k), padding=(0, p), bias=False))
            setattr(self, f"bn_t_{k}", nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01))
        self.last = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.bn_last = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01)


class LightASDAudioEncoder(nn.Module):
    """MFCCs [B, 4 T, 13] -> per-video-frame embeddings [B, T, 128]."""

    def __init__(self):
        super().__init__()
        self.block1 = AudioBlock(1, 32)
        self.block2 = AudioBlock(32, 64)
        self.block3 = AudioBlock(64, 128)

    @staticmethod
    def _pool(x: Tensor) -> Tensor:
        return nn.functional.max_pool2d(x, (1, 3), stride=(1, 2), padding=(0, 1))  # time halved

    def forward(self, feats: Tensor) -> Tensor:
        """feats [B, A, 13] -> [B, ceil(ceil(A / 2) / 2), 128]."""
        x = feats.float().transpose(1, 2)[:, None]  # [B, 1, 13, A]
        x = self.block3(self._pool(self.block2(self._pool(self.block1(x)))))
        return x.mean(dim=2).transpose(1, 2)


class LightASD(nn.Module):
    """The whole detector: gray face crops [B, T, 112, 112] and MFCCs [B, 4 T, 13] -> "speaking" logits [B, T]."""

    def __init__(self):
        super().__init__()
        self.visual = LightASDVisualEncoder()
        self.audio = LightASDAudioEncoder()
        self.gru_forward = nn.GRU(EMBED_DIM, EMBED_DIM, batch_first=True)
        self.gru_backward = nn.GRU(EMBED_DIM, EMBED_DIM, batch_first=True)
        self.fc = nn.Linear(EMBED_DIM, 2)

    def forward(self, crops: Tensor, feats: Tensor) -> Tensor:
        """crops [B, T, 112, 112] (0..255), feats [B, 4 T, 13] -> logits [B, T] (> 0: this face is speaking)."""
        v, a = self.visual(crops), self.audio(feats)
        if v.shape[1] != a.shape[1]:
            raise ConfigError(f"{crops.shape[1]} video frames need {MFCC_PER_FRAME * crops.shape[1]} MFCC frames, "
                              f"got {feats.shape[1]}")
        x = nn.functional.gelu(self.gru_forward(v + a)[0])
        x = nn.functional.gelu(self.gru_backward(x.flip(1))[0]).flip(1)
        return self.fc(x)[..., 1]

    @torch.no_grad()
    def scores(self, crops: np.ndarray, audio: np.ndarray, durations: Sequence[int] = DURATIONS) -> np.ndarray:
        """One face track: gray crops uint8 [N, 112, 112] and its speech [T] at 16 kHz -> per-frame logits float32 [M].

        M = min(N, MFCC frames // 4): the two are cut to the shorter. As the release scores a track,
        the clip is cut into pieces of each length in ``durations`` (seconds), each piece run on its
        own, and the logits averaged over the lengths.
        """
        feats = mfcc(audio)
        m = min(len(crops), len(feats) // MFCC_PER_FRAME)
        if m < 1:
            raise ConfigError("Light-ASD needs at least one video frame and 40 ms of speech")
        v = torch.from_numpy(np.ascontiguousarray(crops[:m]))
        a = torch.from_numpy(feats[: MFCC_PER_FRAME * m])
        fps = MFCC_RATE // MFCC_PER_FRAME
        out = np.zeros(m, dtype=np.float64)
        for d in durations:
            step = int(d) * fps
            for s in range(0, m, step):
                e = min(m, s + step)
                out[s:e] += self(v[None, s:e], a[None, MFCC_PER_FRAME * s : MFCC_PER_FRAME * e])[0].numpy()
        return (out / len(durations)).astype(np.float32)


def load_detector(path: str | Path) -> LightASD:
    """The whole Light-ASD detector of a released checkpoint (strict key match), frozen, in eval mode."""
    state = _entries(path, {PREFIX: "visual.", "model.audioEncoder.": "audio.", "model.GRU.": "", "lossAV.FC.": "fc."})
    det = LightASD()
    det.load_state_dict(state, strict=True)
    for p in det.parameters():
        p.requires_grad_(False)
    return det.eval()


def crops_from_faces(faces: np.ndarray) -> np.ndarray:
    """Aligned face crops uint8 [N, S, S, 3] RGB (``avse.video.roi.face_crops``, any side S) -> the detector's gray
    crops uint8 [N, 112, 112]: the same similarity on eyes and nose, so the face box is where :func:`crops` puts it
    (it lies inside the face crop)."""
    from avse.video.roi import face_reference

    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[1] != faces.shape[2] or faces.shape[3] != 3:
        raise ConfigError(f"expected face crops [N, S, S, 3], got shape {faces.shape}")
    mat = estimate_similarity(face_reference(faces.shape[1])[None], reference_crop())[0]
    out = np.empty((len(faces), CROP, CROP), dtype=np.uint8)
    for i, f in enumerate(faces):
        cv2.warpAffine(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), mat, (CROP, CROP), dst=out[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_GRAY)
    return out



__all__ = ["CROP", "DURATIONS", "EMBED_DIM", "AudioBlock", "LightASD", "LightASDAudioEncoder", "LightASDVisualEncoder",
           "VisualBlock", "crop_matrices", "crops", "crops_from_faces", "embed_frames", "embed_video", "load_detector",
           "load_visual_encoder", "mfcc", "reference_crop", "visual_state_dict"]
