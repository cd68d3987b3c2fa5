"""Every face of a video at once: detect and track all faces, then lip features for each candidate talker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avse.errors import NoFaceError
from avse.video.detect import FaceMeshDetector, quiet_native_stderr, to_landmark_dict
from avse.video.io import iter_grid_frames
from avse.video.lipfeat import visual_stream
from avse.video.track import MIN_COVERAGE, Tracker, fill_gaps, smooth


@dataclass
class FaceFeatures:
    """Lip features of one tracked face: ``features`` float32 [N, 82] on the 25 fps grid, N the video's frames.

    ``index`` orders the faces left to right (0 = leftmost, as ``--face N``);
    ``coverage`` is the share of frames where the face was detected (the rest
    interpolated or held); ``box`` its mean x0, y0, x1, y1 in pixels; ``landmarks`` the track's
    gap-filled, smoothed landmark dict (lips [N, 40, 2], eyes [N, 4, 2], nose [N, 2], face_box
    [N, 4]; pixels), from which ``avse.video.roi.face_matrices`` places its aligned crops.
    """

    index: int
    features: np.ndarray
    coverage: float
    box: tuple[float, float, float, float]
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)


def face_features(video: str | Path, max_faces: int = 4) -> list[FaceFeatures]:
    """Detect and track every face of ``video`` once -> lip features [N, 82] of each candidate face, left to right.

    Candidates are the tracks detected on at least ``avse.video.track.MIN_COVERAGE``
    times as many frames as the longest one (as for choosing the talker).
    Each track's landmarks are gap-filled and smoothed like the front end's
    (``fill_gaps``, ``smooth``) before ``visual_stream``. Raises NoFaceError
    when no frame has a face, MediaError for unreadable videos.
    """
    path = Path(video)
    tracker = Tracker()
    n = 0
    with quiet_native_stderr(), FaceMeshDetector(max_num_faces=max_faces) as detector:
        previous, dets = None, []
        for frame in iter_grid_frames(path):
            if frame is not previous:  # a source frame shown on several grid frames is detected once
                dets = detector.detect(frame)
                previous = frame
            tracker.update(n, dets)
            n += 1
    tracks = tracker.finish()
    if not tracks:
        raise NoFaceError(f"{path}: no face was found in any of its {n} frames")
    longest = max(tr.n_frames for tr in tracks)
    candidates = sorted((tr for tr in tracks if tr.n_frames >= MIN_COVERAGE * longest), key=lambda tr: tr.mean_x)
    faces = []
    for i, tr in enumerate(candidates):
        mesh = tr.dense(n)  # [N, 478, 2], NaN where missed
        lm: dict[str, Any] = to_landmark_dict(mesh)
        lm = smooth(fill_gaps(lm))
        x0, y0, x1, y1 = (round(float(v), 1) for v in tr.boxes.mean(axis=0))  # boxes [K, 4]
        faces.append(FaceFeatures(i, visual_stream(lm)[0], tr.n_frames / max(n, 1), (x0, y0, x1, y1), lm))
    return faces


__all__ = ["FaceFeatures", "face_features"]
