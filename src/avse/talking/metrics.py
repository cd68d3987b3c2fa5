"""Measures of generated faces: PSNR, SSIM, an identity descriptor (LBP histograms) and lip-landmark distance."""

from __future__ import annotations

import cv2
import numpy as np

from avse.errors import ConfigError


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 3:
        raise ConfigError(f"images must be two stacks of the same shape [..., H, W, 3], got {a.shape} and {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 image stacks [..., H, W, 3] (over all pixels; inf if equal)."""
    x, y = _pair(a, b)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two uint8 image stacks [N, H, W, 3] on their luma.

    Wang et al. (2004): Gaussian window sigma 1.5, K1 0.01, K2 0.03, L 255, the mean of the SSIM map.
    """
    x, y = _pair(a, b)
    if x.ndim == 3:
        x, y = x[None], y[None]
    luma = np.array([0.299, 0.587, 0.114])
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for u, v in zip(x @ luma, y @ luma):  # [H, W]
        blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
        mu_u, mu_v = blur(u), blur(v)
        su, sv, suv = blur(u * u) - mu_u**2, blur(v * v) - mu_v**2, blur(u * v) - mu_u * mu_v
        m = ((2 * mu_u * mu_v + c1) * (2 * suv + c2)) / ((mu_u**2 + mu_v**2 + c1) * (su + sv + c2))
        out.append(float(m[5:-5, 5:-5].mean()))
    return float(np.mean(out))


def _uniform_lbp_table() -> np.ndarray:
    """Map of the 256 8-bit LBP codes to 59 bins: the 58 uniform patterns (<= 2 transitions) and one for the rest."""
    table = np.full(256, 58, np.int64)
    k = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            table[code] = k
            k += 1
    return table


_LBP_TABLE = _uniform_lbp_table()


def identity_descriptor(face: np.ndarray, grid: int = 6) -> np.ndarray:
    """An aligned face crop uint8 [S, S, 3] -> a unit vector [grid * grid * 59]: uniform LBP histograms.

    The classic face-recognition descriptor of Ahonen et al. (2006): 8-neighbour local binary
    patterns of the gray image (lightly blurred first, and a neighbour must be half a gray
    level brighter to count, so flat skin gives stable codes), histogrammed over a grid of cells and concatenated. It is not
    learned, so it tells who a face is only roughly; use it to compare methods, not as a verifier.
    """
    gray = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2GRAY)
    g = cv2.GaussianBlur(gray.astype(np.float32), (5, 5), 1.0)  # pixel noise would flip the codes of flat skin
    c = g[1:-1, 1:-1]
    code = np.zeros_like(c, dtype=np.int64)
    shifts = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    h, w = g.shape
    for bit, (dy, dx) in enumerate(shifts):
        n = g[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        code |= (n >= c + 0.5).astype(np.int64) << bit
    bins = _LBP_TABLE[code]
    hh, ww = bins.shape
    hist = []
    for i in range(grid):
        for j in range(grid):
            cell = bins[i * hh // grid : (i + 1) * hh // grid, j * ww // grid : (j + 1) * ww // grid]
            hist.append(np.bincount(cell.ravel(), minlength=59).astype(np.float64))
    v = np.sqrt(np.concatenate(hist))  # Hellinger: square roots of the counts
    return v / max(np.linalg.norm(v), 1e-12)


def identity_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine similarity of ``identity_descriptor`` between frames a [N, S, S, 3] and b [N, S, S, 3] (or one [S, S, 3])."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 3:
        a = a[None]
    if b.ndim == 3:
        b = np.broadcast_to(b[None], a.shape)
    return float(np.mean([identity_descriptor(x) @ identity_descriptor(y) for x, y in zip(a, b)]))


def lip_landmarks(crops: np.ndarray, upscale: int = 3) -> np.ndarray:
    """The 40 lip points of each aligned face crop uint8 [N, S, S, 3] -> [N, 40, 2] crop pixels (NaN where no face).

    MediaPipe's face mesh in static-image mode on each crop, enlarged ``upscale`` times first
    (the mesh is unreliable on faces under about 150 pixels).
    """
    from avse.video.detect import FaceMeshDetector
    from avse.video.landmarks import LIP_INDEX

    out = np.full((len(crops), 40, 2), np.nan)
    with FaceMeshDetector(max_num_faces=1, static_image_mode=True, reacquire=False) as det:
        for i, crop in enumerate(crops):
            big = cv2.resize(np.ascontiguousarray(crop), None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
            faces = det.detect(big)
            if faces:
                out[i] = faces[0].mesh[LIP_INDEX] / upscale
    return out


def lip_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance (pixels) between matching lip points a, b [N, 40, 2] after removing each frame's
    mean lip position, over frames where both are found (NaN if none): lip shape and opening, not place."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
    if not ok.any():
        return float("nan")
    a = a[ok] - a[ok].mean(1, keepdims=True)
    b = b[ok] - b[ok].mean(1, keepdims=True)
    return float(np.linalg.norm(a - b, axis=-1).mean())


__all__ = ["psnr", "ssim", "identity_descriptor", "identity_similarity", "lip_landmarks", "lip_distance"]
