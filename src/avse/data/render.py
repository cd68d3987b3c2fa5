"""Render AVSE scenes to wav/mp4, all or nothing per scene, resumable, in shards and worker pools.

A scene (see avse.data.scenes) is rendered with the mixing math of
avse.data.mixing (the AVSE challenge renderer's, bit for bit in the
``"avse"`` mode) into ROOT/{split}/scenes/: SXXXXX_{mixed,target,interferer}.wav
(int16 PCM_16 16 kHz mono) and SXXXXX_silent.mp4 (the target video's video
stream, copied). With several interferers the written ``_interferer.wav`` is
their sum, so the measured SNR of ``_target.wav`` against ``_interferer.wav``
is the scene's ``SNR`` (:func:`measured_snr`). The three wavs share one
normalisation, ``"avse"``, ``"peak"`` or ``"lufs"``
(avse.data.mixing.normalize_to_int16).

Outputs: a scene's three wavs and its silent mp4 are written to temp files
and renamed into place together, then OUT/.render/SXXXXX.json records what
they were rendered from (a hash of the scene, the filter, the normalisation
and the video option); a scene whose record does not match is rendered
again, and a scene that fails leaves none of its outputs.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import operator
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from avse.audio.wav16 import read_wav64, wav_bytes_int16
from avse.data.metadata import (
    Scene,
    SceneInterferer,
    interferer_wav_path,
    load_scenes,
    scenes_dir,
    scenes_path,
    target_video_path,
    target_wav_path,
)
from avse.data.mixing import (
    apply_ramp,
    check_normalization,
    filter_key,
    mix_scene,
    normalize_to_int16,
    speech_weight_array,
    weighted_rms,
)
from avse.data.scenes import check_int
from avse.errors import AvseError, ConfigError, MediaError, OutputPathError
from avse.utils.fs import atomic_path, ensure_dir, exclusive_lock, parse_shard, write_json
from avse.utils.pool import remove_stale_parts, worker_pool
from avse.video.io import copy_video_stream

OUTPUT_KINDS = ("mixed", "target", "interferer")
RECORD_DIR = ".render"  # OUT/.render/SXXXXX.json: what each scene's outputs were rendered from
RENDER_FORMAT = 1  # part of every record's key: bump it when a change alters the rendered bytes


def scene_output_paths(out_dir: str | Path, scene_name: str, with_video: bool = True) -> dict[str, Path]:
    """{"mixed", "target", "interferer"[, "video"]} -> OUT/SXXXXX_{mixed,target,interferer}.wav, _silent.mp4."""
    out_dir = Path(out_dir)
    paths = {kind: out_dir / f"{scene_name}_{kind}.wav" for kind in OUTPUT_KINDS}
    if with_video:
        paths["video"] = out_dir / f"{scene_name}_silent.mp4"
    return paths


def render_record_path(out_dir: str | Path, scene_name: str) -> Path:
    """OUT/.render/SXXXXX.json: what the scene's outputs were rendered from (see :func:`render_key`)."""
    return Path(out_dir) / RECORD_DIR / f"{scene_name}.json"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def render_key(scene: Scene, hkey: str | None, normalization: str, with_video: bool) -> str:
    """SHA-256 (hex) of everything a scene's output bytes depend on besides the input files.

    The scene dict (target, interferers, offsets, SNR, duration, pre/post),
    the speech-weighting filter's key (None: plain RMS), the normalisation
    mode, whether the silent mp4 is written, and RENDER_FORMAT.
    """
    spec = {
        "format": RENDER_FORMAT,
        "scene": scene,
        "speech_weight": hkey,
        "normalization": normalization,
        "with_video": with_video,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=_json_default).encode()).hexdigest()


def _interferer_list(scene: Scene) -> list[SceneInterferer]:
    return list(scene.get("interferers") or [scene["interferer"]])


def _scene_inputs(root: Path, scene: Scene) -> dict[str, Any]:
    split = scene["dataset"]
    name = scene["target"]["name"]
    return {
        "target": target_wav_path(root, split, name),
        "video": target_video_path(root, split, name),
        "interferers": [interferer_wav_path(root, split, i["type"], i["name"]) for i in _interferer_list(scene)],
    }


class _TargetCache:
    """Small LRU of (target float64 [T], weighted RMS) keyed by file identity and filter."""

    def __init__(self, size: int = 32):
        self.size = size
        self.items: collections.OrderedDict[tuple[Any, ...], tuple[np.ndarray, float]] = collections.OrderedDict()

    def get(self, path: Path, h: np.ndarray | None, hkey: str | None) -> tuple[np.ndarray, float]:
        """(target float64 [T], its weighted RMS) for the wav at ``path``, read again only when the file changed."""
        try:
            st = path.stat()
        except OSError:
            raise MediaError(path, "no such file") from None
        key = (str(path), st.st_mtime_ns, st.st_size, hkey)
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
            return hit
        x = read_wav64(path)
        x.flags.writeable = False
        value = (x, weighted_rms(x, h))
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_TARGETS = _TargetCache()


def render_scene(
    root: str | Path,
    scene: Scene,
    out_dir: str | Path,
    speech_weight: str | Path | np.ndarray | None = None,
    normalization: str = "avse",
    with_video: bool = True,
) -> dict[str, Path]:
    """Render one scene into ``out_dir``: SXXXXX_{mixed,target,interferer}.wav and SXXXXX_silent.mp4.

    The math is the AVSE renderer's (see avse.data.mixing); wavs are int16
    PCM_16 16 kHz mono of ``duration`` samples; the mp4 is the target video's
    video stream copied without re-encoding. ``speech_weight`` is the .mat file
    of the speech-weighting FIR (or the FIR itself, float64 [K]); None uses
    plain RMS. All or nothing: the video is remuxed and the wavs written to
    temp files, then all are renamed into place and OUT/.render/SXXXXX.json
    records what they were rendered from (:func:`scene_done`). When anything
    fails (a truncated wav or mp4, an interferer shorter than the scene) the
    scene is left with none of its outputs, and the error (a MediaError naming
    the bad file) is raised. Inputs are read only; an output that would be an
    input, or ``out_dir`` being a file, raises OutputPathError before anything
    is written. Returns the output paths.
    """
    root = Path(root)
    check_normalization(normalization)
    h = speech_weight_array(speech_weight)
    return _render_one(root, scene, Path(out_dir), h, filter_key(h), normalization, with_video)


def _remove_scene_outputs(outputs: dict[str, Path], record: Path) -> None:
    for p in [record, *outputs.values()]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _render_one(
    root: Path,
    scene: Scene,
    out_dir: Path,
    h: np.ndarray | None,
    hkey: str | None,
    normalization: str,
    with_video: bool,
) -> dict[str, Path]:
    ensure_dir(out_dir)
    name = scene["scene"]
    inputs = _scene_inputs(root, scene)
    outputs = scene_output_paths(out_dir, name, with_video)
    record = render_record_path(out_dir, name)
    names = {o.name for o in outputs.values()}
    for p in [inputs["target"], inputs["video"], *inputs["interferers"]]:
        if p.name in names and os.path.realpath(p.parent) == os.path.realpath(out_dir):
            raise OutputPathError(f"{out_dir / p.name}: output would overwrite an input of scene {name}")
    try:
        if with_video and not inputs["video"].is_file():
            raise MediaError(inputs["video"], "no such file")
        pre, post = int(scene.get("pre_samples", 0)), int(scene.get("post_samples", 0))
        target, t_rms = _TARGETS.get(inputs["target"], h, hkey)
        n = len(target) + pre + post
        if n != int(scene["duration"]):
            raise MediaError(
                inputs["target"],
                f"{len(target)} samples, scene {name} expects {int(scene['duration']) - pre - post} "
                f"(duration {scene['duration']} - pre {pre} - post {post}): truncated or replaced",
            )
        if t_rms == 0.0:
            raise MediaError(inputs["target"], "target is silent: cannot set an SNR")
        noises = []
        for spec, path in zip(_interferer_list(scene), inputs["interferers"]):
            x = read_wav64(path, start=int(spec["offset"]), frames=n)
            noises.append(apply_ramp(x))
        try:
            mixed, t, noise = mix_scene(target, noises, scene["SNR"], h, pre, post, target_rms=t_rms)
        except ConfigError as err:
            raise MediaError(inputs["interferers"][0], f"scene {name}: {err}") from None
        ints = normalize_to_int16([mixed, t, noise], normalization)
        with contextlib.ExitStack() as stack:  # every temp is renamed on success, removed on failure
            tmp = {kind: stack.enter_context(atomic_path(p)) for kind, p in outputs.items()}
            if with_video:  # first: a truncated or corrupt video fails before any wav is written
                copy_video_stream(inputs["video"], tmp["video"])
            for kind, x in zip(OUTPUT_KINDS, ints):
                tmp[kind].write_bytes(wav_bytes_int16(x))
        key = render_key(scene, hkey, normalization, with_video)
        write_json(record, {"scene": name, "key": key, "outputs": sorted(names)})
    except BaseException:
        _remove_scene_outputs(outputs, record)  # stale outputs of an earlier render included
        raise
    return outputs


def _scene_done(out_dir: Path, name: str, key: str, with_video: bool) -> bool:
    if not all(p.is_file() for p in scene_output_paths(out_dir, name, with_video).values()):
        return False
    try:
        record = json.loads(render_record_path(out_dir, name).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("key") == key


def scene_done(
    out_dir: str | Path,
    scene: Scene,
    speech_weight: str | Path | np.ndarray | None = None,
    normalization: str = "avse",
    with_video: bool = True,
) -> bool:
    """True when the scene's outputs exist and were rendered from this scene and these options (resume).

    The outputs' record OUT/.render/SXXXXX.json must hold the :func:`render_key`
    of ``scene``, the filter, ``normalization`` and ``with_video``; a scene
    rebuilt with another seed, or asked with another filter or mode, is not
    done and is rendered again (its outputs replaced).
    """
    h = speech_weight_array(speech_weight)
    key = render_key(scene, filter_key(h), check_normalization(normalization), with_video)
    return _scene_done(Path(out_dir), scene["scene"], key, with_video)


def _render_group(task: tuple[Any, ...]) -> list[tuple[str, str | None]]:
    """Worker: render a group of scenes (sharing a target); return [(scene, error or None)]."""
    root, scenes, out_dir, h, hkey, normalization, with_video = task
    results: list[tuple[str, str | None]] = []
    for scene in scenes:
        try:
            _render_one(root, scene, out_dir, h, hkey, normalization, with_video)
            results.append((scene["scene"], None))
        except Exception as err:  # reported back to the parent, which raises AvseError
            results.append((scene["scene"], f"{type(err).__name__}: {err}".replace("\n", " ")))
    return results


def shard_indices(n: int, shard: tuple[int, int]) -> list[int]:
    """Indices of the ``n`` scenes that shard ``(i, N)`` renders: every k with k % N == i."""
    i, count = shard
    return list(range(i, n, count))


def _check_shard(shard: tuple[int, int] | str | None) -> tuple[int, int]:
    """``"i/N"``, None or a pair (i, N) -> (i, N), validated by avse.utils.fs.parse_shard."""
    if shard is None or isinstance(shard, str):
        return parse_shard(shard)
    try:
        i, n = (operator.index(v) for v in shard)
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be 'i/N' or a pair of integers (i, N), got {shard!r}") from None
    return parse_shard(f"{i}/{n}")


def _scene_stems(name: str) -> list[str]:
    return [f"{name}_{kind}" for kind in (*OUTPUT_KINDS, "silent")]


def _remove_orphans(out_dir: Path, keep: set[str]) -> int:
    """Delete the outputs and records of scenes recorded in ``out_dir`` but no longer in scenes.json."""
    removed = 0
    for record in sorted((out_dir / RECORD_DIR).glob("*.json")):
        if record.stem in keep or record.name.startswith("."):  # ".S00002.k3j_x9a2.part.json": being written
            continue
        for stem in _scene_stems(record.stem):
            for ext in (".wav", ".mp4"):
                with contextlib.suppress(FileNotFoundError):
                    (out_dir / f"{stem}{ext}").unlink()
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        removed += 1
    return removed


def _remove_parts(out_dir: Path, names: list[str]) -> None:
    """Remove what writes killed mid-way (Ctrl-C with a pool, SIGKILL) left of these scenes' files."""
    remove_stale_parts(out_dir, stems={stem for name in names for stem in _scene_stems(name)})
    remove_stale_parts(out_dir / RECORD_DIR, stems=set(names))


def render_scenes(
    root: str | Path,
    dataset: str,
    jobs: int = 1,
    shard: tuple[int, int] | str | None = (0, 1),
    speech_weight: str | Path | np.ndarray | None = None,
    progress: bool = True,
    normalization: str = "avse",
    with_video: bool = True,
) -> dict[str, Any]:
    """Render every scene of ROOT/metadata/scenes.{dataset}.json into ROOT/{dataset}/scenes/.

    Scene k belongs to shard ``k % N`` (``shard=(i, N)`` or ``"i/N"``).
    Resume: a scene is skipped when :func:`scene_done` (its outputs exist and
    its record OUT/.render/SXXXXX.json says they were rendered from this very
    scene, filter, normalisation and video option); any other scene is
    rendered, replacing stale outputs (after ``scenes build --seed 7``, or with
    another ``speech_weight`` or ``normalization``). Scenes recorded in OUT but
    no longer in scenes.json have their outputs removed. An interrupted run
    (Ctrl-C, a killed job) resumes cleanly: a scene's outputs and record appear
    only once all of it is written, and the temp files a killed writer left
    are removed at the start of the next run (and when a Ctrl-C is handled).
    Two runs of the same shard on one corpus take turns: the second waits for
    the lock ``OUT/.lock-IofN`` (there while a run holds it) and then skips
    what the first rendered.

    ``jobs`` > 1 renders in a multiprocessing pool whose workers ignore
    Ctrl-C (the parent stops them); scenes sharing a target go to the same
    worker, which caches the target and its weighted RMS. Output is
    bit-identical whatever ``jobs`` and ``shard``. Returns ``{"dataset",
    "out_dir", "shard", "scenes", "rendered", "skipped", "removed",
    "seconds"}``; raises AvseError after the run when some scenes failed (the
    others are written, a failed scene has no outputs; re-run to resume).
    """
    root = Path(root)
    si, sn = _check_shard(shard)
    jobs = check_int("jobs", jobs, 1)
    check_normalization(normalization)
    scenes = load_scenes(scenes_path(root, dataset))
    h = speech_weight_array(speech_weight)
    hkey = filter_key(h)
    out_dir = ensure_dir(scenes_dir(root, dataset))
    lock = out_dir / f".lock-{si}of{sn}"

    def waiting() -> None:
        if progress:
            print(f"render {dataset} {si}/{sn}: waiting for another render of {root} to finish", file=sys.stderr, flush=True)

    with exclusive_lock(lock, on_wait=waiting):
        return _render_locked(root, dataset, scenes, out_dir, (si, sn), jobs, h, hkey, normalization, with_video, progress)


def _render_locked(root: Path, dataset: str, scenes: list[Scene], out_dir: Path, shard: tuple[int, int], jobs: int,
                   h: np.ndarray | None, hkey: str | None, normalization: str, with_video: bool, progress: bool) -> dict[str, Any]:
    """render_scenes' work, done while it holds the shard's lock: what is rendered is decided here, after any wait."""
    si, sn = shard
    t0 = time.perf_counter()
    mine = [scenes[k] for k in shard_indices(len(scenes), (si, sn))]
    _remove_parts(out_dir, [s["scene"] for s in mine])
    removed = _remove_orphans(out_dir, {s["scene"] for s in scenes})
    keys = {s["scene"]: render_key(s, hkey, normalization, with_video) for s in mine}
    todo = [s for s in mine if not _scene_done(out_dir, s["scene"], keys[s["scene"]], with_video)]
    groups: dict[tuple[str, str], list[Scene]] = {}
    for s in todo:
        groups.setdefault((s["dataset"], s["target"]["name"]), []).append(s)
    tasks = [(root, g, out_dir, h, hkey, normalization, with_video) for g in groups.values()]

    failures: list[tuple[str, str]] = []
    # the pool is forked before the progress bar starts its monitor thread
    pool = worker_pool(min(jobs, len(tasks))) if jobs > 1 and len(tasks) > 1 else None
    bar = None
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=f"render {dataset} {si}/{sn}", unit="scene")
        results = map(_render_group, tasks) if pool is None else pool.imap_unordered(_render_group, tasks)
        for batch in results:
            failures.extend((name, err) for name, err in batch if err is not None)
            if bar is not None:
                bar.update(len(batch))
    except BaseException:
        if pool is not None:  # workers killed mid-write leave temp files: clear them now
            pool.terminate()
            pool.join()
            pool = None
            _remove_parts(out_dir, [s["scene"] for s in todo])
        raise
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    summary = {
        "dataset": dataset,
        "out_dir": str(out_dir),
        "shard": f"{si}/{sn}",
        "scenes": len(mine),
        "rendered": len(todo) - len(failures),
        "skipped": len(mine) - len(todo),
        "removed": removed,
        "seconds": time.perf_counter() - t0,
    }
    if failures:
        failures.sort()
        name, err = failures[0]
        raise AvseError(
            f"render {dataset}: {len(failures)} of {len(todo)} scenes failed (first {name}: {err}); "
            "the others are written, re-run to resume"
        )
    return summary


def measured_snr(
    target_wav: str | Path,
    interferer_wav: str | Path,
    speech_weight: str | Path | np.ndarray | None = None,
    pre_samples: int = 0,
    post_samples: int = 0,
) -> float:
    """SNR in dB of a rendered scene, from its _target.wav and _interferer.wav (each [T]).

    ``20 log10(rms(conv(t, h)) / rms(conv(i, h)))`` over the samples where the
    target is (``[pre_samples, len - post_samples)``), with ``h`` the
    speech-weighting FIR (plain RMS when None) - the quantity the renderer sets.
    A silent interferer gives ``+inf`` (a silent target ``-inf``); both silent,
    or files of different lengths, raise MediaError.
    """
    h = speech_weight_array(speech_weight)
    t = read_wav64(Path(target_wav))
    i = read_wav64(Path(interferer_wav))
    if len(i) != len(t):
        raise MediaError(interferer_wav, f"{len(i)} samples, the target {target_wav} has {len(t)}")
    pre_samples = check_int("pre_samples", pre_samples, 0)
    post_samples = check_int("post_samples", post_samples, 0)
    lo, hi = pre_samples, len(t) - post_samples
    if lo >= hi:
        raise ConfigError(f"pre_samples {pre_samples} + post_samples {post_samples} leave nothing of {len(t)} samples")
    t_rms, i_rms = weighted_rms(t[lo:hi], h), weighted_rms(i[lo:hi], h)
    if i_rms == 0.0:
        if t_rms == 0.0:
            raise MediaError(target_wav, f"target and interferer {interferer_wav} are both silent: no SNR")
        return math.inf
    if t_rms == 0.0:
        return -math.inf
    return float(20 * np.log10(t_rms / i_rms))


__all__ = [
    "OUTPUT_KINDS",
    "RECORD_DIR",
    "RENDER_FORMAT",
    "measured_snr",
    "render_key",
    "render_record_path",
    "render_scene",
    "render_scenes",
    "scene_done",
    "scene_output_paths",
    "shard_indices",
]
