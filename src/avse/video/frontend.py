"""The whole video front end on one file: landmarks -> gaps filled -> mouth crops -> lip features -> sync check."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from avse.utils.fs import atomic_path, ensure_dir, write_json


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
    ``report.json``; returns the report (frames, detections, interpolated
    frames, tracks, chosen face, A/V offset, speed). ``choose`` picks the face:
    an index (left to right) or a box (x0, y0, x1, y1); None lets the front end
    take the talker.
    """
    from avse.audio.io import load_audio
    from avse.errors import ConfigError, EmptyAudioError, MediaError
    from avse.evaluation.plots import contact_sheet
    from avse.video.io import iter_grid_frames
    from avse.video.landmarks import write_landmarks
    from avse.video.lipfeat import lip_features
    from avse.video.roi import mouth_crops
    from avse.video.sync import estimate_offset
    from avse.video.track import extract_landmarks

    video, out_dir = Path(video), Path(out_dir)
    try:
        audio, _ = load_audio(video)
    except (EmptyAudioError, MediaError) as err:
        if "no audio track" not in str(err) and not isinstance(err, EmptyAudioError):
            raise
        audio = None
    ensure_dir(out_dir)
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {} if smooth_window is None else {"smooth_window": smooth_window}
    lm, report = extract_landmarks(video, audio=audio, choose=choose, **kwargs)
    t1 = time.perf_counter()
    n = len(lm["lips"])
    crops = mouth_crops(iter_grid_frames(video, max_frames=n), lm)  # [N, 96, 96]
    feats = lip_features(lm)  # [N, D]
    t2 = time.perf_counter()
    write_landmarks(out_dir / "landmarks.npz", lm)
    with atomic_path(out_dir / "crops.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, crops=crops, features=feats.astype(np.float32))
    contact_sheet(out_dir / "crops.png", crops, every=max(1, n // 40))
    report = dict(report)
    if audio is not None:
        try:
            est = estimate_offset(lm["lips"], audio, flags=lm.get("flags"))
            report["av_offset_ms"] = round(float(est.offset_ms), 1)
            report["av_confidence"] = round(float(est.confidence), 3)
            report["av_reliable"] = bool(est.reliable)
        except ConfigError as err:  # too short to tell
            report["av_offset_ms"], report["av_note"] = None, str(err)
    report["seconds"] = {"landmarks": round(t1 - t0, 2), "crops_and_features": round(t2 - t1, 2)}
    report["frames_per_second"] = round(n / max(t2 - t0, 1e-9), 1)
    report["outputs"] = {k: str(out_dir / f) for k, f in (("landmarks", "landmarks.npz"), ("crops", "crops.npz"), ("contact_sheet", "crops.png"))}
    write_json(out_dir / "report.json", report)
    return report
