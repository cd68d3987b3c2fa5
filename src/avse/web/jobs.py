"""What the UI runs: the faces of an upload (with thumbnails), then one enhancement or separation job, stage by stage."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avse import SAMPLE_RATE, VIDEO_FPS
from avse.config import ATTEN_LIM_DB
from avse.errors import ConfigError, NoFaceError

#: the UI's tasks: (label, task, model); "separate" gives two faces the blind two-talker model's voices by lip sync,
#: runs the AV model once per face otherwise, and the blind model alone without faces
TASKS: dict[str, tuple[str, str]] = {
    "enhance: audio-visual (av)": ("enhance", "av"),
    "enhance: causal audio-visual (av-causal)": ("enhance", "av-causal"),
    "enhance: audio only (audio)": ("enhance", "audio"),
    "separate: one voice per face (two, blind, without faces)": ("separate", "separate"),
}
#: called with (stage name, fraction of the job done in [0, 1])
StageFn = Callable[[str, float], None]


@dataclass
class Face:
    """One tracked face of an upload: its track number, how long it is visible, its mean box and a thumbnail PNG."""

    track: int
    seconds: float  # frames with a detection / 25
    first_s: float
    last_s: float
    box: tuple[float, float, float, float]  # mean x0, y0, x1, y1 in pixels
    candidate: bool  # long enough to be a talker (avse.video.track.MIN_COVERAGE of the longest track)
    chosen: bool  # the one avse picked as the talker
    thumbnail: Path | None = None

    def label(self) -> str:
        """The caption under the thumbnail."""
        tail = " (the talker avse picked)" if self.chosen else ("" if self.candidate else " (too brief to be the talker)")
        return f"track {self.track}: visible {self.seconds:.1f} s ({self.first_s:.1f}-{self.last_s:.1f} s){tail}"


@dataclass
class Analysis:
    """The front end's view of an upload: faces found, the talker's landmarks and the A/V offset (video inputs)."""

    video: bool
    seconds: float
    faces: list[Face] = field(default_factory=list)
    frontend: Any = None  # avse.video.frontend.FrontEndResult of the picked talker, None without a face
    reason: str | None = None  # why there is no face to use
    seconds_frontend: float = 0.0
    choice: str | None = None  # how the talker was picked (only / largest / audio)

    def chosen(self) -> Face | None:
        """The face avse picked as the talker."""
        return next((f for f in self.faces if f.chosen), None)


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB image uint8 [H, W, 3] as PNG atomically -> path."""
    import cv2

    from avse.utils.fs import atomic_path

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ConfigError(f"{path.name}: the image could not be encoded")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


def thumbnails(video: Path, faces: list[Face], out_dir: Path, height: int = 128) -> None:
    """Cut one thumbnail per face (its mean box with a margin, on the middle frame of its track) into ``out_dir``.

    Sets ``face.thumbnail`` to ``out_dir/face_TRACK.png``. The video is
    streamed only up to the last frame needed.
    """
    import cv2

    from avse.video.io import iter_grid_frames

    want: dict[int, list[Face]] = {}  # frame -> the faces cut from it
    for f in faces:
        want.setdefault(int(round((f.first_s + f.last_s) / 2 * VIDEO_FPS)), []).append(f)
    last = max(want) if want else -1
    for i, frame in enumerate(iter_grid_frames(video, max_frames=last + 1)):  # frame [H, W, 3] RGB
        for face in want.get(i, []):
            h, w = frame.shape[:2]
            x0, y0, x1, y1 = face.box
            mx, my = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
            a, b = int(max(0, x0 - mx)), int(min(w, x1 + mx))
            c, d = int(max(0, y0 - my)), int(min(h, y1 + my))
            crop = frame[c:d, a:b] if b > a and d > c else frame
            scale = height / crop.shape[0]
            crop = cv2.resize(crop, (max(1, int(round(crop.shape[1] * scale))), height), interpolation=cv2.INTER_AREA)
            face.thumbnail = _write_png(out_dir / f"face_{face.track}.png", crop)


def analyse(path: Path, video: bool, seconds: float, out_dir: Path, choose: tuple[float, float, float, float] | None = None) -> Analysis:
    """Run the front end on an upload: every face's track, the talker (or the face in the box ``choose``), thumbnails.

    An audio file gives an Analysis without faces. A video without a face
    gives one whose ``reason`` says so (the job then runs audio-only).
    Raises MediaError for unreadable files.
    """
    from avse.video.frontend import process
    from avse.video.shift import video_audio
    from avse.video.track import MIN_COVERAGE

    result = Analysis(video=video, seconds=seconds)
    if not video:
        result.reason = "an audio file has no faces"
        return result
    audio = video_audio(path)
    t0 = time.perf_counter()
    try:
        fe = process(path, audio=audio, choose=choose)
    except NoFaceError:
        result.reason = "no face was found in the video"
        result.seconds_frontend = time.perf_counter() - t0
        return result
    rep = fe.report
    tracks = rep.get("tracks", [])
    longest = max((t["frames"] for t in tracks), default=0)
    for t in tracks:
        result.faces.append(Face(
            track=int(t["id"]), seconds=t["frames"] / VIDEO_FPS, first_s=t["first"] / VIDEO_FPS, last_s=t["last"] / VIDEO_FPS,
            box=(float(t["mean_box"][0]), float(t["mean_box"][1]), float(t["mean_box"][2]), float(t["mean_box"][3])),
            candidate=t["frames"] >= MIN_COVERAGE * longest, chosen=int(t["id"]) == int(rep["track"]),
        ))
    result.faces.sort(key=lambda f: (f.box[0] + f.box[2]) / 2)  # left to right, like --face N
    result.frontend = fe
    result.choice = rep.get("choice")
    result.seconds_frontend = time.perf_counter() - t0
    thumbnails(path, result.faces, out_dir)
    return result


@dataclass
class Output:
    """One output voice: its name, its wav, and the input video with it as the sound (video inputs)."""

    name: str
    wav: Path
    mp4: Path | None
    seconds: float


@dataclass
class JobResult:
    """What a job made: outputs, figures, the mode used and why, the A/V offset, stage times, DNSMOS."""

    task: str
    model: str
    mode: str
    reason: str | None
    input_wav: Path
    outputs: list[Output]
    figures: dict[str, Path]
    stages: dict[str, float]  # stage -> seconds
    facts: dict[str, Any]
    dnsmos: dict[str, dict[str, float]] | None = None


class Engine:
    """The models the UI runs, loaded once and shared by every session (jobs run one at a time)."""

    def __init__(self, dnsmos: str | None = None):
        self._enhancers: dict[str, Any] = {}
        self._separator: Any = None
        self._dnsmos_dir = dnsmos
        self._dnsmos: Any = None

    def enhancer(self, model: str) -> Any:
        """The avse.api.Enhancer for a shipped model name (with the audio-only fallback)."""
        from avse.api import Enhancer

        if model not in self._enhancers:
            self._enhancers[model] = Enhancer.from_pretrained(model)
        return self._enhancers[model]

    def separator(self) -> Any:
        """The avse.api.Separator (blind "separate" model, given to two faces by lip sync; "av" once per face)."""
        from avse.api import Separator

        if self._separator is None:
            self._separator = Separator.from_pretrained("separate", av="av")
        return self._separator

    def dnsmos(self) -> Any:
        """The DNSMOS scorer, or None when no DNSMOS folder was configured."""
        if self._dnsmos_dir is None:
            return None
        if self._dnsmos is None:
            from avse.evaluation.dnsmos import Dnsmos

            self._dnsmos = Dnsmos(self._dnsmos_dir)
        return self._dnsmos


def run_job(
    engine: Engine,
    label: str,
    path: Path,
    analysis: Analysis,
    out_dir: Path,
    face_track: int | None = None,
    on_stage: StageFn | None = None,
    atten_lim_db: float | None = ATTEN_LIM_DB,
    postfilter: float | None = None,
) -> JobResult:
    """Run the task ``label`` (a key of TASKS) on the upload at ``path`` -> JobResult, files under ``out_dir``.

    ``atten_lim_db``: the enhancer's attenuation limit and ``postfilter`` its post-filter's strength
    (``avse.api.Enhancer``; separation mixes nothing back and has no post-filter).

    Stages, each reported to ``on_stage(name, fraction done)`` and timed:
    "reading", "front end" (the analysis's is reused, and its time reported
    as "front end at upload", unless another face was picked: ``face_track``;
    separation tracks every face here), "loading the model", "model" (one
    report per chunk), "writing" (wav, and the video with the new sound),
    "figures", "DNSMOS" (when configured).
    ``out_dir`` is emptied first.
    """
    from avse.api import read_input_audio
    from avse.audio.io import save_wav
    from avse.plots import enhancement_report, mouth_track_plot
    from avse.utils.fs import atomic_path, check_file_stem
    from avse.video.frontend import process
    from avse.video.io import mux_audio
    from avse.video.landmarks import mouth_opening

    if label not in TASKS:
        raise ConfigError(f"unknown task {label!r}: expected one of {', '.join(TASKS)}")
    task, model = TASKS[label]
    report = on_stage or (lambda stage, frac: None)
    stages: dict[str, float] = {}
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)

    t = time.perf_counter()
    report("reading the audio", 0.0)
    x = read_input_audio(path, analysis.video)  # [T] 16 kHz
    stages["reading"] = time.perf_counter() - t

    t = time.perf_counter()
    fe = analysis.frontend
    facts: dict[str, Any] = {}
    picked = next((f for f in analysis.faces if f.track == face_track), None)
    if task == "enhance" and picked is not None and not picked.chosen:
        report(f"front end: the lips of track {picked.track}", 0.05)
        fe = process(path, audio=x, choose=picked.box)
    if fe is not None and fe is analysis.frontend:
        stages["front end at upload"] = analysis.seconds_frontend  # reused: not run again
    stages["front end"] = time.perf_counter() - t

    first_chunk: list[float] = []  # when the model got its first chunk: what came before was the front end

    def chunk_done(done: int, total: int) -> None:
        """The enhancer's or separator's progress callback: one report per model chunk (of every shifted run)."""
        if not first_chunk:
            first_chunk.append(time.perf_counter())
        report(f"model: part {done} of {total}", 0.1 + 0.6 * done / max(total, 1))

    t = time.perf_counter()
    report("loading the model", 0.08)
    runner = engine.enhancer(model) if task == "enhance" else engine.separator()
    stages["loading the model"] = time.perf_counter() - t

    t = time.perf_counter()
    report("model: starting", 0.1)
    if task == "enhance":
        enhancer = runner
        enhancer.progress = chunk_done
        enhancer.set_atten_lim(atten_lim_db)
        enhancer.set_postfilter(postfilter)
        if analysis.video and fe is None:
            video: Any = path  # no face at upload: the enhancer says why it runs audio-only
        else:
            video = fe if analysis.video else None
        y = enhancer.enhance(x, SAMPLE_RATE, video=video, frames_from=path if analysis.video else None)[None]  # [1, T]
        info = dict(enhancer.last_info)
        names = ["enhanced"]
    else:
        separator = runner
        separator.progress = chunk_done
        y = separator.separate(x, SAMPLE_RATE, video=path if analysis.video else None)  # [S, T]
        info = dict(separator.last_info)
        names = [check_file_stem(str(n), "output name") for n in info["names"]]  # they name files
    # the enhancer times its own front end; its check for a second voice runs before its model's first chunk and is
    # model time
    if task == "enhance" and info.get("seconds_frontend") is not None:
        start = t + float(info["seconds_frontend"])
    else:
        start = first_chunk[0] if first_chunk else t
    stages["front end"] += start - t  # the separator's face tracking, or a front end the enhancer ran itself
    stages["model"] = time.perf_counter() - start

    t = time.perf_counter()
    report("writing the wav and the video", 0.75)
    input_wav = out_dir / "input.wav"
    save_wav(input_wav, x, SAMPLE_RATE)
    outputs = []
    for name, voice in zip(names, y):
        wav = out_dir / f"{name}.wav"
        mp4 = out_dir / f"{name}.mp4" if analysis.video else None
        with contextlib.ExitStack() as stack:
            save_wav(stack.enter_context(atomic_path(wav)), voice, SAMPLE_RATE)
            if mp4 is not None:
                mux_audio(path, voice, stack.enter_context(atomic_path(mp4)))
        outputs.append(Output(name, wav, mp4, voice.shape[-1] / SAMPLE_RATE))
    stages["writing"] = time.perf_counter() - t

    t = time.perf_counter()
    report("drawing the figures", 0.85)
    figures = {"spectrograms": enhancement_report(
        out_dir / "spectrograms.png", {"input": x, **{o.name: v for o, v in zip(outputs, y)}},
        title=f"{label}: input and output{'s' if len(outputs) > 1 else ''}")}
    if fe is not None and task == "enhance":
        opening = mouth_opening(fe.landmarks["lips"])  # [N]
        offset = fe.sync[0] if not np.isnan(fe.sync[0]) else None
        figures["mouth"] = mouth_track_plot(out_dir / "mouth.png", opening, x, offset, title="the talker's mouth and the input speech")
        facts["av_offset_ms"] = None if offset is None else round(float(offset), 1)
        facts["av_confidence"] = round(float(fe.sync[1]), 3)
        facts["av_reliable"] = bool(fe.sync[2])
        facts["track"] = fe.report.get("track")
    stages["figures"] = time.perf_counter() - t

    scores = None
    scorer = engine.dnsmos()
    if scorer is not None:
        t = time.perf_counter()
        report("DNSMOS", 0.92)
        scores = {"input": _dnsmos(scorer, x)}
        for o, v in zip(outputs, y):
            scores[o.name] = _dnsmos(scorer, v) if np.any(v) else {}  # a silent output has no score
        stages["DNSMOS"] = time.perf_counter() - t
    report("done", 1.0)
    for key in ("face", "face_coverage", "lips_shifted_frames", "faces", "chunks", "clip_gain", "levels_db", "atten_lim_db",
                "postfilter", "assignment", "assign_reason", "one_voice", "overlap_share", "voices_apart", "one_voice_throughout",
                "speaker_similarity", "same_speaker", "talker"):
        if key in info:
            facts[key] = info[key]
    return JobResult(task=task, model=str(info.get("model", model)), mode=str(info.get("mode")), reason=info.get("reason"),
                     input_wav=input_wav, outputs=outputs, figures=figures, stages={k: round(v, 3) for k, v in stages.items()},
                     facts=facts, dnsmos=scores)


def _dnsmos(scorer: Any, audio: np.ndarray) -> dict[str, float]:
    """DNSMOS of audio [T] at 16 kHz -> {"SIG", "BAK", "OVRL", "P808"} rounded (P808 absent without its model)."""
    s = scorer.score(audio, SAMPLE_RATE).as_dict()
    return {k: round(float(s[k]), 2) for k in ("SIG", "BAK", "OVRL", "P808") if np.isfinite(s[k])}


__all__ = ["TASKS", "Analysis", "Engine", "Face", "JobResult", "Output", "analyse", "run_job", "thumbnails"]
