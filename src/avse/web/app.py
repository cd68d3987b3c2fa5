"""The Gradio page of ``avse ui``: upload, faces, task, progress, results, and the live tab; and the server that runs it."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from avse.config import ATTEN_LIM_DB
from avse.errors import AvseError, ConfigError
from avse.web.jobs import TASKS, Analysis, Engine, JobResult, analyse, run_job
from avse.web.session import AUDIO_SUFFIXES, VIDEO_SUFFIXES, UiConfig, WorkArea, accept_upload, exposure_warning, user_message

#: how many output voices the page has players for (separation gives one per face, the blind model two)
MAX_OUTPUTS = 3
AUTO = "auto"


@dataclass
class SessionState:
    """What the server keeps for one browser session: its upload (in the session's work folder) and its analysis."""

    name: str = ""  # the file name the user knows
    path: Path | None = None
    analysis: Analysis | None = None
    runs: int = 0
    live: Any = None
    names: dict[str, str] = field(default_factory=dict)  # server path -> the user's name for it


#: where ``avse demo`` writes its videos by default: offered as demo clips when no ``--examples`` is given
DEMO_FOLDER = "avse_demo"


class UiServer:
    """The state behind the page: settings, the work area, the engine, the sessions, the demo clips."""

    def __init__(self, cfg: UiConfig, work: WorkArea):
        self.cfg = cfg
        self.work = work
        self.engine = Engine(cfg.dnsmos)
        self.sessions: dict[str, SessionState] = {}
        self._lock = threading.Lock()
        self.examples: dict[str, Path] = {}
        folder = Path(cfg.examples) if cfg.examples else Path(DEMO_FOLDER)  # avse demo's output, when it is here
        if cfg.examples and not folder.is_dir():
            raise ConfigError(f"{folder}: no such folder of demo clips")
        if folder.is_dir():
            # avse demo's noisy inputs when the folder has them (not its enhanced outputs), else every video
            clips = sorted(folder.glob("noisy_*.mp4")) or sorted(folder.glob("*.mp4"))
            self.examples = {p.name: p.resolve() for p in clips[:20]}

    def session(self, session_id: str) -> tuple[SessionState, Path]:
        """A session's state and work folder (both made on first use)."""
        folder = self.work.folder(session_id)
        with self._lock:
            state = self.sessions.setdefault(session_id, SessionState())
        return state, folder

    def end(self, session_id: str) -> None:
        """Forget a session and remove its work folder (the browser tab closed)."""
        with self._lock:
            self.sessions.pop(session_id, None)
        self.work.drop(session_id)

    # --- the file tab ------------------------------------------------------------------------------

    def take_upload(self, session_id: str, upload: str) -> SessionState:
        """Move a fresh upload into the session -> its state (the analysis is still to run)."""
        state, folder = self.session(session_id)
        name = Path(upload).name
        state.path, state.analysis, state.name = None, None, name
        path, video, seconds = accept_upload(upload, self.work.root, folder, self.cfg, blocked=self.work.sessions)
        state.path, state.names = path, {str(path): name, str(folder): "(work folder)"}
        state.analysis = Analysis(video=video, seconds=seconds)
        return state

    def take_example(self, session_id: str, example: str) -> SessionState:
        """Copy a demo clip (by its name in the server's list; never a client's path) into the session."""
        if example not in self.examples:
            raise ConfigError(f"no demo clip named {example!r}")
        self.session(session_id)  # checks the id before it names a folder
        staging = self.work.root / "examples" / session_id  # where uploads may come from: outside the sessions
        staging.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.examples[example], staging / example)
        try:
            return self.take_upload(session_id, str(staging / example))
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def facts_markdown(res: JobResult, analysis: Analysis) -> str:
    """The results' facts as Markdown: mode and why, face, A/V offset, stage times, DNSMOS."""
    lines = []
    if res.mode == "audio-visual":
        face = res.facts.get("face", {})
        rule = {"only": "the only face", "largest": "the largest face", "audio": "the face whose lips follow the sound",
                "box": "the face you picked"}.get(face.get("choice"), "the given face")
        if res.task == "separate":
            lines.append(f"**Mode:** audio-visual, model `{res.model}` once per face: {', '.join(o.name for o in res.outputs)}")
        else:
            lines.append(f"**Mode:** audio-visual with model `{res.model}`, the lips of track {res.facts.get('track')} ({rule})")
    elif "assignment" in res.facts:
        a = res.facts["assignment"]
        turns = a.get("turns", [])
        if len(turns) > 1:  # the pairing changes: say each turn's, not the whole clip's
            lines.append(f"**Mode:** blind model `{res.model}`, its voices given to the faces by lip sync, turn by turn")
            lines.append(f"**Turns:** the pairing changes {len(turns) - 1} time(s): " + "; ".join(
                f"from {t['start_s']:.1f} s " + ", ".join(f"{o.name} <- output {k}" for o, k in zip(res.outputs, t["sources"]))
                for t in turns))
        else:
            given = ", ".join(f"{o.name} <- output {k} (LSE-C {row[k]:.3f})" for o, k, row in zip(res.outputs, a["sources"], a["lse_c"]))
            lines.append(f"**Mode:** blind model `{res.model}`, its voices given to the faces by lip sync: {given}")
        if a.get("one_voice"):
            lines.append(f"**One voice:** {a['one_voice']} talks and gets the whole input; the other face shows no sync "
                         "with the quieter output")
    else:
        why = f": {res.reason}" if res.reason else ""
        lines.append(f"**Mode:** {res.mode.upper()} with model `{res.model}`{why}")
        if res.facts.get("one_voice"):
            from avse.api import one_voice_line

            lines.append(f"**One voice:** {one_voice_line(res.facts)}")
    talker = res.facts.get("talker")
    if talker is not None:  # one face: whose output its voice is (the check for a second voice)
        from avse.api import talker_source

        lines.append(f"**Talker's voice:** from {talker_source(talker, markdown=True)}")
    if "av_offset_ms" in res.facts:
        off = res.facts["av_offset_ms"]
        if off is None:
            lines.append("**A/V offset:** not measurable on this clip")
        else:
            rel = "reliable" if res.facts.get("av_reliable") else "not reliable, so not corrected"
            shifted = res.facts.get("lips_shifted_frames")
            fix = f"; the lips were moved by {shifted} frame(s) onto the sound" if shifted else ""
            lines.append(f"**A/V offset found:** {off:+.0f} ms (positive: audio late), confidence "
                         f"{res.facts.get('av_confidence', 0):.2f}, {rel}{fix}")
    if res.task == "enhance":
        lim = res.facts.get("atten_lim_db")
        lines.append(f"**Attenuation limit:** {lim:g} dB (the input mixed back in at -{lim:g} dB)" if lim else
                     "**Attenuation limit:** none (the model's output as it is)")
        strength = res.facts.get("postfilter")
        lines.append(f"**Post-filter:** strength {strength:g}" if strength else "**Post-filter:** off")
    if "face_coverage" in res.facts:
        lines.append(f"**Face detected on:** {res.facts['face_coverage']:.0%} of the frames")
    if "levels_db" in res.facts:
        from avse.api import levels_line

        lines.append("**Levels against the input:** " + levels_line([o.name for o in res.outputs], res.facts["levels_db"]))
    stages = " | ".join(f"{k} {v:.2f} s" for k, v in res.stages.items())
    lines.append(f"**Stages:** {stages} ({res.facts.get('chunks', '?')} model chunk(s), {analysis.seconds:.1f} s of input)")
    if res.dnsmos:
        keys = list(next(iter(res.dnsmos.values())))
        table = ["| DNSMOS | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        table += [f"| {name} | " + " | ".join(f"{s[k]:.2f}" for k in keys) + " |" for name, s in res.dnsmos.items()]
        lines.append("\n" + "\n".join(table))
    else:
        lines.append("**DNSMOS:** not configured (start with `avse ui --dnsmos DIR`, the folder of the DNSMOS ONNX models)")
    return "\n\n".join(lines)


def build_app(cfg: UiConfig, work: WorkArea) -> Any:
    """The Gradio Blocks of the page (not launched). Every event goes through one queue slot ("engine") but the live tab's."""
    server = UiServer(cfg, work)
    task_labels = list(TASKS)

    def sid(request: gr.Request) -> str:
        """The browser session's id (Gradio's session hash)."""
        return str(request.session_hash or "")

    n_tail = 2 + 2 * MAX_OUTPUTS + 4  # in_video, in_audio, the output players, spectrograms, mouth, facts, downloads

    def cleared() -> list[Any]:
        """Values for in_audio, the output players, the figures, the facts and the downloads: all empty."""
        audios = [gr.update(value=None, visible=i == 0, label="output") for i in range(MAX_OUTPUTS)]
        videos = [gr.update(value=None, visible=i == 0, label="output video") for i in range(MAX_OUTPUTS)]
        return [None] + audios + videos + [None, None, "", None]

    def after_upload(state: SessionState, session_id: str, progress: Any) -> list[Any]:
        """Analyse the session's upload and fill the faces, the input players and the status."""
        assert state.path is not None and state.analysis is not None
        _, folder = server.session(session_id)
        a = state.analysis
        if a.video:
            progress(0.2, desc="front end: finding and tracking the faces")
            a = analyse(state.path, True, a.seconds, folder)
            state.analysis = a
        gallery = [(str(f.thumbnail), f.label()) for f in a.faces if f.thumbnail is not None]
        chosen = a.chosen()
        choices = [(f"auto: the talker avse picked (track {chosen.track})" if chosen else "auto", AUTO)]
        choices += [(f"track {f.track}", str(f.track)) for f in a.faces if f.candidate and not f.chosen]
        if a.video and a.faces:
            how = {"only": "the only face", "largest": "the largest face", "audio": "the face whose lips follow the sound"}
            status = (f"**{state.name}**: {a.seconds:.1f} s video, {len(a.faces)} face track(s) found in "
                      f"{a.seconds_frontend:.1f} s; the talker is track {chosen.track if chosen else '?'} "
                      f"({how.get(a.choice or '', a.choice)}). Pick another face below if that is the wrong one, then Run.")
        elif a.video:
            status = f"**{state.name}**: {a.seconds:.1f} s video; {a.reason}: the audio-only model will be used."
        else:
            status = f"**{state.name}**: {a.seconds:.1f} s audio file: no faces, the audio-only model will be used."
        in_video = str(state.path) if a.video else None
        listing = "\n".join(f"- {f.label()}" for f in a.faces)
        pick = gr.update(choices=choices, value=AUTO, visible=bool(a.faces))
        return [None, status, gallery, listing, pick, in_video] + cleared()  # the drop zone is free for the next file

    def fail(err: BaseException, state: SessionState | None, name: str) -> list[Any]:
        """The page's values after a failed upload: one line about ``name`` (never a traceback), everything cleared."""
        msg = user_message(err, state.names if state else None)
        if not isinstance(err, AvseError):
            import traceback

            traceback.print_exc(file=sys.stderr)  # the server's log keeps the details; the page gets one line
        if state is not None:
            state.path, state.analysis = None, None  # nothing half-analysed is run later
        return [None, f"**Could not use {name}:** {msg}", [], "", gr.update(choices=[], value=None, visible=False), None] + cleared()

    def take_and_analyse(take: Callable[[str], SessionState], name: str, request: gr.Request, progress: Any) -> list[Any]:
        """Take a file into the session (``take(session id)``), find its faces and reset the results."""
        state = None
        try:
            session_id = sid(request)
            state = take(session_id)
            return after_upload(state, session_id, progress)
        except Exception as err:  # one line in the page, never a traceback
            return fail(err, state, name)

    def on_upload(upload: str | None, request: gr.Request, progress: Any = gr.Progress()) -> list[Any]:
        """A file was dropped: take it into the session, find the faces, reset the results."""
        if not upload:
            return [gr.update()] * (5 + n_tail)
        return take_and_analyse(lambda session_id: server.take_upload(session_id, upload), Path(upload).name, request, progress)

    def on_example(example: str | None, request: gr.Request, progress: Any = gr.Progress()) -> list[Any]:
        """A demo clip was picked (by name): as on_upload (``take_example`` names the state after the clip)."""
        if not example:
            return [gr.update()] * (5 + n_tail)
        return take_and_analyse(lambda session_id: server.take_example(session_id, example), example, request, progress)

    def on_face_selected(evt: gr.SelectData, request: gr.Request) -> Any:
        """A thumbnail was clicked: choose that face (a candidate talker) in the radio."""
        state, _ = server.session(sid(request))
        a = state.analysis
        if a is None or evt.index is None:
            return gr.update()
        faces = [f for f in a.faces if f.thumbnail is not None]
        face = faces[int(evt.index)] if 0 <= int(evt.index) < len(faces) else None
        if face is None or not face.candidate:
            return gr.update()
        return AUTO if face.chosen else str(face.track)

    def on_run(label: str, pick: str | None, atten_lim: float | None, strength: float | None, request: gr.Request,
               progress: Any = gr.Progress()) -> list[Any]:
        """Run: the job on the session's upload (``atten_lim``: the enhancer's attenuation limit in dB, empty or 0 for
        none; ``strength``: its post-filter's, empty or 0 for none), the progress bar fed by its stages, then the results."""
        state = None
        try:
            state, folder = server.session(sid(request))
            if state.path is None or state.analysis is None:
                raise ConfigError("upload a video or an audio file first (or pick a demo clip)")
            track = None if pick in (None, "", AUTO) else int(str(pick))
            state.runs += 1
            out_dir = folder / f"run{state.runs}"
            for old in folder.glob("run*"):
                shutil.rmtree(old, ignore_errors=True)  # the previous results: one set per session
            res = run_job(server.engine, label, state.path, state.analysis, out_dir, face_track=track,
                          on_stage=lambda stage, frac: progress(frac, desc=stage), atten_lim_db=atten_lim,
                          postfilter=strength)
        except Exception as err:
            msg = user_message(err, state.names if state else None)
            if not isinstance(err, AvseError):
                import traceback

                traceback.print_exc(file=sys.stderr)
            return [f"**Error:** {msg}"] + [gr.update()] * n_tail
        audios, videos = [], []
        for i in range(MAX_OUTPUTS):
            o = res.outputs[i] if i < len(res.outputs) else None
            audios.append(gr.update(value=str(o.wav) if o else None, visible=o is not None, label=f"output: {o.name}" if o else None))
            videos.append(gr.update(value=str(o.mp4) if o and o.mp4 else None, visible=bool(o and o.mp4),
                                    label=f"video with {o.name}" if o else None))
        files = [str(p) for o in res.outputs for p in (o.wav, o.mp4) if p is not None]
        spent = sum(v for k, v in res.stages.items() if k != "front end at upload")
        status = f"**Done (run {state.runs}):** {label} on {state.name} in {spent:.1f} s."
        facts = facts_markdown(res, state.analysis)
        return ([status, str(state.path) if state.analysis.video else None, str(res.input_wav)] + audios + videos
                + [str(res.figures["spectrograms"]), str(res.figures["mouth"]) if "mouth" in res.figures else None, facts, files])

    # --- the live tab ----------------------------------------------------------------------------

    def on_live(chunk: Any, request: gr.Request) -> Any:
        """One microphone chunk (rate, samples) -> (16 kHz enhanced chunk int16, status line)."""
        try:
            state, _ = server.session(sid(request))
            if chunk is None:
                return None, gr.update()
            if state.live is None:
                from avse.web.live import BrowserLive

                state.live = BrowserLive("av-causal")
            sr, data = chunk
            y = state.live.push(int(sr), data)  # float32 [m] at 16 kHz
            return (16000, (np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)), state.live.status()
        except Exception as err:
            return None, f"**Error:** {user_message(err)}"

    def on_live_stop(request: gr.Request) -> Any:
        """Recording stopped: drop the session's live engine, keep its last status."""
        state, _ = server.session(sid(request))
        if state.live is not None:
            line = state.live.status()
            state.live = None
            return f"stopped: {line}"
        return gr.update()

    def on_unload(request: gr.Request) -> None:
        """The tab closed: the session's state and work folder go."""
        server.end(sid(request))

    # --- the page ---------------------------------------------------------------------------------

    suffixes = list(VIDEO_SUFFIXES + AUDIO_SUFFIXES)
    with gr.Blocks(title="avse", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.Markdown("# avse: pull a talker's voice out of noise, with their lips\n"
                    "Upload a video of someone talking (or an audio file), check the face avse found, pick the task and Run. "
                    f"Limits: {cfg.max_upload_mb:g} MB, {cfg.max_seconds:g} s. One job runs at a time; others wait in the queue.")
        with gr.Tab("File"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Video or audio file", file_types=suffixes, type="filepath", elem_id="upload")
                    example = gr.Dropdown(choices=list(server.examples), value=None, label="or a demo clip", elem_id="example",
                                          visible=bool(server.examples))
                    status = gr.Markdown("Upload a file to start.", elem_id="status")
                    faces = gr.Gallery(label="Faces found (track, how long visible)", elem_id="faces", columns=3, height=180, object_fit="contain",
                                       allow_preview=False, interactive=False)
                    face_list = gr.Markdown(elem_id="face-list")
                    pick = gr.Radio(label="Whose voice (click a face or choose here)", choices=[], elem_id="face-pick", visible=False)
                    task = gr.Radio(choices=task_labels, value=task_labels[0], label="Task and model", elem_id="task")
                    atten_lim = gr.Number(value=ATTEN_LIM_DB, minimum=0, label="Enhance: turn nothing down by more "
                                          "than (dB; 0: no limit, the model's output as it is)", elem_id="atten-lim")
                    strength = gr.Number(value=0, minimum=0, label="Enhance: post-filter strength (0: off; e.g. 2 on "
                                         "a noisy recording: less noise left, a little less clear)", elem_id="postfilter")
                    run = gr.Button("Run", variant="primary", elem_id="run")
                with gr.Column(scale=2):
                    in_video = gr.Video(label="Input video", elem_id="in-video", interactive=False, height=300)
                    in_audio = gr.Audio(label="Input sound (16 kHz, what the model hears)", type="filepath", elem_id="in-audio",
                                        interactive=False)
                    outs = [gr.Audio(label="output", type="filepath", elem_id=f"out-audio-{i}", interactive=False, visible=i == 0)
                            for i in range(MAX_OUTPUTS)]
                    out_videos = [gr.Video(label="output video", elem_id=f"out-video-{i}", interactive=False, visible=i == 0, height=300)
                                  for i in range(MAX_OUTPUTS)]
                    facts = gr.Markdown(elem_id="facts")
                    spec = gr.Image(label="Spectrograms: input and output", type="filepath", elem_id="spectrograms", interactive=False)
                    mouth = gr.Image(label="The talker's mouth opening and the speech", type="filepath", elem_id="mouth",
                                     interactive=False)
                    downloads = gr.File(label="Downloads (wav, mp4)", file_count="multiple", elem_id="downloads", interactive=False)
        with gr.Tab("Live"):
            from avse.web.live import NO_CAMERA

            gr.Markdown("The browser's microphone through the causal model `av-causal` (`avse.streaming.StreamingEnhancer`), "
                        "block by block. Press record, speak, listen to the output (headphones avoid feedback).\n\n" + NO_CAMERA)
            mic = gr.Audio(sources=["microphone"], streaming=True, label="Microphone", elem_id="live-mic")
            live_out = gr.Audio(streaming=True, autoplay=True, label="Enhanced (16 kHz)", elem_id="live-out", interactive=False)
            live_status = gr.Markdown("Not started.", elem_id="live-status")

        tail: list[Any] = [in_video, in_audio, *outs, *out_videos, spec, mouth, facts, downloads]
        common: dict[str, Any] = {"concurrency_id": "engine", "concurrency_limit": 1, "api_visibility": "private"}
        upload.upload(on_upload, [upload], [upload, status, faces, face_list, pick, *tail], **common)
        example.change(on_example, [example], [upload, status, faces, face_list, pick, *tail], **common)
        faces.select(on_face_selected, None, [pick], api_visibility="private", queue=False)
        run.click(on_run, [task, pick, atten_lim, strength], [status, *tail], **common)
        mic.stream(on_live, [mic], [live_out, live_status], stream_every=0.25, time_limit=600, concurrency_id="live",
                   concurrency_limit=2, api_visibility="private")
        mic.stop_recording(on_live_stop, None, [live_status], api_visibility="private")
        demo.unload(on_unload)
    return demo


def serve(cfg: UiConfig, work: WorkArea | None = None) -> None:
    """Run the UI until Ctrl-C or SIGTERM: one work folder (removed at exit), one job at a time, bounded uploads.

    ``work``: the work folder (None: a fresh temporary one). Prints the
    address (and a warning when the UI is reachable from beyond this
    machine) before it listens.
    """
    work = work or WorkArea()
    os.environ["GRADIO_TEMP_DIR"] = str(work.root)  # Gradio's uploads land in the work folder too
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        """SIGTERM: stop like Ctrl-C, so that the work folder is removed."""
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        demo = build_app(cfg, work)
        demo.queue(default_concurrency_limit=1, max_size=cfg.queue_size)
        warning = exposure_warning(cfg)
        if warning:
            print(f"avse: warning: {warning}", file=sys.stderr, flush=True)
        font = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web fonts: the page loads with no internet
        theme = gr.themes.Default(font=font, font_mono=["ui-monospace", "monospace"])
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        print(f"avse ui: http://{host}:{cfg.port} (Ctrl-C stops; work folder {work.root}, removed at exit)", flush=True)
        demo.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, max_file_size=cfg.max_upload_bytes,
                    quiet=True, ssr_mode=False, show_error=False, theme=theme, footer_links=[], inbrowser=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
        work.close()


__all__ = ["MAX_OUTPUTS", "SessionState", "UiServer", "build_app", "facts_markdown", "serve"]
