"""Faces over time: detections -> tracks, the talker's track, gap filling, smoothing, whole-video landmarks."""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from avse import SAMPLES_PER_FRAME, VIDEO_FPS
from avse.errors import ConfigError, NoFaceError
from avse.utils.signal import centred_mean, interpolate_gaps
from avse.video.detect import SOURCE_CROP, Detection, FaceMeshDetector, box_iou, quiet_native_stderr, to_landmark_dict
from avse.video.landmarks import LANDMARK_KEYS, LIP_INDEX, mouth_opening
from avse.video.sync import frame_energy_db, lagged_correlation

#: default smoothing: a Savitzky-Golay filter of order 2 over 5 frames (200 ms at 25 fps). It
#: keeps motion up to about 5 Hz (syllable rate) at >= 0.84 of its amplitude and lip closures of
#: 2 frames mostly intact, while a 3-frame moving average would keep 5 Hz at 0.54; frame-to-frame
#: landmark jitter (white) is reduced to 0.70 of its std. It is symmetric, so it adds no lag, and
#: exact on any motion that is locally a polynomial of order <= 2 (ramps, parabolas).
DEFAULT_SMOOTH_WINDOW = 5
DEFAULT_POLYORDER = 2
#: the arrays of a landmark dict that hold points per frame (gap filling and smoothing touch these)
POINT_KEYS = ("lips", "eyes", "nose", "face_box", "mesh")
#: a track is a candidate talker when detected on at least this fraction of the longest track's frames
MIN_COVERAGE = 0.5
#: the audio picks the talker only when the best ``track_agreement`` reaches this (GRID talkers: 0.2-0.5)
MIN_AGREEMENT = 0.1
#: flags per frame
DETECTED, INTERPOLATED, MISSING = 0, 1, 2


@dataclass
class Track:
    """One face over time (one identity), on the frame grid.

    frames   int64 [K] frame indices where the face was detected, increasing
    boxes    float32 [K, 4] x0, y0, x1, y1 pixels
    meshes   float32 [K, P, 2] landmark points (P = 478 for face-mesh detections)
    scores   float32 [K] detection confidence
    sources  uint8 [K] SOURCE_MESH (full-frame mesh) or SOURCE_CROP (found on a crop)
    """

    id: int
    frames: np.ndarray
    boxes: np.ndarray
    meshes: np.ndarray
    scores: np.ndarray
    sources: np.ndarray

    @property
    def n_frames(self) -> int:
        """Number of frames with a detection."""
        return int(self.frames.shape[0])

    @property
    def mean_area(self) -> float:
        """Mean box area in pixels^2 over the detected frames."""
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return float(np.mean(wh[:, 0] * wh[:, 1]))

    @property
    def mean_x(self) -> float:
        """Mean horizontal box centre in pixels (left-to-right ordering)."""
        return float(np.mean((self.boxes[:, 0] + self.boxes[:, 2]) / 2))

    def dense(self, n: int) -> np.ndarray:
        """Meshes on all ``n`` frames: [n, P, 2] float32, NaN where this face was not detected."""
        out = np.full((n,) + self.meshes.shape[1:], np.nan, np.float32)
        keep = self.frames < n
        out[self.frames[keep]] = self.meshes[keep]
        return out

    def summary(self) -> dict[str, Any]:
        """Plain facts about the track (for JSON reports)."""
        return {
            "id": self.id,
            "frames": self.n_frames,
            "first": int(self.frames[0]),
            "last": int(self.frames[-1]),
            "mean_box": [round(float(v), 1) for v in self.boxes.mean(axis=0)],
            "reacquired_frames": int(np.sum(self.sources == SOURCE_CROP)),
        }


class _Active:
    """A track being built: its detections so far and a constant-velocity motion model."""

    def __init__(self, tid: int, frame: int, det: Detection):
        self.id = tid
        self.frames = [frame]
        self.dets = [det]
        self.velocity = np.zeros(2)  # box-centre pixels per frame

    @property
    def last(self) -> int:
        return self.frames[-1]

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(box [4], mesh [P, 2]) expected at ``frame`` if the face keeps its velocity."""
        d = self.velocity * (frame - self.last)  # [2]
        det = self.dets[-1]
        return det.box + np.concatenate([d, d]), det.mesh + d

    def add(self, frame: int, det: Detection) -> None:
        gap = frame - self.last
        seen = _centre(det.box) - _centre(self.dets[-1].box)
        step = seen / max(gap, 1)
        self.velocity = step if len(self.frames) == 1 else 0.5 * self.velocity + 0.5 * step
        self.frames.append(frame)
        self.dets.append(det)

    def to_track(self) -> Track:
        return Track(
            id=self.id,
            frames=np.asarray(self.frames, np.int64),
            boxes=np.stack([d.box for d in self.dets]).astype(np.float32),
            meshes=np.stack([d.mesh for d in self.dets]).astype(np.float32),
            scores=np.asarray([d.score for d in self.dets], np.float32),
            sources=np.asarray([d.source for d in self.dets], np.uint8),
        )


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0], np.float64)


class Tracker:
    """Links per-frame detections into tracks (one identity each), frame by frame.

    Each live track predicts where its face is now from its last detection
    and a constant-velocity model of its box centre (extrapolated over
    missed frames). A detection may join a track when the mean distance
    between the predicted and detected landmarks, in units of the face size
    (sqrt of the predicted box area), is at most ``max_distance * sqrt(gap)``
    (gap = frames since the track's last detection: the allowance grows with
    the time unseen). The pairing minimises the summed cost ``distance + (1 -
    box IoU)`` over all tracks and detections (Hungarian assignment), so two
    faces that cross keep their identities. Detections left over start new
    tracks (a face entering); a track missed on more than ``max_gap``
    consecutive frames ends (a face leaving; it comes back as a new track).
    """

    def __init__(self, max_gap: int = 12, max_distance: float = 0.5):
        if max_gap < 0:
            raise ConfigError(f"max_gap must be >= 0, got {max_gap}")
        if max_distance <= 0:
            raise ConfigError(f"max_distance must be positive, got {max_distance}")
        self.max_gap = int(max_gap)
        self.max_distance = float(max_distance)
        self._active: list[_Active] = []
        self._done: list[_Active] = []
        self._next_id = 0
        self._last_frame = -1

    def update(self, frame: int, detections: Sequence[Detection]) -> None:
        """Add the detections of frame index ``frame`` (strictly increasing from call to call)."""
        if frame <= self._last_frame:
            raise ConfigError(f"frames must come in increasing order: {frame} after {self._last_frame}")
        self._last_frame = frame
        still: list[_Active] = []
        for t in self._active:  # end the tracks unseen for more than max_gap frames
            (still if frame - t.last - 1 <= self.max_gap else self._done).append(t)
        self._active = still
        dets = list(detections)
        taken = np.zeros(len(dets), bool)
        if self._active and dets:
            cost = np.full((len(self._active), len(dets)), np.inf)
            for i, t in enumerate(self._active):
                box, mesh = t.predict(frame)
                size = np.sqrt(max(float((box[2] - box[0]) * (box[3] - box[1])), 1.0))
                gate = self.max_distance * np.sqrt(frame - t.last)
                for j, d in enumerate(dets):
                    if d.mesh.shape == mesh.shape:
                        dist = float(np.nanmean(np.linalg.norm(d.mesh - mesh, axis=-1))) / size
                    else:  # meshes of different kinds: compare box corners
                        dist = float(np.mean(np.linalg.norm((d.box - box).reshape(2, 2), axis=-1))) / size
                    if dist <= gate:
                        cost[i, j] = dist + 1.0 - float(box_iou(box, d.box))
            for i, j in _assign(cost):
                    self._active[i].add(frame, dets[j])
                    taken[j] = True
        for j, d in enumerate(dets):
            if not taken[j]:
                self._active.append(_Active(self._next_id, frame, d))
                self._next_id += 1

    def finish(self) -> list[Track]:
        """End every track -> all tracks, ordered by id (order of first appearance)."""
        done = sorted(self._done + self._active, key=lambda t: t.id)
        self._done, self._active = [], []
        return [t.to_track() for t in done]


def _assign(cost: np.ndarray, max_tries: int = 40320) -> list[tuple[int, int]]:
    """Pairs (row, col) of cost [R, C] (inf = not allowed) with the most pairs, then the least total cost.

    Exhaustive over the assignments (R and C are the few faces of one frame);
    greedy (cheapest pair first) when there would be more than ``max_tries``.
    """
    r, c = cost.shape
    pairs = [(i, j) for i in range(r) for j in range(c) if np.isfinite(cost[i, j])]
    if not pairs:
        return []
    k = min(r, c)
    if math.perm(max(r, c), k) > max_tries:
        out, rows, cols = [], set(), set()
        for i, j in sorted(pairs, key=lambda p: cost[p]):
            if i not in rows and j not in cols:
                out.append((i, j))
                rows.add(i)
                cols.add(j)
        return out
    big = 1e9  # a missing pair costs more than any real one: first most pairs, then least cost
    padded = np.where(np.isfinite(cost), cost, big)
    best: list[tuple[int, int]] = []  # set by the first permutation: every total is finite
    best_cost = np.inf
    for perm in itertools.permutations(range(max(r, c)), k):
        idx = list(zip(range(k), perm)) if r <= c else [(p, q) for q, p in zip(range(k), perm)]
        total = sum(padded[i, j] for i, j in idx)
        if total < best_cost:
            best, best_cost = idx, total
    return [(i, j) for i, j in best if np.isfinite(cost[i, j])]


def track_detections(detections: Iterable[Sequence[Detection]], **tracker_options) -> list[Track]:
    """Per-frame detections (frame k = the k-th item, a list of Detection) -> tracks (see ``Tracker``)."""
    tracker = Tracker(**tracker_options)
    for k, dets in enumerate(detections):
        tracker.update(k, dets)
    return tracker.finish()


# ---------------------------------------------------------------------------------------------
# choosing the talker
# ---------------------------------------------------------------------------------------------


def track_agreement(track: Track, audio: np.ndarray, max_lag: int = 2, span: int = 2) -> float:
    """How well the track's mouth movements follow the speech in ``audio`` [T] (16 kHz; frame k = samples k * 640 ...).

    Over the track's span (first to last detected frame; missed frames
    linearly interpolated) the change of the mouth opening (``mouth_opening``)
    over ``span`` frames, o[k + span] - o[k], is correlated with the change of
    the per-frame speech energy (``sync.frame_energy_db``) at lags
    -max_lag..max_lag (``sync.lagged_correlation``; the lags absorb a small
    A/V offset); returns the best Pearson r, NaN when the span is too short
    or flat. Changes, not levels: every talking face opens its mouth while
    someone speaks, so the levels of any talker follow the speech/silence
    envelope (on GRID clips side by side with one clip's audio, the level
    correlation picked the right face in 7 of 12 pairs, this score in 11 of 12,
    and still 11 of 12 with the audio shifted by 1 or 2 frames).
    """
    if track.meshes.shape[1] <= int(LIP_INDEX.max()):
        return float("nan")
    opening = mouth_opening(track.meshes[:, LIP_INDEX])  # [K]
    frames = np.arange(track.frames[0], track.frames[-1] + 1)  # [S]
    opening = np.interp(frames, track.frames, opening)  # [S]
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    segment = audio[frames[0] * SAMPLES_PER_FRAME : (frames[-1] + 1) * SAMPLES_PER_FRAME]
    if len(frames) < span + 4 or segment.size == 0:
        return float("nan")
    energy = frame_energy_db(segment, len(frames))  # [S]
    corr = lagged_correlation(opening[span:] - opening[:-span], energy[span:] - energy[:-span], max_lag)
    return float(np.nanmax(corr)) if np.any(np.isfinite(corr)) else float("nan")


def _is_index(choose: Any) -> TypeGuard[int | np.integer]:
    return isinstance(choose, (int, np.integer)) and not isinstance(choose, bool)


def choose_track(
    tracks: Sequence[Track],
    audio: np.ndarray | None = None,
    choose: int | Sequence[float] | None = None,
    min_coverage: float = MIN_COVERAGE,
    min_agreement: float = MIN_AGREEMENT,
) -> tuple[Track, dict[str, Any]]:
    """``select_track`` with its reasons: -> (track, info) where info holds "rule" and per-track "agreement"."""
    tracks = list(tracks)
    if not tracks:
        raise NoFaceError("No face was found in any frame of the video")
    longest = max(t.n_frames for t in tracks)
    candidates = [t for t in tracks if t.n_frames >= min_coverage * longest]  # never empty
    info: dict[str, Any] = {"candidates": [t.id for t in candidates]}
    if choose is not None and _is_index(choose):
        order = sorted(candidates, key=lambda t: t.mean_x)
        if not -len(order) <= int(choose) < len(order):
            raise ConfigError(f"face index {choose} is out of range: {len(order)} face(s) were tracked (0 = leftmost)")
        info["rule"] = "index"
        return order[int(choose)], info
    if choose is not None:
        box = np.asarray(choose, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise ConfigError(f"a face box must be x0, y0, x1, y1 with x1 > x0 and y1 > y0, got {choose}")
        overlap = [float(np.sum(box_iou(t.boxes, box))) for t in tracks]  # IoU summed over frames
        if max(overlap) <= 0:
            raise NoFaceError(f"no tracked face overlaps the box {tuple(float(v) for v in box)}")
        info["rule"] = "box"
        return tracks[int(np.argmax(overlap))], info
    largest = max(candidates, key=lambda t: t.mean_area)
    if len(candidates) > 1 and audio is not None:
        scores = {t.id: track_agreement(t, audio) for t in candidates}
        info["agreement"] = {k: (round(v, 3) if np.isfinite(v) else None) for k, v in scores.items()}
        best = max(candidates, key=lambda t: scores[t.id] if np.isfinite(scores[t.id]) else -np.inf)
        if np.isfinite(scores[best.id]) and scores[best.id] >= min_agreement:
            info["rule"] = "audio"
            return best, info
    info["rule"] = "only" if len(candidates) == 1 else "largest"
    return largest, info


def select_track(
    tracks: Sequence[Track],
    audio: np.ndarray | None = None,
    choose: int | Sequence[float] | None = None,
    min_coverage: float = MIN_COVERAGE,
    min_agreement: float = MIN_AGREEMENT,
) -> Track:
    """Pick the talker's track.

    Only tracks detected on at least ``min_coverage`` times as many frames as
    the longest one are candidates (brief false faces never win). ``choose``:
    - None: with ``audio`` float [T] at 16 kHz (frame k = samples k*640 ...)
      and more than one candidate, the candidate whose mouth movements agree
      best with the changes of speech energy (``track_agreement``), if that
      agreement reaches ``min_agreement``; otherwise the candidate with the
      largest mean box area;
    - an int: the candidates ordered left to right by mean box centre x,
      0 = leftmost (negative counts from the right); ConfigError when out of range;
    - a box (x0, y0, x1, y1) pixels: the track (any) whose box IoU with it,
      summed over its frames, is largest; NoFaceError when none overlaps.
    Raises NoFaceError when there is no track at all.
    """
    return choose_track(tracks, audio, choose, min_coverage, min_agreement)[0]


# ---------------------------------------------------------------------------------------------
# gap filling and smoothing
# ---------------------------------------------------------------------------------------------


def _frame_count(landmarks: Mapping[str, Any]) -> int:
    lips = np.asarray(landmarks["lips"])
    if lips.ndim != 3 or lips.shape[1:] != (40, 2):
        raise ConfigError(f"landmarks 'lips' must be [N, 40, 2], got {lips.shape}")
    return int(lips.shape[0])


def _point_keys(landmarks: Mapping[str, Any], n: int) -> list[str]:
    keys = [k for k in POINT_KEYS if k in landmarks]
    for k in keys:
        if np.shape(landmarks[k])[:1] != (n,):
            raise ConfigError(f"landmarks {k!r} has {np.shape(landmarks[k])[:1]} frames, 'lips' has {n}")
    return keys


def fill_gaps(landmarks: Mapping[str, Any]) -> dict[str, Any]:
    """Fill frames with no face by interpolation -> a new dict, every point array finite, plus "flags".

    A frame is missing when any of lips [N, 40, 2], eyes [N, 4, 2], nose [N, 2]
    or face_box [N, 4] holds a NaN there. Every point array (those and mesh
    [N, P, 2] when present) gets the missing frames linearly interpolated
    between the nearest detected frames before and after (exact on linear
    motion), and held at the nearest detected frame before the first and after
    the last detection. flags [N] uint8: 0 detected, 1 interpolated or held.
    The value 2 (missing) would mark frames when no frame has a face; that
    case raises NoFaceError instead, since there is nothing to fill from.
    Other keys are copied unchanged.
    """
    n = _frame_count(landmarks)
    keys = _point_keys(landmarks, n)
    missing = np.zeros(n, bool)
    for k in LANDMARK_KEYS:
        if k in POINT_KEYS and k in landmarks:
            arr = np.asarray(landmarks[k], dtype=np.float64).reshape(n, -1)
            missing |= ~np.all(np.isfinite(arr), axis=1)
    if missing.all():
        raise NoFaceError("No face was found in any frame of the video")
    out = dict(landmarks)
    for k in keys:
        out[k] = interpolate_gaps(np.asarray(landmarks[k], dtype=np.float32), missing)  # [N, ...]
    out["flags"] = np.where(missing, INTERPOLATED, DETECTED).astype(np.uint8)
    return out


def smooth(
    landmarks: Mapping[str, Any], window: int = DEFAULT_SMOOTH_WINDOW, polyorder: int = DEFAULT_POLYORDER
) -> dict[str, Any]:
    """Smooth every point array over time with a centred filter -> a new dict (no lag).

    ``window`` odd >= 1 frames (1 = no smoothing). ``polyorder`` >= 1: a
    Savitzky-Golay filter (least-squares polynomial of that order over the
    window; at the ends the polynomial fitted to the first/last ``window``
    frames), exact on polynomial motion of that order; ``polyorder`` 0: a
    centred moving average whose window shrinks symmetrically at the ends.
    Both are symmetric, so a ramp comes out unchanged (no lag). Clips shorter
    than the window use the longest odd window that fits. Apply after
    ``fill_gaps`` (a NaN spreads over its window). Keys other than
    lips/eyes/nose/face_box/mesh are copied unchanged.
    """
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"smoothing window must be an odd number >= 1, got {window}")
    if polyorder < 0:
        raise ConfigError(f"polyorder must be >= 0, got {polyorder}")
    n = _frame_count(landmarks)
    keys = _point_keys(landmarks, n)
    out = dict(landmarks)
    win = min(int(window), n if n % 2 else n - 1)
    for k in keys:
        x = np.array(landmarks[k], dtype=np.float32)  # a copy, [N, ...]
        if win > 1:
            flat = x.reshape(n, -1)  # [N, D], a view
            for j in range(0, flat.shape[1], 256):  # float64 maths on column blocks: bounded memory
                block = flat[:, j : j + 256].astype(np.float64)
                if polyorder == 0:
                    block = centred_mean(block, win // 2)
                else:
                    block = _savgol(block, win, min(int(polyorder), win - 1))
                flat[:, j : j + 256] = block
        out[k] = x
    return out


def _savgol(x: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay smoothing of x [N, D] along N (N >= window), ends from the fit to the first/last window.

    The same numbers as scipy.signal.savgol_filter(x, window, order, axis=0,
    mode="interp"), without importing scipy.signal (a second at start-up).
    """
    n, h = x.shape[0], window // 2
    pos = np.arange(window, dtype=np.float64) - h  # [W] positions relative to the window centre
    vander = pos[:, None] ** np.arange(order + 1)[None, :]  # [W, order + 1]
    fit = np.linalg.pinv(vander)  # [order + 1, W]: window samples -> polynomial coefficients
    centre = fit[0]  # [W] value of the fitted polynomial at the centre
    y = np.zeros_like(x)
    for i in range(window):  # interior: a correlation with the centre weights
        y[h : n - h] += centre[i] * x[i : n - window + 1 + i]
    ends = vander[:h] @ fit  # [h, W]: values at the first h positions from the first window's fit
    y[:h] = ends @ x[:window]
    y[n - h :] = vander[window - h :] @ fit @ x[n - window :]
    return y


# ---------------------------------------------------------------------------------------------
# one video -> landmarks
# ---------------------------------------------------------------------------------------------


def _source_fps(path: Path) -> float | None:
    """The nominal frame rate of the video stream (None when unknown)."""
    try:
        import av

        with av.open(str(path)) as c:
            s = c.streams.video[0]
            rate = s.average_rate or s.guessed_rate or s.base_rate
            return round(float(rate), 3) if rate else None
    except Exception:  # only a report field: the decoding proper raises the typed errors
        return None


def extract_landmarks(
    video_path: str | Path,
    audio: np.ndarray | None = None,
    choose: int | Sequence[float] | None = None,
    smooth_window: int = DEFAULT_SMOOTH_WINDOW,
    max_faces: int = 4,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Landmarks of the talker in a video, one set per 25 fps frame -> (landmarks, report).

    The video is streamed (``io.iter_grid_frames``: frames upright after the
    rotation metadata, resampled onto t = k / 25 s by taking the last source
    frame shown at that time; never more than two frames in memory); each
    distinct frame goes through ``FaceMeshDetector`` (``max_faces`` faces),
    the detections are linked into tracks (``Tracker``), and the talker's
    track is picked by ``select_track`` with ``choose`` (None, an index left
    to right, or a box x0, y0, x1, y1). For the talker choice ``audio``
    (float32 [T] mono 16 kHz, frame k = samples k*640 ...) is used, or the
    video's own audio track when ``audio`` is None; it is read only when
    there are several candidate faces. Missed frames are filled
    (``fill_gaps``), then every point array is smoothed (``smooth``,
    ``smooth_window`` odd, 1 = none).

    landmarks: the schema (lips [N, 40, 2], lip_index [40], eyes [N, 4, 2],
    nose [N, 2], face_box [N, 4], float32 pixels) plus flags [N] uint8
    (0 detected, 1 interpolated) and mesh [N, 478, 2] float32.
    report: frames, detected, interpolated, n_tracks, n_faces (the candidates: tracks on enough frames to be
    chosen), track (the chosen id),
    choice (index / box / audio / largest / only), agreement (per candidate,
    when the audio was used), tracks (per-track summaries), fps (25),
    source_fps, reacquired (frames of the chosen track found on a crop),
    detector (counts), seconds.
    Raises MediaError for unreadable videos, NoFaceError when no frame has a face.
    """
    from avse.video.io import iter_grid_frames

    path = Path(video_path)
    if smooth_window < 1 or smooth_window % 2 == 0:
        raise ConfigError(f"smoothing window must be an odd number >= 1, got {smooth_window}")
    if audio is not None:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ConfigError(f"audio must be mono float [T], got shape {audio.shape}")
    frames = iter_grid_frames(path)
    t0 = time.perf_counter()
    tracker = Tracker()
    n = 0
    # MediaPipe's graphs log start-up warnings from their own threads, some after the first
    # frame is back: without a progress bar to keep visible, native stderr is kept quiet
    # for the whole pass (failures still raise Python exceptions).
    quiet = contextlib.nullcontext() if progress else quiet_native_stderr()
    with quiet, FaceMeshDetector(max_num_faces=max_faces) as detector:
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, desc=path.name, unit="frame")
        previous, dets = None, []
        for frame in frames:
            if frame is not previous:  # a source frame shown on several grid frames is detected once
                dets = detector.detect(frame)
                previous = frame
            tracker.update(n, dets)
            n += 1
        previous = None  # drop the last frame before the tracks are built
        stats = detector.stats.as_dict()
    tracks = tracker.finish()
    if not tracks:
        raise NoFaceError(f"{path}: no face was found in any of its {n} frames")
    longest = max(t.n_frames for t in tracks)
    several = sum(t.n_frames >= MIN_COVERAGE * longest for t in tracks) > 1
    if audio is None and choose is None and several:
        from avse.video.shift import video_audio

        audio = video_audio(path)
    chosen, info = choose_track(tracks, audio, choose)
    mesh = chosen.dense(n)  # [N, 478, 2], NaN where missed
    lm: dict[str, Any] = to_landmark_dict(mesh)
    lm["mesh"] = mesh
    lm = smooth(fill_gaps(lm), smooth_window)
    flags = lm["flags"]
    report = {
        "frames": n,
        "detected": int(np.sum(flags == DETECTED)),
        "interpolated": int(np.sum(flags == INTERPOLATED)),
        "n_tracks": len(tracks),
        "n_faces": len(info["candidates"]),
        "track": chosen.id,
        "choice": info["rule"],
        **({"agreement": info["agreement"]} if "agreement" in info else {}),
        "tracks": [t.summary() for t in tracks],
        "fps": VIDEO_FPS,
        "source_fps": _source_fps(path),
        "reacquired": int(np.sum(chosen.sources == SOURCE_CROP)),
        "smooth_window": int(smooth_window),
        "detector": stats,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return lm, report
