"""`avse live`: a microphone (JACK or PortAudio) and a camera through a causal model, with a status line and an optional recording."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from avse import SAMPLE_RATE
from avse.config import ATTEN_LIM_DB
from avse.errors import ConfigError, MediaError
from avse.streaming.audio_io import MAIN_PRIORITY, IdlePoll, JackAudio, LiveProcessor, SoundDeviceAudio, try_realtime
from avse.streaming.camera import LipProcess, LipQueue
from avse.streaming.engine import StreamingEnhancer


def streaming_description(model: str | Path, block: int = 640) -> dict[str, Any] | None:
    """``StreamingEnhancer.describe()`` of ``model`` (torch backend, nothing timed), or None when the model cannot stream."""
    try:
        return StreamingEnhancer(model, block=block, backend="torch").describe()
    except ConfigError:
        return None


def _thread_policy() -> tuple[int, os.sched_param] | None:
    """The calling thread's scheduling policy and parameters, or None where they cannot be read."""
    try:
        return os.sched_getscheduler(0), os.sched_getparam(0)
    except (AttributeError, OSError):
        return None


class LiveSession:
    """Live enhancement: audio from JACK (``jack=True``) or PortAudio (``device``), lips from ``camera``, a causal model.

    ``model``: a causal model name or checkpoint (default "av-causal") or a
    ready StreamingEnhancer. ``camera``: a device number, a video file played
    at its own pace, or None (no video: the model's audio-only input).
    The camera and the lip front end run in a child process (``LipProcess``).
    ``start()`` / ``stop()``; ``status()`` a dict, ``status_line()`` one line.

    ``record``: keep the enhanced audio (``processor.recorded()``);
    ``record_video``: a path where the camera's frames are written as they
    are captured (with ``record``; ``save_recording`` puts the two together).
    ``preview``: a window with the camera frame, the face box, its lip
    points and a mouth crop (needs a camera and a display).
    """

    def __init__(
        self,
        model: str | Path | StreamingEnhancer = "av-causal",
        jack: bool = True,
        device: int | str | None = None,
        camera: int | str | Path | None = None,
        block: int = 640,
        backend: str = "auto",
        record: bool = False,
        headroom_ms: float = 20.0,
        server: str | None = None,
        client_name: str = "avse",
        connect: bool = True,
        loop_camera: bool = False,
        period: int = 320,
        idle_poll: bool = True,
        preview: bool = False,
        record_video: str | Path | None = None,
        atten_lim_db: float | None = ATTEN_LIM_DB,
    ):
        if camera is not None and not isinstance(camera, int) and not Path(camera).is_file():  # before the model loads
            raise MediaError(camera, "no such video file (for --camera give a device number or a video file)")
        if (preview or record_video is not None) and camera is None:
            raise ConfigError(f"{'--preview' if preview else 'recording video'} needs --camera")
        if preview:
            from avse.streaming.preview import check_display

            check_display()
        if isinstance(model, StreamingEnhancer):
            self.engine = model
        else:
            self.engine = StreamingEnhancer(model, block=block, backend=backend, video=camera is not None, max_video_wait_ms=0.0,
                                            atten_lim_db=atten_lim_db)
        if camera is not None and not self.engine.audio_visual:
            raise ConfigError(f"model {self.engine.name!r} is audio-only: leave out --camera, or use an audio-visual model (av-causal)")
        self.lips = LipQueue() if camera is not None and self.engine.video else None
        self.camera = (LipProcess(camera, self.lips.put, loop=loop_camera, preview=preview, record=record_video)
                       if self.lips is not None and camera is not None else None)
        self.record_video = None if self.camera is None or record_video is None else Path(record_video)

        def make(rate: int, per: int) -> LiveProcessor:
            return LiveProcessor(self.engine, rate, per, lips=self.lips, headroom_ms=headroom_ms, record=record)

        self.audio: JackAudio | SoundDeviceAudio
        if jack:
            self.audio = JackAudio(make, name=client_name, server=server, connect=connect)
        else:
            self.audio = SoundDeviceAudio(make, device=device, period=period)
        self.processor = self.audio.processor
        self.t_start = 0.0
        self._cpu0 = 0.0
        self._policy: tuple[int, os.sched_param] | None = None
        self.idle_poll = IdlePoll() if idle_poll else None


    def start(self) -> LiveSession:
        """Start the lip process (camera, MediaPipe warmed up), then the audio; returns self.

        The calling thread is then put under SCHED_FIFO (priority 1, when the
        system allows it) until ``stop()``: it takes the GIL now and then (the
        status line), and a thread holding the GIL must not wait behind other
        processes while the audio callback waits for it. With ``idle_poll``
        (the default) the CPUs are kept out of deep idle states until
        ``stop()`` where the system allows it (``IdlePoll``; ``status()`` says
        whether it took effect).
        """
        if self.idle_poll is not None:
            self.idle_poll.acquire()
        try:
            if self.camera is not None:
                self.camera.start()
            self._policy = _thread_policy()
            try_realtime(MAIN_PRIORITY)
            self.audio.start()
        except BaseException:
            if self.idle_poll is not None:
                self.idle_poll.release()  # nothing runs: the cores may halt again
            raise
        self.t_start = time.monotonic()
        self._cpu0 = time.process_time()
        return self

    def stop(self) -> None:
        """Stop audio, camera and lip threads (each even if another fails); the calling thread's scheduling as before ``start()``."""
        try:
            self.audio.stop()
        finally:
            if self.idle_poll is not None:
                self.idle_poll.release()
            if self.camera is not None:
                self.camera.stop()
            if self._policy is not None:
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(0, *self._policy)
                self._policy = None

    def check(self) -> None:
        """Raise what a background thread failed with (the engine worker's error)."""
        if self.processor.error is not None:
            raise self.processor.error

    def status(self) -> dict[str, Any]:
        """Where the session stands: seconds, latency, load, face and video mode, skew, xruns, underruns, frame counts."""
        p = self.processor
        elapsed = max(time.monotonic() - self.t_start, 1e-9)
        ms = np.array(p.block_ms, np.float64)
        audio_share = 100.0 * (time.process_time() - self._cpu0) / elapsed
        lips_share = 100.0 * self.camera.cpu_share if self.camera is not None else 0.0
        out: dict[str, Any] = {
            "seconds": round(elapsed, 2),
            "latency_ms": round(p.latency_ms, 3),
            "cpu_percent": round(100.0 * p.busy_s / elapsed, 1),
            # everything avse runs, per second of real time: this process (callback, resampling, model, status; all
            # threads) and the lip process (camera, face mesh, lip features; all threads)
            "cpu_audio_percent": round(audio_share, 1),
            "cpu_lips_percent": round(lips_share, 1),
            "cpu_total_percent": round(audio_share + lips_share, 1),
            "server_load_percent": round(self.audio.cpu_load(), 1),
            "block_ms_p50": round(float(np.percentile(ms, 50)), 3) if ms.size else None,
            "block_ms_p99": round(float(np.percentile(ms, 99)), 3) if ms.size else None,
            "xruns": self.audio.xruns,
            "underruns": p.fifo.underruns,
            "video": "none" if self.lips is None else p.fader.mode,
            "idle_poll": self.idle_poll is not None and self.idle_poll.held,
        }
        if self.lips is not None and self.camera is not None:
            lip_ms = np.array(self.camera.ms, np.float64)
            out.update(
                face=p.fader.mode != "audio-only",
                camera_frames=self.camera.captured,
                camera_dropped=self.camera.dropped,
                lip_frames=self.camera.processed,
                face_frames=self.camera.faces,
                lip_ms_p50=round(float(np.median(lip_ms)), 2) if lip_ms.size else None,
                frames_taken=self.lips.taken,
                frames_dropped=self.lips.dropped,
                frames_duplicated=self.lips.duplicated,
                frames_stale=self.lips.stale,
                skew_ms=self.lips.skew_ms(),
                camera_error=self.camera.error,
            )
            if self.camera.preview:
                out["preview_frames"] = self.camera.preview_shown
            if self.camera.record is not None:
                rs = self.camera.record_stats or {}
                out.update(record_frames=rs.get("frames", 0), record_lead_frames=rs.get("lead_frames", 0),
                           record_dropped=rs.get("dropped", 0), record_error=rs.get("error"))
        return out

    def save_recording(self, path: str | Path) -> str:
        """Write what was recorded to ``path``, atomically, after ``stop()`` -> a one-line description of it.

        A .wav: the enhanced 16 kHz audio. A video (.mp4, .mkv, .mov): the
        camera's frames (copied as recorded, at their capture times) with the
        enhanced audio on their clock (``record.mux_recording``; the audio's
        capture times, fitted over the session, decide where it lies), so the
        lips in the file move with the voice. ConfigError when nothing was
        recorded. When the frames cannot be written (the encoder failed, no
        frame came, the lip process died and left nothing readable), the
        enhanced audio is still written, beside ``path`` as a .wav, and then
        MediaError says so.
        """
        from avse.audio.io import save_wav
        from avse.streaming.record import LEAD_STEP_MS, mux_recording, record_kind

        kind = record_kind(path, camera=self.record_video is not None)
        y = self.processor.recorded()
        if y.size == 0:
            raise ConfigError(f"{path}: no audio was recorded (the session ended before its first block)")
        if kind == "audio":
            save_wav(path, y, SAMPLE_RATE)
            return f"{path} ({y.size / SAMPLE_RATE:.1f} s of audio)"
        assert self.record_video is not None and self.camera is not None
        rs = self.camera.record_stats or {}
        problem = rs.get("error")
        if problem is None and (not rs.get("frames") or rs.get("t0") is None or not self.record_video.is_file()):
            problem = "no camera frame was recorded"
        if problem is None:
            t0, ratio = self.processor.recorded_clock()
            try:
                start = mux_recording(self.record_video, rs["t0"], y, t0, path, rate_ratio=ratio)
            except MediaError as err:
                problem = str(err)
            else:
                cut = "" if rs.get("final") and rs.get("complete") else "; the lip process ended early: the video stops at its last whole fragment"
                lead = rs.get("lead_frames", 0)
                held = f" (the first held for {lead * LEAD_STEP_MS / 1000:.1f} s while the camera started)" if lead else ""
                return (f"{path} ({y.size / SAMPLE_RATE:.1f} s of audio from {start:+.2f} s, {rs['frames']} camera frames{held}, "
                        f"{rs.get('dropped', 0)} dropped{cut})")
        fallback = unused_path(Path(path).with_suffix(".wav"))
        save_wav(fallback, y, SAMPLE_RATE)
        raise MediaError(path, f"the video could not be written ({problem}); the enhanced audio is in {fallback}")

    def status_line(self) -> str:
        """One terminal line: time, latency, CPU load, face / video mode, A/V skew, xruns, and a video recording's trouble if any."""
        s = self.status()
        face = "no camera"
        if s["video"] != "none":
            face = {"audio-visual": "face: yes", "fading": "face: fading", "audio-only": "face: NO (audio-only)"}[s["video"]]
            skew = s["skew_ms"]["mean"]
            if skew == skew:  # not NaN
                face += f", A/V skew {skew:+.0f} ms"
        rec = ""
        if s.get("record_error"):
            rec = " | recording video FAILED"
        elif s.get("record_dropped"):
            rec = f" | recording dropped {s['record_dropped']} frames"
        return (f"avse live {s['seconds']:7.1f} s | latency {s['latency_ms']:.1f} ms | cpu {s['cpu_percent']:.0f}% "
                f"(all {s['cpu_total_percent']:.0f}%, server {s['server_load_percent']:.0f}%) | {face} | xruns {s['xruns'] + s['underruns']}{rec}")


def unused_path(path: Path) -> Path:
    """``path`` if nothing is there, else the first of NAME.1.SUFFIX, NAME.2.SUFFIX, ... that is free."""
    k = 0
    candidate = path
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.stem}.{k}{path.suffix}")
    return candidate


@contextlib.contextmanager
def camera_frames_file(record: str | Path | None, camera: Any) -> Iterator[Path | None]:
    """A hidden file beside ``record`` for the camera's frames while a video is recorded (removed after), else None.

    Checks ``record`` first (``record.record_kind``): a bad suffix, a video
    with no camera, the camera's own file, or a folder that cannot be made
    fails here, before anything starts.
    """
    import tempfile

    from avse.errors import OutputPathError
    from avse.streaming.record import record_kind
    from avse.utils.fs import check_output_folder

    if record is not None and camera is not None and not isinstance(camera, int) and Path(record).resolve() == Path(camera).resolve():
        raise OutputPathError(f"{record}: --record would overwrite the --camera file")
    if record is None or record_kind(record, camera=camera is not None) != "video":
        yield None
        return
    record = Path(record)
    check_output_folder(record)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{record.stem}.", suffix=".camera.mp4", dir=record.parent)
    except OSError as err:
        raise OutputPathError(f"{record}: cannot write there ({err.strerror})") from None
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def run_live(
    model: str | Path = "av-causal",
    jack: bool = True,
    device: int | str | None = None,
    camera: int | str | Path | None = None,
    record: str | Path | None = None,
    block: int = 640,
    backend: str = "auto",
    seconds: float | None = None,
    headroom_ms: float = 20.0,
    connect: bool = True,
    stream: TextIO | None = None,
    idle_poll: bool = True,
    preview: bool = False,
    atten_lim_db: float | None = ATTEN_LIM_DB,
) -> dict[str, Any]:
    """Run live enhancement until Ctrl-C (or ``seconds``), printing a status line to ``stream`` (default stdout).

    With ``record`` the session is written there when it ends, Ctrl-C
    included (KeyboardInterrupt is raised again after that), atomically: a
    .wav gets the enhanced 16 kHz audio, a video (.mp4, .mkv, .mov; needs
    ``camera``) the camera's frames with the enhanced audio in sync
    (``LiveSession.save_recording``; the frames wait in a hidden file beside
    it meanwhile, ``camera_frames_file``). ``preview``: a window with the
    frame, face box, lip points and a mouth crop. ``atten_lim_db``: the attenuation limit, as for
    ``avse.api.Enhancer``. Returns the last status plus ``describe()``.
    """
    out = stream or sys.stdout
    with camera_frames_file(record, camera) as frames_path:
        session = LiveSession(model, jack=jack, device=device, camera=camera, block=block, backend=backend,
                              record=record is not None, headroom_ms=headroom_ms, connect=connect, idle_poll=idle_poll,
                              preview=preview, record_video=frames_path, atten_lim_db=atten_lim_db)
        print(f"avse live: {session.engine.name}, {session.processor.describe()['backend']} backend, "
              f"{session.processor.sample_rate} Hz server, period {session.processor.period}, "
              f"latency {session.processor.latency_ms:.1f} ms; Ctrl-C stops", file=out)
        tty = out.isatty()
        last_print = 0.0
        session.start()
        if session.idle_poll is not None:
            print("avse live: idle cores poll while this runs (/dev/cpu_dma_latency at 0 us)" if session.idle_poll.held else
                  "avse live: idle cores may halt between blocks (no write access to /dev/cpu_dma_latency; "
                  "as root a block costs less)", file=out)
        try:
            while seconds is None or time.monotonic() - session.t_start < seconds:
                time.sleep(0.25)
                session.check()
                now = time.monotonic()
                if tty:
                    print("\r" + session.status_line() + "   ", end="", file=out, flush=True)
                elif now - last_print >= 5.0:
                    print(session.status_line(), file=out, flush=True)
                    last_print = now
        finally:
            session.stop()
            if tty:
                print(file=out)
            print(session.status_line().replace("avse live", "avse live: stopped at", 1), file=out, flush=True)
            result = dict(session.status(), describe=session.processor.describe())
            if record is not None and session.processor.recording:  # no block ran: nothing to write
                print(f"written: {session.save_recording(record)}", file=out)
    return result


__all__ = ["LiveSession", "camera_frames_file", "run_live", "streaming_description", "unused_path"]
