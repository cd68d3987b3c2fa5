"""Running an engine's command-line program: its timeout, its errors and the WAV file it writes."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from avse.data.tts.errors import EngineMissingError, TtsError

_SUBPROCESS_TIMEOUT_S = 120
_SCRATCH_DIR: Path | None = None  # where engines' temporary folders go; None: the system's temp folder


@contextlib.contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """Put the engines' temporary folders (``engine_tmp``) under ``path`` while inside, creating it.

    A corpus keeps them inside itself, so that a run killed with SIGKILL
    leaves nothing in the system's temp folder and the next run can clear them.
    """
    global _SCRATCH_DIR
    before, folder = _SCRATCH_DIR, Path(path).resolve()  # absolute: engines run with another working folder
    folder.mkdir(parents=True, exist_ok=True)
    _SCRATCH_DIR = folder
    try:
        yield folder
    finally:
        _SCRATCH_DIR = before


def engine_tmp(engine: str) -> tempfile.TemporaryDirectory:
    """A temporary folder ``avse_ENGINE_*`` for one call of ``engine``: under ``scratch_dir``'s folder when one is set."""
    return tempfile.TemporaryDirectory(prefix=f"avse_{engine}_", dir=_SCRATCH_DIR)


def read_wav(path: Path, engine: str) -> tuple[np.ndarray, int]:
    """The mono audio [T] float32 and sample rate of the WAV ``engine`` wrote; TtsError when it wrote none."""
    if not path.exists() or path.stat().st_size <= 44:
        raise TtsError(f"{engine} wrote no audio")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sr)


def run(cmd: list[str], engine: str, cwd: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing its text output; EngineMissingError when absent, TtsError when it times out."""
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT_S, cwd=cwd, env=env, check=False
        )
    except FileNotFoundError:
        raise EngineMissingError(f"{engine} is not installed ({cmd[0]} not found)") from None
    except subprocess.TimeoutExpired:
        raise TtsError(f"{engine} did not finish within {_SUBPROCESS_TIMEOUT_S} s") from None


def last_line(s: str) -> str:
    """The last non-empty line of a program's output, for an error message."""
    lines = [ln.strip() for ln in s.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"

