"""Atomic file writes and output-folder checks."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from avse.errors import ConfigError, OutputPathError


def _umask() -> int:
    """The process's file-creation mask: from /proc/self/status where there is one (no side effect), else set and put back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


MAX_NAME_BYTES = 200  # a stem, so that stem + suffix + atomic_path's temporary prefix stays under 255 bytes


def file_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a file name on its own (None when it can).

    The one rule for names that come from metadata, recipes or checkpoints and
    become part of a path: a non-empty string, no '/' or '\\', no NUL, not
    starting with '.' (so not '.' or '..'), at most MAX_NAME_BYTES bytes in UTF-8.
    """
    if not isinstance(name, str):
        return f"not a string ({type(name).__name__})"
    if not name:
        return "empty"
    if "/" in name or "\\" in name:
        return "has a folder separator"
    if "\x00" in name:
        return "has a NUL character"
    if name.startswith("."):
        return "starts with '.'"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def check_file_stem(name: str, what: str = "name") -> str:
    """``name`` if it can be a file name on its own (see :func:`file_name_problem`), else ConfigError."""
    problem = file_name_problem(name)
    if problem is not None:
        raise ConfigError(f"{what} {name!r} cannot be a file name ({problem})")
    return name


def check_output_folder(path: str | Path) -> None:
    """Raise OutputPathError when a file would have to become a folder for ``path`` to be written (nothing is created)."""
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{path}: {parent} is a file, not a folder")
            return


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the suffix of ``path`` so that writers which pick a
    format from the extension (soundfile, PyAV) still work. On any exception the
    temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    check_output_folder(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"{path}: cannot create its folder ({err.strerror})") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600; give the file the usual permissions (0666 minus the umask)
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def exclusive_lock(path: str | Path, on_wait: Callable[[], None] | None = None) -> Iterator[Path]:
    """Hold an exclusive lock (``flock``) on the file ``path`` while inside; the file exists only meanwhile.

    A second process asking for the same lock waits until the first leaves
    (``on_wait()`` is called once when it has to wait). The lock goes with
    the process, so a killed holder never leaves it stuck (only the file,
    which the next holder takes over and removes).
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None and not waited:
                    on_wait()
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
        except BaseException:
            os.close(fd)
            raise
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the holder removed the file while this one waited on it: lock the new one
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still locked, so that a waiter sees it gone and starts over
        os.close(fd)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def ensure_dir(path: str | Path) -> Path:
    """Create the output folder ``path``; refuse clearly when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: output folder is a file")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"{path}: {parent} is a file")
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``"i/N"`` (0-based i) into ``(i, N)``; ``None`` means ``(0, 1)``."""
    if text is None:
        return 0, 1
    try:
        i_str, n_str = text.split("/")
        i, n = int(i_str), int(n_str)
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < N")
    return i, n
