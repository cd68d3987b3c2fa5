"""Faces in frames: MediaPipe face-mesh landmarks, with a re-acquisition path for small faces the mesh misses."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from avse.errors import ConfigError
from avse.video.landmarks import EYE_INDEX, LIP_INDEX, NOSE_INDEX

#: points of MediaPipe's face mesh with refine_landmarks=True (468 face + 10 iris)
MESH_POINTS = 478

#: a detection found by the full-frame face mesh
SOURCE_MESH = 0
#: a detection found by the face mesh run on an enlarged crop (a small face re-acquired or followed)
SOURCE_CROP = 1


@dataclass
class Detection:
    """One face in one frame, in pixels of the frame.

    box     float32 [4] x0, y0, x1, y1: the extent of the mesh
    mesh    float32 [478, 2] x, y of every face-mesh point (MediaPipe order)
    score   confidence in [0, 1]: 1.0 for mesh hits (the legacy face mesh only
            returns faces above its detection/tracking thresholds and exposes
            no score), the face detector's score for faces re-acquired by it
    source  SOURCE_MESH (full-frame mesh) or SOURCE_CROP (mesh on a crop)
    """

    box: np.ndarray
    mesh: np.ndarray
    score: float = 1.0
    source: int = SOURCE_MESH


def mesh_box(mesh: np.ndarray) -> np.ndarray:
    """Extent of points [..., P, 2] -> boxes [..., 4] float32 (x0, y0, x1, y1); NaN rows stay NaN."""
    mesh = np.asarray(mesh, dtype=np.float32)
    lo = mesh.min(axis=-2)  # [..., 2]; min/max propagate NaN, as wanted for missing frames
    hi = mesh.max(axis=-2)
    return np.concatenate([lo, hi], axis=-1).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a [..., 4] and b [..., 4] (x0, y0, x1, y1), broadcast -> [...]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def to_landmark_dict(meshes: np.ndarray) -> dict[str, np.ndarray]:
    """Face meshes [N, 478, 2] (NaN rows where no face) -> the landmark schema dict.

    lips [N, 40, 2] (LIP_INDEX order), eyes [N, 4, 2] (EYE_INDEX), nose [N, 2]
    (NOSE_INDEX), face_box [N, 4] (the mesh extent), all float32 pixels, and
    lip_index [40] int32. NaN rows give NaN entries (``track.fill_gaps`` fills them).
    """
    meshes = np.asarray(meshes, dtype=np.float32)
    if meshes.ndim != 3 or meshes.shape[1:] != (MESH_POINTS, 2):
        raise ConfigError(f"meshes must be [N, {MESH_POINTS}, 2], got {meshes.shape}")
    return {
        "lips": meshes[:, LIP_INDEX].copy(),  # [N, 40, 2]
        "lip_index": LIP_INDEX.copy(),
        "eyes": meshes[:, EYE_INDEX].copy(),  # [N, 4, 2]
        "nose": meshes[:, NOSE_INDEX].copy(),  # [N, 2]
        "face_box": mesh_box(meshes),  # [N, 4]
    }


def _mediapipe_solutions():
    """The legacy MediaPipe solutions module; ConfigError with the install line when it is missing."""
    try:
        from mediapipe.python import solutions
    except ImportError as err:
        raise ConfigError(
            "face landmarks need MediaPipe's face mesh, which is not installed "
            f"({err}); install it with: pip install --no-deps mediapipe==0.10.21"
        ) from None
    return solutions


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes to file descriptor 2 for the duration (Python's stderr is flushed first).

    MediaPipe's C++ graphs log a handful of harmless warnings when they are
    built and first run; without this every avse command would print them,
    even before a one-line error. Only graph start-up is wrapped, never the
    per-frame work, so real errors later on still show.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _Quiet:
    """Wraps a MediaPipe solution so that its construction and first ``process`` call run quietly."""

    def __init__(self, make):
        with quiet_native_stderr():
            self._inner = make()
        self._warm = False

    def process(self, image: np.ndarray):
        if self._warm:
            return self._inner.process(image)
        with quiet_native_stderr():
            result = self._inner.process(image)
        self._warm = True
        return result

    def reset(self) -> None:
        self._inner.reset()

    def close(self) -> None:
        self._inner.close()


def mediapipe_available() -> bool:
    """Whether MediaPipe's legacy face mesh can be imported here."""
    try:
        _mediapipe_solutions()
    except ConfigError:
        return False
    return True


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ConfigError(f"frame must be uint8 [H, W, 3] RGB, got {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame)


class HaarDetector:
    """OpenCV's Haar-cascade frontal-face detector: frame -> face boxes (no landmarks).

    The frame is turned to grayscale, equalised and scaled down so that its
    longer side is at most ``max_side`` pixels (speed), then searched with
    ``detectMultiScale``; faces smaller than about ``min_size * longer side /
    max_side`` pixels are not found. Boxes come back in frame pixels.
    """

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_alt2.xml",
        max_side: int = 960,
        scale_factor: float = 1.1,
        min_neighbors: int = 4,
        min_size: int = 24,
    ):
        data = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if data is None:
            raise ConfigError("this OpenCV build ships no Haar cascades (cv2.data.haarcascades); use opencv<5")
        self._cascade = cv2.CascadeClassifier(data + cascade)
        if self._cascade.empty():
            raise ConfigError(f"cannot load the Haar cascade {data + cascade}")
        self.max_side = int(max_side)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """frame uint8 [H, W, 3] RGB (or [H, W] gray) -> boxes float32 [K, 4] x0, y0, x1, y1, largest first."""
        frame = np.asarray(frame)
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        scale = min(1.0, self.max_side / max(gray.shape[:2]))
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        if len(found) == 0:
            return np.zeros((0, 4), np.float32)
        xywh = np.asarray(found, dtype=np.float32) / scale  # [K, 4]
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return boxes[np.argsort(-xywh[:, 2] * xywh[:, 3], kind="stable")]

    def close(self) -> None:
        """Nothing to release (kept for symmetry with the other detectors)."""


class FullRangeDetector:
    """MediaPipe's full-range face detector (model_selection=1, faces up to ~5 m): frame -> boxes and scores.

    The face mesh's own detector is the short-range model, which misses faces
    smaller than about a tenth of the frame; this one finds them (a 75 px face
    in 1280x720 on about half of the frames at ``min_score`` 0.5).
    """

    def __init__(self, min_score: float = 0.5):
        solutions = _mediapipe_solutions()
        self._fd: _Quiet | None = _Quiet(lambda: solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score))

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frame uint8 [H, W, 3] RGB -> (boxes float32 [K, 4] x0, y0, x1, y1 pixels, scores float32 [K])."""
        if self._fd is None:
            raise ConfigError("FullRangeDetector is closed")
        frame = _as_rgb(frame)
        h, w = frame.shape[:2]
        result = self._fd.process(frame)
        boxes, scores = [], []
        for d in result.detections or []:
            rb = d.location_data.relative_bounding_box
            boxes.append([rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h])
            scores.append(d.score[0] if d.score else 1.0)
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32)

    def close(self) -> None:
        """Release the MediaPipe graph."""
        if self._fd is not None:
            self._fd.close()
            self._fd = None


def _covered(box: np.ndarray, detections: list[Detection], min_iou: float = 0.2) -> bool:
    """Whether ``box`` [4] is the face of one of ``detections``: IoU >= min_iou or its centre inside a face box."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for d in detections:
        b = d.box
        if box_iou(box, b) >= min_iou or (b[0] <= cx <= b[2] and b[1] <= cy <= b[3]):
            return True
    return False


@dataclass
class DetectorStats:
    """What a FaceMeshDetector did so far (counts of frames unless said otherwise)."""

    frames: int = 0
    mesh_frames: int = 0  # frames where the full-frame mesh found a face
    crop_frames: int = 0  # frames with at least one face found on a crop (followed or re-acquired)
    scans: int = 0  # searches with the re-acquisition detectors
    reacquired: int = 0  # faces found by a search and confirmed by the mesh on a crop
    haar_scans: int = 0  # searches that also ran the Haar cascade

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for JSON reports)."""
        return asdict(self)


class FaceMeshDetector:
    """MediaPipe face mesh on a stream of frames, with re-acquisition of faces it misses.

    ``detect(frame)`` runs the full-frame face mesh in video mode
    (static_image_mode=False: faces are tracked from frame to frame and the
    face detector only runs while fewer than ``max_num_faces`` are tracked),
    refine_landmarks=True (478 points). The mesh's built-in detector is a
    short-range model: it misses small faces (a 75 px webcam face in a
    1280x720 screencast is never found at full-frame scale). With
    ``reacquire`` (the default), two more steps run:

    - follow: a face that was found on a crop in the previous frame is looked
      for again on a crop around its last box (the crop path below);
    - search: when no face at all was found, and every ``scan_every`` frames
      while fewer than ``max_num_faces`` are found, MediaPipe's full-range
      face detector looks at the whole frame; when it finds nothing new and
      no face is present, the Haar cascade (downscaled grayscale frame) does,
      at most every ``haar_every`` frames (it costs ~60 ms on a 720p frame,
      the full-range detector ~5 ms). Each box not already covered by a face
      is confirmed by the crop path.

    The crop path: a square ``crop_scale`` times the box's larger side,
    centred on it (zero-padded at the frame's edges), resized to
    ``crop_size`` pixels (small faces are upscaled), given to a second face
    mesh in static mode; its landmarks are mapped back to frame pixels. The
    mesh's own detector then filters false boxes from Haar.

    Frames are consumed in order (the state follows the video); call
    ``reset()`` before another video. Use as a context manager or call
    ``close()``. Raises ConfigError when MediaPipe is not installed.
    """

    def __init__(
        self,
        max_num_faces: int = 4,
        refine_landmarks: bool = True,
        static_image_mode: bool = False,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        reacquire: bool = True,
        scan_every: int = 25,
        crop_size: int = 256,
        crop_scale: float = 2.0,
        full_range: bool = True,
        haar: bool = True,
        haar_every: int = 10,
    ):
        if max_num_faces < 1:
            raise ConfigError(f"max_num_faces must be >= 1, got {max_num_faces}")
        if scan_every < 1 or haar_every < 1:
            raise ConfigError(f"scan_every and haar_every must be >= 1, got {scan_every}, {haar_every}")
        if crop_size < 64 or crop_scale < 1.0:
            raise ConfigError(f"crop_size must be >= 64 and crop_scale >= 1, got {crop_size}, {crop_scale}")
        self._solutions = _mediapipe_solutions()
        self.max_num_faces = int(max_num_faces)
        self.refine_landmarks = bool(refine_landmarks)
        self.static_image_mode = bool(static_image_mode)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.reacquire = bool(reacquire)
        self.scan_every = int(scan_every)
        self.crop_size = int(crop_size)
        self.crop_scale = float(crop_scale)
        self.use_full_range = bool(full_range)
        self.use_haar = bool(haar)
        self.haar_every = int(haar_every)
        self._mesh = self._new_mesh(static=self.static_image_mode, max_faces=self.max_num_faces)
        self._crop_mesh = None  # made on first use
        self._full_range: FullRangeDetector | None = None
        self._haar: HaarDetector | None = None
        self._followed: list[np.ndarray] = []  # boxes [4] of faces found on crops in the previous frame
        self._since_scan = self.scan_every  # so that the first frame may search
        self._since_haar = self.haar_every
        self.stats = DetectorStats()

    # -- life cycle -------------------------------------------------------
    def _new_mesh(self, static: bool, max_faces: int):
        return _Quiet(
            lambda: self._solutions.face_mesh.FaceMesh(
                static_image_mode=static,
                max_num_faces=max_faces,
                refine_landmarks=self.refine_landmarks,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence,
            )
        )

    def reset(self) -> None:
        """Forget the tracked faces and the counts (before processing another video)."""
        if self._mesh is not None:
            self._mesh.reset()
        self._followed = []
        self._since_scan = self.scan_every
        self._since_haar = self.haar_every
        self.stats = DetectorStats()

    def close(self) -> None:
        """Release the MediaPipe graphs (idempotent)."""
        for name in ("_mesh", "_crop_mesh", "_full_range", "_haar"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
                setattr(self, name, None)

    def __enter__(self) -> FaceMeshDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- detection --------------------------------------------------------
    def detect(self, frame: np.ndarray) -> list[Detection]:
        """frame uint8 [H, W, 3] RGB (the next frame of the video) -> faces found, a list of Detection."""
        if self._mesh is None:
            raise ConfigError("FaceMeshDetector is closed")
        frame = _as_rgb(frame)
        self.stats.frames += 1
        dets = self._run_mesh(self._mesh, frame)
        if dets:
            self.stats.mesh_frames += 1
        if self.reacquire:
            n_full = len(dets)
            for box in self._followed:  # follow small faces found on crops before
                if len(dets) >= self.max_num_faces:
                    break
                if not _covered(box, dets):
                    found = self._mesh_on_crop(frame, box)
                    if found is not None and not _covered(found.box, dets):
                        dets.append(found)
            self._since_scan += 1
            self._since_haar += 1
            if len(dets) < self.max_num_faces and (not dets or self._since_scan >= self.scan_every):
                self._search(frame, dets)
            if len(dets) > n_full:
                self.stats.crop_frames += 1
            self._followed = [d.box for d in dets if d.source == SOURCE_CROP]
        return dets

    def _run_mesh(self, mesh, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        result = mesh.process(image)
        out = []
        for face in result.multi_face_landmarks or []:
            lm = face.landmark
            pts = np.fromiter((v for p in lm for v in (p.x, p.y)), np.float32, count=2 * len(lm)).reshape(-1, 2)
            pts *= np.array([w, h], np.float32)  # normalised -> pixels, [478, 2]
            if pts.shape[0] != MESH_POINTS:
                pts = _pad_points(pts)
            out.append(Detection(box=mesh_box(pts), mesh=pts, score=1.0, source=SOURCE_MESH))
        return out

    def _search(self, frame: np.ndarray, dets: list[Detection]) -> None:
        """Look for faces the mesh missed and confirm each new box on a crop; appends to ``dets``."""
        self._since_scan = 0
        self.stats.scans += 1
        boxes, scores = self._full_range_boxes(frame) if self.use_full_range else (np.zeros((0, 4)), np.zeros(0))
        new = [(b, s) for b, s in zip(boxes, scores) if not _covered(b, dets)]
        if not new and not dets and self.use_haar and self._since_haar >= self.haar_every:
            self._since_haar = 0
            self.stats.haar_scans += 1
            if self._haar is None:
                self._haar = HaarDetector()
            new = [(b, 1.0) for b in self._haar.detect(frame) if not _covered(b, dets)]
        for box, score in new[: 2 * self.max_num_faces]:
            if len(dets) >= self.max_num_faces:
                break
            found = self._mesh_on_crop(frame, box, score)
            if found is not None and not _covered(found.box, dets):
                dets.append(found)
                self.stats.reacquired += 1

    def _full_range_boxes(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._full_range is None:
            self._full_range = FullRangeDetector()
        return self._full_range.detect(frame)

    def _mesh_on_crop(self, frame: np.ndarray, box: np.ndarray, score: float = 1.0) -> Detection | None:
        """The face mesh (static mode) on a square crop around ``box`` [4] -> a Detection in frame pixels, or None."""
        if self._crop_mesh is None:
            self._crop_mesh = self._new_mesh(static=True, max_faces=1)
        crop, x0, y0, side = square_crop(frame, box, self.crop_scale, self.crop_size)
        found = self._run_mesh(self._crop_mesh, crop)
        if not found:
            return None
        pts = found[0].mesh * (side / self.crop_size) + np.array([x0, y0], np.float32)  # crop -> frame pixels
        return Detection(box=mesh_box(pts), mesh=pts.astype(np.float32), score=float(score), source=SOURCE_CROP)


def square_crop(frame: np.ndarray, box: np.ndarray, scale: float, size: int) -> tuple[np.ndarray, int, int, int]:
    """A square of side ``scale`` x the larger side of ``box`` [4], centred on it, resized to ``size`` pixels.

    frame uint8 [H, W, 3] -> (crop uint8 [size, size, 3], x0, y0, side) with
    integer x0, y0, side: the crop shows frame pixels [y0, y0 + side) x
    [x0, x0 + side), so a point at (u, v) in crop pixels is at
    (x0 + u * side / size, y0 + v * side / size) in the frame. Parts outside
    the frame are black.
    """
    h, w = frame.shape[:2]
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    side = max(int(np.ceil(float(max(box[2] - box[0], box[3] - box[1])) * scale)), 8)
    x0, y0 = int(np.floor(cx - side / 2.0)), int(np.floor(cy - side / 2.0))
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if sx0 == x0 and sy0 == y0 and sx1 == x0 + side and sy1 == y0 + side:
        region = frame[sy0:sy1, sx0:sx1]  # [side, side, 3], a view
    else:
        region = np.zeros((side, side, 3), np.uint8)
        if sx1 > sx0 and sy1 > sy0:
            region[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_LINEAR if side <= size else cv2.INTER_AREA
    crop = cv2.resize(region, (size, size), interpolation=interp)  # [size, size, 3]
    return crop, x0, y0, side


def _pad_points(pts: np.ndarray) -> np.ndarray:
    """468 points (refine_landmarks=False) -> 478, the 10 iris points set to NaN."""
    out = np.full((MESH_POINTS, 2), np.nan, np.float32)
    out[: min(len(pts), MESH_POINTS)] = pts[:MESH_POINTS]
    if len(pts) < MESH_POINTS:
        warnings.warn("face mesh without iris points: refine_landmarks=False gives NaN iris points", stacklevel=3)
    return out
