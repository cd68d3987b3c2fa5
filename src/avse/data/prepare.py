"""The preprocessing cache (``avse prepare``): video decoded once into mouth crops, lip features and audio."""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from tqdm import tqdm

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME
from avse.errors import AvseError, ConfigError, MediaError
from avse.utils.fs import atomic_path, ensure_dir, write_json
from avse.utils.pool import remove_stale_parts, worker_pool

CACHE_FORMAT = 1
LRS3_SPLITS = ("pretrain", "trainval", "test")
SYNC_WARN_MS = 80.0  # |A/V offset| past this (with a reliable estimate) is reported
RECORDS = ".prepare"


@dataclass(frozen=True)
class Utterance:
    """One input to prepare: a video, its audio (the video's own track when None) and optional landmarks."""

    id: str  # unique within the cache; also the cache file's stem
    split: str
    speaker: str
    video: Path
    audio: Path | None = None
    landmarks: Path | None = None


def discover(root: str | Path) -> tuple[str, list[Utterance]]:
    """Find the utterances under ``root``: the AVSE layout or an LRS3-style tree.

    AVSE: ROOT/metadata/target_speech_list.json lists the targets; the video is
    ROOT/{split}/targets_video/ID.mp4, the audio ROOT/{split}/targets/ID.wav and
    ground-truth landmarks ROOT/{split}/targets_landmarks/ID.npz when present.
    LRS3: ROOT/{pretrain,trainval,test}/SPEAKER/ID.mp4 (audio from the mp4).
    Returns ``(layout name, utterances)`` sorted by id.
    """
    from avse.data.metadata import load_speech_list, target_speech_list_path

    root = Path(root)
    if not root.is_dir():
        raise MediaError(root, "no such folder")
    tpath = target_speech_list_path(root)
    if tpath.exists():
        items = []
        for e in load_speech_list(tpath):
            split, uid = e["dataset"], e["wavfile"]
            lm = root / split / "targets_landmarks" / f"{uid}.npz"
            items.append(
                Utterance(
                    uid, split, str(e.get("speaker", "")), root / split / "targets_video" / f"{uid}.mp4",
                    root / split / "targets" / f"{uid}.wav", lm if lm.exists() else None,
                )
            )
        return "avse", sorted(items, key=lambda u: u.id)
    items = []
    for split in LRS3_SPLITS:
        for video in sorted((root / split).glob("*/*.mp4")):
            speaker = video.parent.name
            items.append(Utterance(f"{speaker}_{video.stem}", split, speaker, video))
    if not items:
        raise MediaError(root, "neither an AVSE corpus (metadata/target_speech_list.json) nor an LRS3 tree (pretrain|trainval|test/SPEAKER/ID.mp4)")
    return "lrs3", sorted(items, key=lambda u: u.id)


def cache_path(out: str | Path, utt_id: str, split: str) -> Path:
    """Where the cache file of an utterance lives: OUT/{split}/{id}.npz."""
    return Path(out) / split / f"{utt_id}.npz"


_ENCODERS: dict[str, Any] = {}  # Light-ASD visual encoders by checkpoint path, loaded once per process


def _light_asd_encoder(path: str | Path) -> Any:
    from avse.models.light_asd import load_visual_encoder

    key = str(Path(path).resolve())
    if key not in _ENCODERS:
        _ENCODERS[key] = load_visual_encoder(path)
    return _ENCODERS[key]


def prepare_one(utt: Utterance, out: Path, smooth_window: int | None = None, faces: bool = False,
                light_asd: str | Path | None = None) -> dict[str, Any]:
    """Run the front end on one utterance and write its cache file; returns its manifest record.

    The cache file (compressed npz) holds crops uint8 [N, 96, 96] (grayscale
    mouth ROIs), features float32 [N, D] (the visual stream, ``lipfeat.visual_stream``), the
    landmark arrays (lips [N, 40, 2], eyes, nose, face_box), flags uint8 [N]
    (0 detected, 1 interpolated), audio int16 [N * 640] at 16 kHz on the
    video's timeline (zero-padded or cut to whole frames) and the A/V sync
    estimate (NaN offset when the clip is too short to tell). With ``faces`` it also holds
    faces uint8 [N, 96, 96, 3]: RGB face crops aligned on eyes and nose
    (``avse.video.roi.face_matrices``), the talking-face models' frames. With ``light_asd`` (a Light-ASD
    checkpoint) it also holds light_asd float32 [N, 128]: the embeddings of its frozen visual encoder on face
    crops placed by the same landmarks (``avse.models.light_asd.embed_video``), the visual stream of models
    with ``visual_stream: light_asd``.
    """
    from avse.audio.io import load_audio
    from avse.video.frontend import process
    from avse.video.landmarks import LANDMARK_KEYS, read_landmarks

    audio = load_audio(utt.audio)[0] if utt.audio is not None else None
    given = read_landmarks(utt.landmarks) if utt.landmarks is not None else None
    res = process(utt.video, audio=audio, landmarks=given, smooth_window=smooth_window, crops=True)
    assert res.crops is not None
    if res.audio is None:
        raise MediaError(utt.video, "no audio track (and no separate wav)")
    lm, n = res.landmarks, len(res.crops)
    pcm = np.zeros(n * SAMPLES_PER_FRAME, np.int16)
    m = min(len(res.audio), len(pcm))
    pcm[:m] = np.round(np.clip(res.audio[:m], -1.0, 1.0) * 32767).astype(np.int16)
    arrays: dict[str, np.ndarray | np.generic] = {k: np.asarray(lm[k]) for k in LANDMARK_KEYS}
    arrays.update(
        crops=res.crops,
        features=res.features,
        flags=np.asarray(lm["flags"], np.uint8),
        audio=pcm,
        sample_rate=np.int32(SAMPLE_RATE),
        sync_offset_ms=np.float32(res.sync[0]),
        sync_confidence=np.float32(res.sync[1]),
        format=np.int32(CACHE_FORMAT),
    )
    if faces:
        from avse.video.io import iter_grid_frames
        from avse.video.roi import face_crops, face_matrices

        try:
            arrays["faces"] = face_crops(iter_grid_frames(utt.video, max_frames=n), face_matrices(lm))  # [N, 96, 96, 3]
        except ConfigError as err:
            raise MediaError(utt.video, str(err)) from None
    if light_asd is not None:
        from avse.models.light_asd import embed_video

        arrays["light_asd"] = embed_video(utt.video, lm, _light_asd_encoder(light_asd))  # [N, 128]
    path = cache_path(out, utt.id, utt.split)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # cast: mypy cannot know that no key is savez_compressed's own ``allow_pickle``
        np.savez_compressed(fh, **cast("dict[str, Any]", arrays))
    flags = arrays["flags"]
    return {
        "id": utt.id,
        "split": utt.split,
        "speaker": utt.speaker,
        "video": str(utt.video),
        "file": str(path.relative_to(out)),
        "landmarks": res.report["landmarks"],
        "nframes": int(n),
        "nsamples": int(len(res.audio)),
        "detected": int(np.sum(flags == 0)),
        "interpolated": int(np.sum(flags == 1)),
        "sync_offset_ms": None if np.isnan(res.sync[0]) else round(res.sync[0], 1),
        "sync_confidence": round(res.sync[1], 3),
        "sync_reliable": res.sync[2],
        "faces": bool(faces),
        **({"tracks": res.report["n_tracks"]} if "n_tracks" in res.report else {}),
    }


def _holds(path: Path, key: str) -> bool:
    """Whether the cache file ``path`` (an npz) holds the array ``key``."""
    try:
        with zipfile.ZipFile(path) as z:
            return f"{key}.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _record_path(out: Path, utt: Utterance) -> Path:
    return out / RECORDS / utt.split / f"{utt.id}.json"


def _failure_path(out: Path, utt: Utterance) -> Path:
    return out / RECORDS / "failed" / utt.split / f"{utt.id}.json"


def _work(args: tuple[Utterance, str, int | None, bool, str | None]) -> tuple[str, dict[str, Any] | None, str | None]:
    utt, out, smooth, faces, light_asd = args
    try:
        rec = prepare_one(utt, Path(out), smooth, faces, light_asd)
    except AvseError as err:
        write_json(_failure_path(Path(out), utt), {"id": utt.id, "error": str(err)})
        return utt.id, None, str(err)
    write_json(_record_path(Path(out), utt), rec)
    _failure_path(Path(out), utt).unlink(missing_ok=True)
    return utt.id, rec, None


def prepare(
    root: str | Path,
    out: str | Path,
    jobs: int = 1,
    shard: tuple[int, int] = (0, 1),
    smooth_window: int | None = None,
    progress: bool = True,
    detect: bool = False,
    faces: bool = False,
    light_asd: str | Path | None = None,
) -> dict[str, Any]:
    """Build (or resume) the preprocessing cache of every utterance under ``root`` into ``out``.

    ``detect``: run face detection and the face mesh even where the corpus has
    ground-truth landmarks (a synthetic corpus), so that the cache holds the
    lips the front end gives on real videos, with its errors, not the
    renderer's exact points. ``faces``: also store aligned RGB face crops;
    ``light_asd``: a Light-ASD checkpoint, also store its embeddings (see
    ``prepare_one``; a cache file without them is made again).

    Utterance k (in id order) belongs to shard k % N. Items whose cache file
    exists are skipped. Failures do not stop the run: each is reported with its
    reason. The manifest (OUT/manifest.json) lists every item cached so far,
    whichever shard made it; OUT/failures.json the items that failed and were
    not made since (removed when there are none). Returns the report: counts, frames detected and
    interpolated, A/V offsets past SYNC_WARN_MS, failures.
    """
    root, out = Path(root), Path(out)
    if out.resolve() == root.resolve():
        raise ConfigError(f"{out}: the cache needs a folder of its own, not the input corpus itself")
    layout, items = discover(root)
    if detect:
        items = [replace(u, landmarks=None) for u in items]
    i, n = shard
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    ensure_dir(out)
    mine = [u for k, u in enumerate(items) if k % n == i]
    if light_asd is not None:
        _light_asd_encoder(light_asd)  # a missing or foreign checkpoint fails here, before any work
    todo = [u for u in mine if not (cache_path(out, u.id, u.split).exists() and _record_path(out, u).exists()
                                    and (light_asd is None or _holds(cache_path(out, u.id, u.split), "light_asd")))]
    failures: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc="prepare", unit="utt", disable=not progress or not todo)
    args = [(u, str(out), smooth_window, faces, None if light_asd is None else str(light_asd)) for u in todo]
    results: Iterator[tuple[str, dict[str, Any] | None, str | None]]
    for split in {u.split for u in mine}:
        if (out / split).is_dir():  # temp files an interrupted run of this shard left behind
            remove_stale_parts(out / split, {u.id for u in mine if u.split == split})
    if jobs == 1 or len(todo) <= 1:
        results = map(_work, args)
        pool = None
    else:
        pool = worker_pool(min(jobs, len(todo)))
        results = pool.imap_unordered(_work, args)
    try:
        for uid, _rec, err in results:
            if err is not None:
                failures[uid] = err
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    records, failed_all = [], {}
    for u in items:  # every shard's results, so the last shard to finish writes the whole picture
        rp = _record_path(out, u)
        if rp.exists() and cache_path(out, u.id, u.split).exists():
            records.append(json.loads(rp.read_text()))
        elif _failure_path(out, u).exists():
            failed_all[u.id] = json.loads(_failure_path(out, u).read_text())["error"]
    write_json(out / "manifest.json", {"format": CACHE_FORMAT, "layout": layout, "root": str(root), "items": records})
    if failed_all:
        write_json(out / "failures.json", failed_all)
    else:
        (out / "failures.json").unlink(missing_ok=True)
    drift = [r["id"] for r in records if r["sync_reliable"] and abs(r["sync_offset_ms"]) > SYNC_WARN_MS]
    if drift:
        warnings.warn(f"{len(drift)} utterance(s) have an A/V offset past {SYNC_WARN_MS:.0f} ms, e.g. {drift[0]}; see manifest.json", stacklevel=2)
    frames = sum(r["nframes"] for r in records)
    return {
        "layout": layout,
        "utterances": len(items),
        "in_shard": len(mine),
        "made_now": len(todo) - len(failures),
        "cached": len(records),
        "frames": frames,
        "frames_detected": sum(r["detected"] for r in records),
        "frames_interpolated": sum(r["interpolated"] for r in records),
        "av_offset_warnings": drift,
        "failed": failures,
    }


def load_cached(path: str | Path, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Read one cache file -> dict of arrays (crops [N, 96, 96] uint8, features [N, D], audio float32 [N*640], ...).

    ``keys`` reads only those arrays (the npz is decompressed per array, so a
    dataset that needs crops and features does not pay for the audio).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such cache file")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = z.files if keys is None else [k for k in keys if k in z.files]
            missing = [] if keys is None else [k for k in keys if k not in z.files]
            if missing:
                raise MediaError(path, f"cache file lacks {', '.join(missing)}")
            out = {k: z[k] for k in names}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise MediaError(path, f"unreadable cache file ({err})") from None
    if "audio" in out:
        out["audio"] = out["audio"].astype(np.float32) / 32767.0
    return out
