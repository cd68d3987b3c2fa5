"""Synthetic talking faces: render articulatory trajectories to RGB frames with ground-truth landmarks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from avse import VIDEO_FPS
from avse.data.visemes import JAW, OPEN, RAISE, ROUND, SPREAD, TUCK, K
from avse.errors import ConfigError
from avse.video.landmarks import LIP_INDEX

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT

# ---------------------------------------------------------------------------------------------
# Per-speaker appearance
# ---------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]

_SKIN = np.array(
    [(255, 224, 198), (241, 203, 172), (228, 182, 146), (206, 152, 112), (172, 116, 80), (132, 86, 58), (96, 62, 44)],
    dtype=np.float64,
)
_HAIR = np.array(
    [(22, 17, 15), (48, 32, 24), (82, 56, 36), (128, 92, 58), (196, 158, 102), (150, 72, 38), (150, 148, 145)],
    dtype=np.float64,
)
_HAIR_P = np.array([0.3, 0.22, 0.16, 0.1, 0.08, 0.06, 0.08])
_IRIS = np.array([(72, 46, 30), (104, 72, 42), (64, 96, 128), (82, 112, 82), (44, 32, 26)], dtype=np.float64)


@dataclass(frozen=True)
class FaceStyle:
    """Appearance of one synthetic speaker. Lengths are in face half-widths unless noted.

    Sampled by ``style_for_speaker``; ``articulation``/``coarticulation`` are the speaker's
    speaking style, meant for ``avse.data.visemes.lip_trajectory``.
    """

    seed: int
    skin: RGB
    lip_color: RGB
    hair_color: RGB
    iris_color: RGB
    shirt_color: RGB
    bg_top: RGB
    bg_bottom: RGB
    face_w: float  # face half-width in pixels for a 224-pixel frame, before ``scale``
    face_h: float  # face half-height / half-width
    chin: float  # narrowing of the lower face (0 = oval)
    eye_spacing: float  # eye-centre x
    eye_size: float  # eye half-length
    eye_open: float  # upper-lid arc height / eye half-length
    eye_y: float  # eye-line y, in face half-heights (negative = above the centre)
    brow_gap: float  # brow height above the eye line
    brow_thick: float
    nose_y: float  # nose tip y, in face half-heights
    nose_w: float
    mouth_y: float  # mouth y, in face half-heights
    lip_width: float  # mouth half-width at rest
    lip_thickness: float  # upper-lip thickness
    lip_ratio: float  # lower / upper lip thickness
    hair_style: int  # 0 short, 1 long, 2 bob, 3 cropped
    hair_part: float  # -1..1, where the hairline peaks
    bg_pattern: int  # 0 plain gradient, 1 blurred shapes, 2 stripes
    cx: float  # face centre x, fraction of the frame width
    cy: float  # face centre y, fraction of the frame height
    scale: float
    head_motion: float  # amplitude factor of head translation / rotation / scale drift
    light_var: float  # amplitude of the slow lighting change
    noise_sigma: float  # sensor noise, in 8-bit levels
    articulation: float
    coarticulation: float


def _seed_int(seed: int | str) -> int:
    if isinstance(seed, (int, np.integer)):
        return int(seed)
    return int.from_bytes(hashlib.sha256(str(seed).encode()).digest()[:8], "little") >> 1


def _rgb(x: np.ndarray) -> RGB:
    r, g, b = (int(round(float(v))) for v in np.clip(x, 0, 255))
    return (r, g, b)


def style_for_speaker(seed: int | str) -> FaceStyle:
    """The appearance of speaker ``seed`` (an int, or a name hashed stably): same seed, same face."""
    s = _seed_int(seed)
    rng = np.random.default_rng([s, 0x5FACE])
    u = rng.uniform(0, len(_SKIN) - 1)
    i = min(int(u), len(_SKIN) - 2)
    skin = _SKIN[i] * (1 - (u - i)) + _SKIN[i + 1] * (u - i) + rng.normal(0, 5, 3)
    lip = skin * rng.uniform(0.72, 0.86) * (1 - (w := rng.uniform(0.25, 0.45))) + w * np.array((178, 70, 82))
    lip = lip * np.clip(skin.mean() / 200, 0.55, 1.0) ** 0.3
    gap = lip - skin
    if np.linalg.norm(gap) < 55:  # keep the mouth visible on every skin tone
        lip = skin + gap * 55 / max(np.linalg.norm(gap), 1e-6)
    hair = _HAIR[rng.choice(len(_HAIR), p=_HAIR_P)] * rng.uniform(0.85, 1.15) + rng.normal(0, 4, 3)
    iris = _IRIS[rng.integers(len(_IRIS))] + rng.normal(0, 6, 3)
    hue = rng.uniform(0, 180)
    hsv = np.array([[[hue, rng.uniform(40, 200), rng.uniform(50, 220)]]], np.uint8)
    shirt = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)
    base = rng.uniform(70, 220, 3)
    bg_top = base + rng.normal(0, 20, 3)
    bg_bottom = base * rng.uniform(0.55, 0.95) + rng.normal(0, 15, 3)
    return FaceStyle(
        seed=s,
        skin=_rgb(skin),
        lip_color=_rgb(lip),
        hair_color=_rgb(hair),
        iris_color=_rgb(iris),
        shirt_color=_rgb(shirt),
        bg_top=_rgb(bg_top),
        bg_bottom=_rgb(bg_bottom),
        face_w=float(rng.uniform(46, 53)),
        face_h=float(rng.uniform(1.22, 1.42)),
        chin=float(rng.uniform(0.12, 0.4)),
        eye_spacing=float(rng.uniform(0.36, 0.43)),
        eye_size=float(rng.uniform(0.16, 0.2)),
        eye_open=float(rng.uniform(0.5, 0.62)),
        eye_y=float(rng.uniform(-0.16, -0.06)),
        brow_gap=float(rng.uniform(0.17, 0.26)),
        brow_thick=float(rng.uniform(0.045, 0.085)),
        nose_y=float(rng.uniform(0.24, 0.31)),
        nose_w=float(rng.uniform(0.11, 0.15)),
        mouth_y=float(rng.uniform(0.53, 0.6)),
        lip_width=float(rng.uniform(0.30, 0.36)),  # mouth width ~0.8 eye distances, as measured on real faces
        lip_thickness=float(rng.uniform(0.075, 0.12)),
        lip_ratio=float(rng.uniform(1.1, 1.5)),
        hair_style=int(rng.integers(4)),
        hair_part=float(rng.uniform(-0.6, 0.6)),
        bg_pattern=int(rng.integers(3)),
        cx=float(rng.uniform(0.45, 0.55)),
        cy=float(rng.uniform(0.42, 0.47)),
        scale=float(rng.uniform(0.9, 1.08)),
        head_motion=float(rng.uniform(0.5, 1.5)),
        light_var=float(rng.uniform(0.03, 0.09)),
        noise_sigma=float(rng.uniform(1.5, 4.5)),
        articulation=float(rng.uniform(0.85, 1.15)),
        coarticulation=float(rng.uniform(0.85, 1.2)),
    )


# ---------------------------------------------------------------------------------------------
# Time-varying nuisance: blinks, gaze, head motion, lighting
# ---------------------------------------------------------------------------------------------


def blink_schedule(n_frames: int, rng: np.random.Generator, fps: float = VIDEO_FPS) -> np.ndarray:
    """Eyelid closure [n_frames] float32 in [0, 1]: blinks of 3-5 frames (fully shut at the middle).

    The first blink comes within 0.3-2.5 s, then one every 1.5-5 s.
    """
    closure = np.zeros(n_frames, dtype=np.float32)
    t = rng.uniform(0.3, 2.5)
    while True:
        start = int(t * fps)
        length = int(rng.integers(3, 6))
        if start >= n_frames:
            break
        prof = np.sin(np.pi * np.arange(1, length + 1) / (length + 1)) ** 0.6
        prof /= prof.max()
        stop = min(n_frames, start + length)
        closure[start:stop] = prof[: stop - start]
        t += length / fps + rng.uniform(1.5, 5.0)
    return closure


def _smooth_noise(rng: np.random.Generator, n: int, fps: float, fmin: float = 0.06, fmax: float = 0.5) -> np.ndarray:
    """A smooth random signal [n] of roughly unit amplitude: a sum of three slow sinusoids."""
    t = np.arange(n) / fps
    f = rng.uniform(fmin, fmax, 3)
    ph = rng.uniform(0, 2 * np.pi, 3)
    amp = rng.uniform(0.5, 1.0, 3)
    x = (amp[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0)
    return x / amp.sum() * 1.6


def _gaze(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """Piecewise-constant gaze offset [n, 2] (saccades every 0.5-2.5 s), in eye half-lengths."""
    g = np.zeros((n, 2))
    t = 0
    while t < n:
        dur = int(rng.uniform(0.5, 2.5) * fps) + 1
        g[t : t + dur] = (rng.normal(0, 0.14), rng.normal(0, 0.05))
        t += dur
    return np.clip(g, -0.3, 0.3)


# ---------------------------------------------------------------------------------------------
# Geometry, in head coordinates: origin at the face centre, x right, y down, unit = face half-width
# ---------------------------------------------------------------------------------------------

# lip parameter t in [-1, 1] (-1 = MediaPipe 61 side, image left); a dense grid for drawing whose
# even entries are the landmark positions (11 per lower half including the corners, 9 upper inner)
_T_MARK = np.array([-1, -0.82, -0.6, -0.38, -0.18, 0.0, 0.18, 0.38, 0.6, 0.82, 1])
_T_DENSE = np.sort(np.concatenate([_T_MARK, 0.5 * (_T_MARK[1:] + _T_MARK[:-1])]))  # [21]


def _lip_curves(traj: np.ndarray, st: FaceStyle) -> dict[str, np.ndarray]:
    """Lip, teeth and tongue curves [N, 21, 2] (head coords) for trajectories traj [N, K]."""
    j, o, sp, r, u, k = (traj[:, i : i + 1].astype(np.float64) for i in (JAW, OPEN, SPREAD, ROUND, RAISE, TUCK))
    t = _T_DENSE[None, :]  # [1, 21]
    w0 = st.lip_width
    W = w0 * (1 + 0.10 * sp - 0.2 * r)  # outer half-width [N, 1]
    Wi = W * (0.9 - 0.06 * r)  # inner corners
    G = 0.85 * w0 * o  # lip gap at the midline (without the raise)
    U = 0.09 * w0 * u  # upper-lip raise
    yc = 0.3 * G - 0.03 * w0 * sp  # corner level (smile lifts the corners)
    p = 0.55 + 0.3 * r - 0.25 * sp  # opening shape: rounder when rounded, flatter when spread
    f = np.clip(1 - t**2, 0, 1) ** p  # [N, 21]
    yiu = yc - (0.45 * G + U) * f
    yil = yc + 0.55 * G * f
    T0 = st.lip_thickness
    Tu = T0 * (1 + 0.4 * r - 0.15 * sp) * (1 - 0.25 * u)
    Tl = T0 * st.lip_ratio * (1 + 0.3 * r - 0.15 * sp) * (1 - 0.45 * k)
    at = np.abs(t)
    peaks = 0.16 * np.exp(-(((at - 0.3) / 0.15) ** 2))  # Cupid's bow: two peaks and a dip at the middle
    bow = np.clip(1 - t**2, 0, 1) ** 0.45 * (1 + peaks - 0.14 * np.exp(-((t / 0.11) ** 2)))
    you = yiu - Tu * bow
    yol = yil + Tl * np.clip(1 - t**2, 0, 1) ** 0.6
    gap = yil - yiu
    th = np.minimum(0.25 * w0 * (1 + 0.5 * u), 0.62 * gap) * np.clip(1 - t**2, 0, 1) ** 0.15
    lth = np.minimum(0.14 * w0, 0.22 * gap) * np.clip(1 - (t / 0.75) ** 2, 0, 1) ** 0.3
    tongue = yil - 0.32 * gap * np.clip(1 - (t / 0.8) ** 2, 0, 1) ** 0.5
    hi_top = yil + 0.3 * Tl * np.clip(1 - (t / 0.55) ** 2, 0, 1) ** 0.6
    hi_bot = yil + 0.62 * Tl * np.clip(1 - (t / 0.55) ** 2, 0, 1) ** 0.6
    my = st.mouth_y * st.face_h
    xo, xi = W * t, Wi * t

    def pts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.stack(np.broadcast_arrays(x, y + my), -1)  # [N, 21, 2]

    return {
        "outer_upper": pts(xo, you), "outer_lower": pts(xo, yol),
        "inner_upper": pts(xi, yiu), "inner_lower": pts(xi, yil),
        "teeth_upper": pts(xi, yiu + th), "teeth_lower": pts(xi, yil - lth),
        "tongue": pts(xi, tongue), "hi_top": pts(xi * 0.9, hi_top), "hi_bot": pts(xi * 0.9, hi_bot),
        "chin_line": pts(0.2 * w0 * t, yol[:, 10:11] + 0.6 * T0 + 0.04 * (1 - t**2) ** 0.5),
        "corner": np.concatenate([pts(-W, yc)[:, :1], pts(W, yc)[:, :1]], 1),  # [N, 2, 2]
    }  # fmt: skip


def _face_contour(st: FaceStyle, n: int = 72) -> np.ndarray:
    """Face outline [n, 2] (head coords), clockwise from the right side (image right)."""
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    s, c = np.sin(phi), np.cos(phi)
    x = c * (1 - st.chin * np.clip(s, 0, None) ** 1.6) * (1 + 0.04 * np.clip(-s, 0, None))
    y = st.face_h * s * np.where(s > 0, 1.0, 1.02)
    return np.stack([x, y], -1)


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, n: int = 24, a0: float = 0.0, a1: float = 2 * np.pi
) -> np.ndarray:
    """Points [n, 2] on an ellipse (a closed ring, or the arc a0..a1)."""
    a = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * np.pi - 1e-9)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], -1)


def _hair(st: FaceStyle) -> tuple[np.ndarray, np.ndarray]:
    """Back hair (drawn behind the face) and front hair (the cap over the forehead), [P, 2] each."""
    b = st.face_h
    top = _ellipse(0, -0.04 * b, 1.08, 1.07 * b, 40, np.pi, 2 * np.pi)  # left -> over the top -> right
    if st.hair_style == 1:  # long
        arc = _ellipse(0, -0.05 * b, 1.22, 1.12 * b, 40, np.pi, 2 * np.pi)
        back = np.concatenate([[[-1.28, 1.45 * b]], arc, [[1.28, 1.45 * b]]])
    elif st.hair_style == 2:  # bob
        arc = _ellipse(0, -0.05 * b, 1.18, 1.1 * b, 40, np.pi, 2 * np.pi)
        back = np.concatenate([[[-1.2, 0.55 * b]], arc, [[1.2, 0.55 * b]]])
    elif st.hair_style == 3:  # cropped
        back = _ellipse(0, -0.12 * b, 1.03, 0.95 * b, 40)
    else:  # short
        back = _ellipse(0, -0.1 * b, 1.1, 1.0 * b, 40)
    # hairline: temples at x = +-0.97, peaking (highest) near the part
    xs = np.linspace(0.97, -0.97, 25)
    peak = -0.62 * b if st.hair_style != 3 else -0.72 * b
    temple = -0.3 * b if st.hair_style != 3 else -0.42 * b
    d = (xs - 0.35 * st.hair_part) / 1.3
    hairline = temple + (peak - temple) * np.clip(1 - d**2, 0, 1) ** 0.7 + 0.06 * b * np.sin(3.0 * xs + st.hair_part)
    front = np.concatenate([[[-1.0, -0.05 * b]], top, [[1.0, -0.05 * b]], np.stack([xs, hairline], -1)])
    return back, front


def _eye_curves(st: FaceStyle, blink: np.ndarray, gaze: np.ndarray, side: int) -> dict[str, np.ndarray]:
    """One eye (side -1 = image left = subject's right eye): lid curves, iris and pupil [N, P, 2]."""
    n = len(blink)
    b = st.face_h
    ex, ey, el = side * st.eye_spacing, st.eye_y * b, st.eye_size
    u = np.linspace(-1, 1, 15)[None, :]  # image left -> right
    outer = side  # u at the outer corner (the image-left eye has its outer corner on the left)
    tilt = 0.06 * el  # outer corner a little higher
    line = ey - tilt * (u * outer + 1) / 2 + 0.0 * u
    up_open = line - st.eye_open * el * np.clip(1 - u**2, 0, 1) ** 0.7 * (1 + 0.18 * u * -outer)
    low = line + 0.32 * el * np.clip(1 - u**2, 0, 1) ** 0.8 * (1 + 0.15 * u * outer)
    cl = blink[:, None].astype(np.float64)
    up = (1 - cl) * up_open + cl * (line + 0.85 * (low - line))  # [N, 15]
    x = np.broadcast_to(ex + el * u, (n, 15))

    def lids(xq: np.ndarray, yq: np.ndarray) -> np.ndarray:
        """Clamp points (xq, yq) [N, P] into the visible eye opening."""
        uq = np.clip((xq - ex) / el, -1, 1)
        lq = ey - tilt * (uq * outer + 1) / 2
        upq = lq - st.eye_open * el * np.clip(1 - uq**2, 0, 1) ** 0.7 * (1 + 0.18 * uq * -outer)
        lowq = lq + 0.32 * el * np.clip(1 - uq**2, 0, 1) ** 0.8 * (1 + 0.15 * uq * outer)
        upq = (1 - cl) * upq + cl * (lq + 0.85 * (lowq - lq))
        return np.stack([ex + el * uq, np.clip(yq, upq, lowq)], -1)

    gx = ex + gaze[:, :1] * el
    gy = ey - 0.05 * el + gaze[:, 1:] * el
    a = np.linspace(0, 2 * np.pi, 20, endpoint=False)[None, :]
    ri = 0.44 * el
    iris = lids(gx + ri * np.cos(a), gy + ri * np.sin(a))
    pupil = lids(gx + 0.45 * ri * np.cos(a), gy + 0.45 * ri * np.sin(a))
    glint = lids(gx + 0.3 * ri + 0.12 * ri * np.cos(a), gy - 0.3 * ri + 0.12 * ri * np.sin(a))
    crease = np.stack(np.broadcast_arrays(ex + 0.8 * el * u, up_open - 0.3 * el * np.clip(1 - u**2, 0, 1) ** 0.5), -1)
    crease = np.broadcast_to(crease, (n, 15, 2))
    # brow: centre line from the inner end to the outer end, tapered polygon
    v = np.linspace(0, 1, 9)
    bx = ex + side * el * (-0.95 + 2.15 * v)
    by = ey - st.brow_gap * b * 0.75 - 0.09 * np.sin(np.pi * np.clip(v * 1.1, 0, 1)) + 0.03 * v
    bt = st.brow_thick * (1.0 - 0.55 * v)
    brow = np.concatenate([np.stack([bx, by - bt / 2], -1), np.stack([bx, by + bt / 2], -1)[::-1]])
    corners = np.stack([[ex + outer * el, ey - tilt], [ex - outer * el, ey]])  # (outer, inner)
    return {
        "sclera": np.concatenate([np.stack([x, up], -1), np.stack([x, np.broadcast_to(low, (n, 15))], -1)[:, ::-1]], 1),
        "upper_lid": np.stack([x, up], -1), "lower_lid": np.stack([x, np.broadcast_to(low, (n, 15))], -1),
        "iris": iris, "pupil": pupil, "glint": glint, "crease": crease,
        "brow": np.broadcast_to(brow, (n,) + brow.shape), "corners": np.broadcast_to(corners, (n, 2, 2)),
    }  # fmt: skip


def _nose(st: FaceStyle) -> dict[str, np.ndarray]:
    """Nose shapes [P, 2] (head coords); the tip landmark is (0, nose_y)."""
    b = st.face_h
    ny, nw = st.nose_y * b, st.nose_w
    out: dict[str, np.ndarray] = {"tip": np.array([[0.0, ny]])}
    out["tip_hi"] = _ellipse(0.0, ny - 0.02, 0.55 * nw, 0.05, 16)
    for side, name in ((-1, "l"), (1, "r")):
        out[f"nostril_{name}"] = _ellipse(side * 0.48 * nw, ny + 0.055, 0.26 * nw, 0.022, 12)
        a = np.linspace(-0.6 * np.pi, 0.75 * np.pi, 9)
        out[f"ala_{name}"] = np.stack([side * (0.62 * nw + 0.38 * nw * np.cos(a)), ny + 0.015 + 0.055 * np.sin(a)], -1)
    out["bridge"] = np.array([[-0.1, st.eye_y * b + 0.12], [-0.09, (st.eye_y * b + ny) / 2], [-0.12, ny - 0.08]])
    return out


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _background(st: FaceStyle, h: int, w: int, rng: np.random.Generator, centre: np.ndarray, a_px: float) -> np.ndarray:
    """Static background [h, w, 3] uint8: gradient + texture (+ shapes or stripes) + shoulders."""
    ramp = np.linspace(0, 1, h)[:, None, None]
    top, bot = np.array(st.bg_top, np.float32), np.array(st.bg_bottom, np.float32)
    bg: np.ndarray = np.broadcast_to((1 - ramp) * top + ramp * bot, (h, w, 3)).astype(np.float32).copy()
    if st.bg_pattern == 1:
        for _ in range(int(rng.integers(3, 7))):
            x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
            x1, y1 = x0 + rng.uniform(0.1, 0.5) * w, y0 + rng.uniform(0.1, 0.6) * h
            col = np.clip(top * rng.uniform(0.6, 1.3) + rng.normal(0, 25, 3), 0, 255)
            cv2.rectangle(bg, (int(x0), int(y0)), (int(x1), int(y1)), tuple(float(c) for c in col), -1)
        bg = cv2.GaussianBlur(bg, (0, 0), 0.02 * w + 1)
    elif st.bg_pattern == 2:
        period = rng.uniform(0.08, 0.2) * w
        xx = np.arange(w)[None, :, None]
        bg *= (1 + 0.08 * np.sign(np.sin(2 * np.pi * xx / period))).astype(np.float32)
        bg = cv2.GaussianBlur(bg, (0, 0), 1.0)
    tex = cv2.resize(rng.normal(0, 1, (7, 7, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    bg += 10.0 * tex + rng.normal(0, 2.0, (h, w, 3)).astype(np.float32)
    img = np.clip(bg, 0, 255).astype(np.uint8)
    # shoulders and collar (static: the head moves over them)
    cx, cy = centre
    sy = cy + (st.face_h + 0.55) * a_px
    half = np.array([[3.2, h + 5], [2.6, sy + 0.5 * a_px], [1.4, sy], [0.6, sy - 0.1 * a_px]])  # [x / a_px, y]
    sh = np.concatenate([half * (-1, 1), half[::-1]]) * (a_px, 1) + (cx, 0)  # left side, then right
    cv2.fillPoly(img, [np.round(sh * _ONE).astype(np.int32)], st.shirt_color, cv2.LINE_AA, _SHIFT)
    collar = np.array([[-0.62, sy - 0.1 * a_px], [0.0, sy + 0.55 * a_px], [0.62, sy - 0.1 * a_px]])
    collar = collar * (a_px, 1) + (cx, 0)
    dark = tuple(int(c * 0.6) for c in st.shirt_color)
    thick = max(1, int(0.06 * a_px))
    cv2.polylines(img, [np.round(collar * _ONE).astype(np.int32)], False, dark, thick, cv2.LINE_AA, _SHIFT)
    return img


def _shade(rgb: RGB, f: float) -> tuple[float, float, float]:
    r, g, b = (float(min(255.0, c * f)) for c in rgb)
    return r, g, b


def render_face(
    traj: np.ndarray,
    style: FaceStyle,
    size: tuple[int, int] = (224, 224),
    rng: np.random.Generator | None = None,
    fps: float = VIDEO_FPS,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render articulatory trajectories traj [N, K] as a talking face.

    Returns frames [N, H, W, 3] uint8 RGB (size = (H, W)) and the landmark dict of the corpus
    contract, float32 pixel coordinates in the frame: lips [N, 40, 2] (LIP_INDEX order),
    lip_index [40] int32, eyes [N, 4, 2] (MediaPipe 33, 133, 362, 263), nose [N, 2] (tip, 1),
    face_box [N, 4] (x0, y0, x1, y1 of the drawn face outline, chin included).
    Blinks, gaze, head motion (translation, in-plane rotation, scale drift), lighting drift and
    sensor noise are drawn from ``rng`` (default: seeded by ``style.seed``); the landmarks move
    with the head exactly as the drawing does.
    """
    traj = np.asarray(traj, dtype=np.float32)
    if traj.ndim != 2 or traj.shape[1] != K:
        raise ConfigError(f"traj must be [N, {K}], got {traj.shape}")
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise ConfigError(f"frame size {size} too small (>= 32x32)")
    rng = np.random.default_rng([style.seed, 1]) if rng is None else rng
    n = len(traj)
    st = style
    b = st.face_h
    f_size = min(h, w) / 224.0
    a_px = st.face_w * st.scale * f_size
    centre = np.array([st.cx * w, st.cy * h])

    # --- time-varying nuisances
    blink = blink_schedule(n, rng, fps)
    gaze = _gaze(rng, n, fps)
    hm = st.head_motion
    scale = a_px * (1 + 0.025 * hm * _smooth_noise(rng, n, fps))  # [N]
    angle = np.deg2rad(3.0 * hm * _smooth_noise(rng, n, fps))  # [N]
    shift = centre + 0.06 * hm * a_px * np.stack([_smooth_noise(rng, n, fps), _smooth_noise(rng, n, fps)], -1)  # [N, 2]
    gain = 1 + st.light_var * _smooth_noise(rng, n, fps, 0.03, 0.3)
    tint = 1 + 0.3 * st.light_var * np.stack([_smooth_noise(rng, n, fps, 0.03, 0.3) for _ in range(3)], -1)
    light = np.zeros((n, 3, 4), dtype=np.float32)
    light[:, [0, 1, 2], [0, 1, 2]] = gain[:, None] * tint
    light[:, :, 3] = 4.0 * _smooth_noise(rng, n, fps, 0.03, 0.3)[:, None]
    bg = _background(st, h, w, rng, centre, a_px)
    pad = 16
    noise = rng.normal(0, st.noise_sigma, (h + pad, w + pad, 3))
    noise_pos = np.clip(noise, 0, 255).astype(np.uint8)
    noise_neg = np.clip(-noise, 0, 255).astype(np.uint8)
    noise_off = rng.integers(0, pad + 1, (n, 2))

    # --- geometry in head coordinates, every shape [N, P, 2]
    shapes: dict[str, np.ndarray] = {}

    def add(name: str, arr: np.ndarray) -> None:
        shapes[name] = np.broadcast_to(arr, (n,) + arr.shape[-2:]) if arr.ndim == 2 else arr

    lips = _lip_curves(traj, st)
    jaw = traj[:, JAW].astype(np.float64)
    face = _face_contour(st)
    pivot = st.nose_y * b
    wgt = np.clip((face[:, 1] - pivot) / (b - pivot), 0, 1) ** 1.2  # [72]
    face_n = np.broadcast_to(face, (n,) + face.shape).copy()
    face_n[:, :, 1] += (0.9 * 1.05 * st.lip_width * jaw)[:, None] * wgt[None, :]
    add("face", face_n)
    back, front = _hair(st)
    add("hair_back", back)
    add("hair_front", front)
    neck_top = np.array([[-0.42, 0.45 * b], [0.42, 0.45 * b]])
    add("neck_top", neck_top)
    for side, name in ((-1, "l"), (1, "r")):
        add(f"ear_{name}", _ellipse(side * 0.98, st.eye_y * b + 0.22 * b, 0.13, 0.26, 16))
        add(f"ear_in_{name}", _ellipse(side * 1.0, st.eye_y * b + 0.22 * b, 0.06, 0.16, 12))
        for key, arr in _eye_curves(st, blink, gaze, side).items():
            add(f"eye_{name}_{key}", arr)
        # nasolabial fold: from beside the nostril wing to just above the mouth corner (follows it)
        corner = lips["corner"][:, (side + 1) // 2]  # [N, 2]
        fold = np.empty((n, 3, 2))
        fold[:, 0] = (side * (st.nose_w + 0.09), st.nose_y * b + 0.03)
        fold[:, 2] = corner + (side * 0.08, -0.07)
        fold[:, 1] = 0.5 * (fold[:, 0] + fold[:, 2]) + (side * 0.025, 0.0)
        add(f"fold_{name}", fold)
    for key, arr in _nose(st).items():
        add(f"nose_{key}", arr)
    for key, arr in lips.items():
        add(f"lip_{key}", arr)
    names = list(shapes)
    sizes = [shapes[k].shape[1] for k in names]
    bounds = np.cumsum([0] + sizes)
    sl = {k: slice(int(bounds[i]), int(bounds[i + 1])) for i, k in enumerate(names)}
    pts = np.concatenate([shapes[k] for k in names], axis=1)  # [N, P, 2]

    # --- head coordinates -> image: similarity per frame
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    A = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # [N, 2, 2]
    img_pts = np.einsum("nij,npj->npi", A, pts) + shift[:, None, :]  # [N, P, 2]
    fx = np.round(img_pts * _ONE).astype(np.int32)  # fixed point for cv2

    def P(name: str, i: int) -> np.ndarray:
        return fx[i, sl[name]]

    # --- landmarks
    def mark(arr: np.ndarray) -> np.ndarray:
        return arr[:, 0::2]

    outer_lo, outer_up = img_pts[:, sl["lip_outer_lower"]], img_pts[:, sl["lip_outer_upper"]]
    inner_lo, inner_up = img_pts[:, sl["lip_inner_lower"]], img_pts[:, sl["lip_inner_upper"]]
    lip_marks = np.concatenate([mark(outer_lo), mark(outer_up)[:, 1:-1], mark(inner_lo), mark(inner_up)[:, 1:-1]], 1)
    eyes = np.concatenate([img_pts[:, sl["eye_l_corners"]], img_pts[:, sl["eye_r_corners"]][:, ::-1]], 1)
    face_img = img_pts[:, sl["face"]]
    landmarks = {
        "lips": lip_marks.astype(np.float32),
        "lip_index": LIP_INDEX.copy(),
        "eyes": eyes.astype(np.float32),
        "nose": img_pts[:, sl["nose_tip"]][:, 0].astype(np.float32),
        "face_box": np.concatenate([face_img.min(1), face_img.max(1)], -1).astype(np.float32),
    }

    # --- colours
    skin = st.skin
    skin_dark, skin_shadow, skin_light = _shade(skin, 0.86), _shade(skin, 0.72), _shade(skin, 1.07)
    skin_line = _shade(skin, 0.92)
    hair, hair_dark = _shade(st.hair_color, 1.0), _shade(st.hair_color, 0.75)
    lip_up, lip_lo, lip_hi = _shade(st.lip_color, 0.86), _shade(st.lip_color, 1.0), _shade(st.lip_color, 1.06)
    mouth, tongue, teeth = (52.0, 16.0, 22.0), (150.0, 62.0, 70.0), (236.0, 232.0, 218.0)
    sclera, iris, pupil = (238.0, 236.0, 230.0), _shade(st.iris_color, 1.0), (12.0, 10.0, 10.0)
    lash = _shade(st.hair_color, 0.5) if st.hair_color[0] < 120 else (40.0, 30.0, 28.0)
    aa, sh = cv2.LINE_AA, _SHIFT
    th1 = max(1, int(round(0.035 * a_px)))
    th_lash = max(1, int(round(0.03 * a_px)))
    neck_w = 0.42 * a_px
    neck_bot = np.array([[centre[0] + neck_w, h + 2.0], [centre[0] - neck_w, h + 2.0]])
    neck_bot = np.round(neck_bot * _ONE).astype(np.int32)

    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        img = frames[i]
        img[:] = bg
        if st.hair_style == 1:
            cv2.fillPoly(img, [P("hair_back", i)], hair_dark, aa, sh)
        cv2.fillPoly(img, [np.concatenate([P("neck_top", i), neck_bot])], skin_shadow, aa, sh)
        if st.hair_style != 1:
            cv2.fillPoly(img, [P("hair_back", i)], hair_dark, aa, sh)
        for e in "lr":
            cv2.fillPoly(img, [P(f"ear_{e}", i)], skin_dark, aa, sh)
            cv2.fillPoly(img, [P(f"ear_in_{e}", i)], skin_shadow, aa, sh)
        cv2.fillPoly(img, [P("face", i)], skin, aa, sh)
        cv2.fillPoly(img, [P("hair_front", i)], hair, aa, sh)
        # eyes
        for e in "lr":
            cv2.polylines(img, [P(f"eye_{e}_crease", i)], False, skin_line, th1, aa, sh)
            cv2.fillPoly(img, [P(f"eye_{e}_sclera", i)], sclera, aa, sh)
            cv2.fillPoly(img, [P(f"eye_{e}_iris", i)], iris, aa, sh)
            cv2.fillPoly(img, [P(f"eye_{e}_pupil", i)], pupil, aa, sh)
            cv2.fillPoly(img, [P(f"eye_{e}_glint", i)], sclera, aa, sh)
            cv2.polylines(img, [P(f"eye_{e}_upper_lid", i)], False, lash, th_lash, aa, sh)
            cv2.polylines(img, [P(f"eye_{e}_lower_lid", i)], False, skin_dark, 1, aa, sh)
            cv2.fillPoly(img, [P(f"eye_{e}_brow", i)], hair_dark, aa, sh)
        # nose and folds
        cv2.polylines(img, [P("nose_bridge", i)], False, skin_line, th1, aa, sh)
        cv2.fillPoly(img, [P("nose_tip_hi", i)], skin_light, aa, sh)
        for e in "lr":
            cv2.polylines(img, [P(f"nose_ala_{e}", i)], False, skin_shadow, th1, aa, sh)
            cv2.fillPoly(img, [P(f"nose_nostril_{e}", i)], _shade(skin, 0.45), aa, sh)
            cv2.polylines(img, [P(f"fold_{e}", i)], False, skin_line, th1, aa, sh)
        # mouth: lips, then the opening (dark), tongue, teeth
        ou, ol = P("lip_outer_upper", i), P("lip_outer_lower", i)
        iu, il = P("lip_inner_upper", i), P("lip_inner_lower", i)
        cv2.polylines(img, [P("lip_chin_line", i)], False, skin_line, th1, aa, sh)
        cv2.fillPoly(img, [np.concatenate([ou, iu[::-1]])], lip_up, aa, sh)
        cv2.fillPoly(img, [np.concatenate([ol, il[::-1]])], lip_lo, aa, sh)
        cv2.fillPoly(img, [np.concatenate([P("lip_hi_top", i), P("lip_hi_bot", i)[::-1]])], lip_hi, aa, sh)
        cv2.fillPoly(img, [np.concatenate([iu, il[::-1]])], mouth, aa, sh)
        if traj[i, OPEN] > 0.12:
            cv2.fillPoly(img, [np.concatenate([P("lip_tongue", i)[2:-2], il[-3:1:-1]])], tongue, aa, sh)
        if traj[i, OPEN] + traj[i, RAISE] > 0.04:
            cv2.fillPoly(img, [np.concatenate([iu[2:-2], P("lip_teeth_upper", i)[-3:1:-1]])], teeth, aa, sh)
            cv2.fillPoly(img, [np.concatenate([il[4:-4], P("lip_teeth_lower", i)[-5:3:-1]])], teeth, aa, sh)
        # camera: lighting drift and sensor noise
        cv2.transform(img, light[i], dst=img)
        oy, ox = noise_off[i]
        cv2.add(img, noise_pos[oy : oy + h, ox : ox + w], dst=img)
        cv2.subtract(img, noise_neg[oy : oy + h, ox : ox + w], dst=img)
    return frames, landmarks


def draw_landmarks(frame: np.ndarray, landmarks: Mapping[str, np.ndarray], i: int) -> np.ndarray:
    """A copy of frame [H, W, 3] uint8 with frame ``i`` of the landmarks drawn on it (for checks)."""
    img = np.ascontiguousarray(frame).copy()

    def dot(p: np.ndarray, col: tuple[int, int, int]) -> None:
        cv2.circle(img, (int(round(p[0] * _ONE)), int(round(p[1] * _ONE))), _ONE, col, -1, cv2.LINE_AA, _SHIFT)

    for j, p in enumerate(landmarks["lips"][i]):
        dot(p, (0, 255, 0) if j < 20 else (0, 255, 255))
    for p in landmarks["eyes"][i]:
        dot(p, (255, 0, 255))
    dot(landmarks["nose"][i], (255, 255, 0))
    x0, y0, x1, y1 = (int(round(v)) for v in landmarks["face_box"][i])
    cv2.rectangle(img, (x0, y0), (x1, y1), (255, 0, 0), 1)
    return img


# ---------------------------------------------------------------------------------------------
# Landmark files
# ---------------------------------------------------------------------------------------------
