"""The whole video front end on one file: landmarks -> gaps filled -> mouth crops -> lip features -> sync check."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avse.errors import ConfigError, MediaError, OutputPathError, about_file
from avse.utils.fs import atomic_path, ensure_dir, write_json
from avse.video.sync import SyncEstimate, estimate_offset


@dataclass
class FrontEndResult:
    """What the front end makes of one video (N frames on the 25 fps grid)."""

    landmarks: dict[str, np.ndarray]  # the landmark schema + flags [N] (+ mesh [N, 478, 2] when detected)
    crops: np.ndarray | None  # uint8 [N, 96, 96] grayscale mouth crops (None unless asked for)
    features: np.ndarray  # float32 [N, D] the visual stream (lipfeat.visual_stream: lip features, frames without a face zeroed)
    audio: np.ndarray | None  # float32 [T] 16 kHz on the video's timeline, None without audio
    sync: tuple[float, float, bool]  # (offset ms, positive = audio late; confidence; reliable); NaN offset if unknown
    report: dict[str, Any] = field(default_factory=dict)


def process(
    video: str | Path,
    audio: np.ndarray | None = None,
    landmarks: dict[str, np.ndarray] | None = None,
    choose: int | tuple[float, float, float, float] | None = None,
    smooth_window: int | None = None,
    crops: bool = False,
) -> FrontEndResult:
    """Run the front end on ``video``.

    ``audio`` float32 [T] at 16 kHz defaults to the video's own track, placed on
    the video's timeline. ``landmarks`` (e.g. a synthetic corpus's ground
    truth) skip detection; otherwise faces are detected, tracked and the talker
    (or ``choose``) is taken. With ``crops`` the mouth crops are cut in a second
    streaming pass over the video (memory stays bounded); without, that pass
    is skipped and ``crops`` is None. Raises NoFaceError, MediaError.
    """
    from avse.video.io import iter_grid_frames
    from avse.video.lipfeat import visual_stream
    from avse.video.roi import mouth_crops
    from avse.video.shift import video_audio

    video = Path(video)
    if audio is None:
        audio = video_audio(video)
    t0 = time.perf_counter()
    if landmarks is None:
        from avse.video.track import extract_landmarks

        kwargs: dict[str, Any] = {} if smooth_window is None else {"smooth_window": smooth_window}
        with about_file(video):  # e.g. a face index out of range
            lm, report = extract_landmarks(video, audio=audio, choose=choose, **kwargs)
        report = dict(report, landmarks="detected")
    else:
        lm = dict(landmarks)
        lm.setdefault("flags", np.zeros(len(lm["lips"]), np.uint8))
        report = {"landmarks": "given", "frames": len(lm["lips"])}
    t1 = time.perf_counter()
    n = len(lm["lips"])
    mouths = None
    if crops:
        try:
            mouths = mouth_crops(iter_grid_frames(video, max_frames=n), lm)  # [N, 96, 96]
        except ConfigError as err:  # e.g. fewer video frames than landmark frames
            raise MediaError(video, str(err)) from None
    feats, _ = visual_stream(lm)  # [N, D]
    t2 = time.perf_counter()
    sync = (float("nan"), 0.0, False)
    if audio is not None:
        try:
            est = estimate_offset(lm["lips"], audio, flags=lm.get("flags"))
            sync = (float(est.offset_ms), float(est.confidence), bool(est.reliable))
        except ConfigError as err:  # too short to tell
            report["av_note"] = str(err)
    report["seconds_landmarks"] = round(t1 - t0, 3)
    report["seconds_crops_features"] = round(t2 - t1, 3)
    report["frames_per_second"] = round(n / max(t2 - t0, 1e-9), 1)
    return FrontEndResult(lm, mouths, feats, audio, sync, report)


def run_frontend(
    video: str | Path,
    out_dir: str | Path,
    choose: int | tuple[float, float, float, float] | None = None,
    smooth_window: int | None = None,
) -> dict[str, Any]:
    """Process ``video`` and write what a person and a training script need into ``out_dir``.

    Writes ``landmarks.npz`` (the landmark schema plus flags [N] and mesh
    [N, 478, 2]), ``crops.npz`` (crops uint8 [N, 96, 96], features float32
    [N, D]), ``crops.png`` (a contact sheet of the mouth crops) and
    ``report.json`` (written last); returns the report (frames, detections,
    interpolated frames, tracks, chosen face, A/V offset, speed). ``choose``
    picks the face: an index (left to right) or a box (x0, y0, x1, y1); None
    lets the front end take the talker. Nothing is written when it fails.
    """
    from avse.plots import contact_sheet
    from avse.video.landmarks import write_landmarks

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(f"{out_dir}: output folder is a file")
    res = process(video, choose=choose, smooth_window=smooth_window, crops=True)
    assert res.crops is not None
    ensure_dir(out_dir)
    write_landmarks(out_dir / "landmarks.npz", res.landmarks)
    with atomic_path(out_dir / "crops.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, crops=res.crops, features=res.features)
    n = len(res.crops)
    contact_sheet(out_dir / "crops.png", res.crops, every=max(1, n // 40))
    report = dict(res.report)
    if res.audio is not None and not np.isnan(res.sync[0]):
        report["av_offset_ms"] = round(res.sync[0], 1)
        report["av_confidence"] = round(res.sync[1], 3)
        report["av_reliable"] = res.sync[2]
    report["outputs"] = {k: str(out_dir / f) for k, f in (("landmarks", "landmarks.npz"), ("crops", "crops.npz"), ("contact_sheet", "crops.png"))}
    write_json(out_dir / "report.json", report)
    return report


def sync_video(
    video_path: str | Path,
    landmarks: Mapping[str, Any] | str | Path | None = None,
    max_offset_ms: float = 500.0,
    method: str = "lips",
) -> SyncEstimate:
    """Estimate the audio/video offset of a talking-face video file (positive = the audio lags).

    ``landmarks``: a landmark dict on the 25 fps grid (lips [N, 40, 2], optional flags [N], as
    ``avse.video.track.extract_landmarks`` returns), a landmark npz path (e.g. a corpus's
    targets_landmarks/ID.npz), or None to run the front end (``extract_landmarks``) on the video.
    The audio track is decoded at 16 kHz mono and placed on the video's timeline (the
    container's start times are honoured, see ``avse.video.shift.timeline_audio``).
    ``method`` "lips": lip motion against the speech envelope (``estimate_offset``, 10 ms steps);
    "expert": the lip-sync expert on aligned face crops (``avse.talking.expert.estimate_offset_expert``,
    40 ms steps; the landmarks then need eyes and nose too; confidence = LSE-C, and LSE-D =
    -max(corr_curve)).
    Raises MediaError for unreadable files or a file without audio, NoFaceError when no face.
    """
    if method not in ("lips", "expert"):
        raise ConfigError(f"sync method must be 'lips' or 'expert', got {method!r}")
    from avse.video.landmarks import read_landmarks
    from avse.video.shift import timeline_audio

    path = Path(video_path)
    audio = timeline_audio(path)  # [T]
    if landmarks is None:
        from avse.video.track import extract_landmarks

        landmarks, _ = extract_landmarks(path, audio=audio)
    elif isinstance(landmarks, (str, Path)):
        landmarks = read_landmarks(landmarks)
    if "lips" not in landmarks:
        raise ConfigError("landmarks must hold 'lips' [N, 40, 2]")
    if method == "expert":
        from avse.talking.expert import estimate_offset_expert
        from avse.video.io import iter_grid_frames
        from avse.video.roi import face_crops, face_matrices

        n = len(landmarks["lips"])
        with about_file(path):  # e.g. landmarks without eyes, too few frames
            faces = face_crops(iter_grid_frames(path, max_frames=n), face_matrices(landmarks))  # [N, 96, 96, 3]
            return estimate_offset_expert(faces, audio, max_offset=max(1, int(max_offset_ms // 40)))
    with about_file(path):  # e.g. a clip too short to tell
        return estimate_offset(landmarks["lips"], audio, max_offset_ms=max_offset_ms, flags=landmarks.get("flags"))
