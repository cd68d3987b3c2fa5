"""The UI's safety rules: settings and limits, per-session work folders, what an upload may be, one-line messages."""

from __future__ import annotations

import ipaddress
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from avse.errors import AvseError, ConfigError, MediaError, first_line

#: file endings an upload may have (the session copy keeps the ending, lower-cased; every other byte of the name is dropped)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class UiConfig:
    """Settings of ``avse ui``: where it listens, what an upload may be, where DNSMOS and the demo clips are.

    ``max_upload_mb`` bounds an upload's size (the web server refuses larger
    bodies; the handler checks again), ``max_seconds`` its duration.
    ``queue_size`` bounds the jobs waiting for the one engine slot (one job
    runs at a time, whoever sent it). ``dnsmos``: a folder with the DNSMOS
    ONNX models (None: no DNSMOS scores). ``examples``: a folder whose
    ``*.mp4`` files are offered as demo clips (e.g. what ``avse demo`` made).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 200.0
    max_seconds: float = 300.0
    share: bool = False
    queue_size: int = 8
    dnsmos: str | None = None
    examples: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if not self.max_upload_mb > 0:
            raise ConfigError(f"the upload limit must be a positive number of MB, got {self.max_upload_mb}")
        if not self.max_seconds > 0:
            raise ConfigError(f"the duration limit must be a positive number of seconds, got {self.max_seconds}")
        if self.queue_size < 1:
            raise ConfigError(f"the queue must hold at least one job, got {self.queue_size}")

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only listens on this machine: localhost, 127.0.0.0/8, ::1."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(cfg: UiConfig) -> str | None:
    """The warning to print when the UI can be reached from beyond this machine (None when it cannot)."""
    parts = []
    if not is_loopback(cfg.host):
        parts.append(f"listening on {cfg.host}:{cfg.port}: anyone who can reach this machine on that port can use the UI "
                     f"and its CPU (there is no login)")
    if cfg.share:
        parts.append("--share: a public link through Gradio's share servers; anyone with the link can use the UI")
    return "; ".join(parts) or None


# ---------------------------------------------------------------------------------------------
# work folders
# ---------------------------------------------------------------------------------------------


class WorkArea:
    """The server's one work folder: the web server's uploads and one sub-folder per browser session.

    Everything the UI writes lies under ``root`` (a fresh temporary folder
    unless given): ``sessions/ID/`` holds a session's input copy, outputs
    and figures and is removed when the session ends (``drop``); ``close``
    removes the whole folder when the server stops.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="avse-ui-")) if root is None else Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self.sessions = self.root / "sessions"
        self.sessions.mkdir(exist_ok=True)
        self._lock = threading.Lock()

    def folder(self, session_id: str) -> Path:
        """The work folder of a session (made on first use). ConfigError for an id that is not a plain token."""
        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            raise ConfigError("this browser session has no valid id; reload the page")
        path = self.sessions / session_id
        with self._lock:
            path.mkdir(exist_ok=True)
        return path

    def drop(self, session_id: str) -> bool:
        """Remove a session's folder and all in it -> whether there was one."""
        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            return False
        path = self.sessions / session_id
        if not path.is_dir():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    def close(self) -> None:
        """Remove the whole work folder (the server stops)."""
        shutil.rmtree(self.root, ignore_errors=True)


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` (resolved, links followed) lies inside the folder ``root``."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


def accept_upload(
    upload: str | Path, upload_root: str | Path, session_dir: Path, cfg: UiConfig, blocked: str | Path | None = None
) -> tuple[Path, bool, float]:
    """Take an upload into the session -> (its copy in ``session_dir``, whether it is a video, duration in seconds).

    ``upload`` is the file the web server stored for this request; it is used
    only when it lies inside ``upload_root`` (the server's own upload folder):
    a path the client made up is never opened, nor one inside ``blocked``
    (the sessions' folders: another session's files). It must be a regular file of at
    most ``cfg.max_upload_mb`` with a known audio or video ending, and last at
    most ``cfg.max_seconds``; the copy is named ``input`` + the ending. The
    upload is moved, not copied. Raises ConfigError or MediaError with a
    message about the file's name only (never a server path).
    """
    src = Path(upload)
    name = src.name
    if not inside(src, upload_root) or (blocked is not None and inside(src, blocked)) or not src.is_file():
        raise ConfigError("this file did not come through the upload; upload it again")
    suffix = src.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + AUDIO_SUFFIXES:
        raise ConfigError(f"{name}: not a video or audio file (expected one of {', '.join(VIDEO_SUFFIXES + AUDIO_SUFFIXES)})")
    size = src.stat().st_size
    if size > cfg.max_upload_bytes:
        raise ConfigError(f"{name}: {size / 2**20:.1f} MB is more than the limit of {cfg.max_upload_mb:g} MB")
    if size == 0:
        raise MediaError(name, "empty file")
    dst = session_dir / f"input{suffix}"
    for old in session_dir.glob("input.*"):
        old.unlink()
    shutil.move(str(src), dst)
    try:
        video, seconds = probe(dst)
    except AvseError as err:
        dst.unlink(missing_ok=True)
        problem = (err.problem if isinstance(err, MediaError) else str(err)).replace(str(dst), name)  # no server path
        raise MediaError(name, problem) from None
    if seconds > cfg.max_seconds:
        dst.unlink(missing_ok=True)
        raise ConfigError(f"{name}: {seconds:.1f} s is longer than the limit of {cfg.max_seconds:g} s")
    return dst, video, seconds


def probe(path: Path) -> tuple[bool, float]:
    """(whether ``path`` holds a video, its duration in seconds: the longest stream) without decoding it all.

    Raises MediaError for a file that is not readable media or has no audio.
    """
    from avse.video.io import has_video, open_media

    video = has_video(path)  # opens the file with open_media too: an unreadable one or a still image stops here
    with open_media(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "no audio track (avse needs the sound)")
        seconds = 0.0
        for s in list(container.streams.audio) + list(container.streams.video):
            if s.duration is not None and s.time_base is not None:
                seconds = max(seconds, float(s.duration * s.time_base))
        if seconds == 0.0 and container.duration is not None:
            seconds = container.duration / 1e6  # microseconds (av.time_base)
    return video, seconds


def user_message(err: BaseException, names: dict[str, str] | None = None) -> str:
    """One line for the page about a failure: an avse error's message, else its type and first line.

    ``names`` maps server paths (or their text) to what the user knows them by
    (the uploaded file's name), so that no server path reaches the page.
    """
    if isinstance(err, AvseError):
        text = " ".join(str(err).split())
    elif isinstance(err, OSError):
        text = err.strerror or first_line(err)
    else:
        text = f"avse could not process this ({first_line(err)})"
    for path, name in (names or {}).items():
        text = text.replace(str(path), name)
    return text


__all__ = [
    "AUDIO_SUFFIXES",
    "UiConfig",
    "VIDEO_SUFFIXES",
    "WorkArea",
    "accept_upload",
    "exposure_warning",
    "inside",
    "is_loopback",
    "probe",
    "user_message",
]
