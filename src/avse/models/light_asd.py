"""Light-ASD's visual encoder (frozen, the user's weights): 112 x 112 grayscale face crops -> one 128-vector per frame, the visual stream of models with ``visual_stream: light_asd``.

Light-ASD (Liao et al., CVPR 2023, "A Light Weight Model for Active Speaker
Detection"; MIT licence) is an active-speaker detector trained on real faces
(AVA-ActiveSpeaker, then optionally TalkSet). Only its visual encoder is
rebuilt here, written for this package from the published architecture:

- input: grayscale face crops [B, T, 112, 112], gray levels 0..255, standardised
  as (x / 255 - 0.4161) / 0.1688;
- three blocks, each the sum of two branches (a 1 x k x k spatial conv then a
  k x 1 x 1 temporal conv, k = 3 and k = 5, each conv followed by batch norm and
  ReLU) and then a 1 x 1 x 1 conv + batch norm + ReLU; 1 -> 32 -> 64 -> 128
  channels. The first block's spatial convs have stride 2; a 3 x 3 max pool
  with stride 2 follows the first and the second block (112 -> 56 -> 28 -> 14);
- a max over the remaining 14 x 14 positions gives [B, T, 128].

No conv has a bias; batch norms use eps 1e-3. The temporal convs see +-6
frames in all. The weights are the released checkpoints' ``model.visualEncoder.*``
entries, loaded by key (``load_visual_encoder``).

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

from collections.abc import Iterable, Mapping
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


class VisualBlock(nn.Module):
    """Two (spatial 1 x k x k -> temporal k x 1 x 1) branches, k = 3 and 5, summed, then a 1 x 1 x 1 mix."""

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

    def _branch(self, x: Tensor, k: int) -> Tensor:
        y = torch.relu(getattr(self, f"bn_s_{k}")(getattr(self, f"s_{k}")(x)))
        return torch.relu(getattr(self, f"bn_t_{k}")(getattr(self, f"t_{k}")(y)))

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, T, H, W] -> [B, C_out, T, H', W']."""
        return torch.relu(self.bn_last(self.last(self._branch(x, 3) + self._branch(x, 5))))


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


def visual_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A released Light-ASD checkpoint (a state dict of the whole ASD wrapper) -> the visual encoder's entries,
    the prefix ``model.visualEncoder.`` (and any ``module.``) stripped. MediaError when there is no such file,
    ConfigError when it is not a Light-ASD checkpoint."""
    if not Path(path).is_file():
        raise MediaError(path, "no such Light-ASD checkpoint")
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on foreign or truncated files
        raise ConfigError(f"{path}: not a readable Light-ASD checkpoint ({type(err).__name__})") from None
    if not isinstance(state, Mapping):
        raise ConfigError(f"{path}: not a state dict")
    out = {}
    for key, value in state.items():
        key = key.replace("module.", "")
        if key.startswith(PREFIX):
            out[key[len(PREFIX):]] = value
    if not out:
        raise ConfigError(f"{path}: no {PREFIX}* entries (not a Light-ASD checkpoint?)")
    return out


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


__all__ = ["CROP", "EMBED_DIM", "LightASDVisualEncoder", "VisualBlock", "crop_matrices", "crops", "embed_frames",
           "embed_video", "load_visual_encoder", "reference_crop", "visual_state_dict"]
