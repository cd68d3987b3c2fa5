"""Worker pools that leave Ctrl-C to the parent, and clean-up of temp files that interrupted writes left."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.pool
import re
import signal
import sys
from collections.abc import Callable, Collection
from pathlib import Path

# The temporary name avse.utils.fs.atomic_path gives PATH = DIR/STEM.SUFFIX:
# DIR/.STEM.XXXXXXXX.partSUFFIX (XXXXXXXX: tempfile's 8 random characters).
_PART = re.compile(r"^\.(?P<stem>.*)\.[a-z0-9_]{8}\.part(?P<suffix>\.[^.]*)?$")


def pool_context() -> multiprocessing.context.BaseContext:
    """The start method for worker pools: fork on Linux (fast, no re-import), spawn elsewhere."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _init_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def worker_pool(jobs: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> multiprocessing.pool.Pool:
    """A pool of ``jobs`` processes whose workers ignore SIGINT.

    Ctrl-C reaches the whole process group; with this pool only the parent
    reacts (KeyboardInterrupt in the parent, which then calls ``terminate()``),
    so the terminal shows one interrupt instead of a traceback per worker.
    Workers killed by ``terminate()`` may leave atomic_path temp files behind:
    :func:`remove_stale_parts` clears them. Use as a context manager or call
    ``terminate()``/``join()`` yourself. ``initializer(*initargs)`` runs in each
    worker after that.
    """
    return pool_context().Pool(processes=jobs, initializer=_init_worker, initargs=(initializer, initargs))


def part_stem(name: str) -> str | None:
    """The stem of the file an atomic_path temp file name was for, or None if ``name`` is not one.

    ``".S00001_mixed.k3j_x9a2.part.wav"`` -> ``"S00001_mixed"``; a temp file of
    a temp file (a writer that itself writes atomically, handed an atomic_path
    temp) gives the innermost stem.
    """
    m = _PART.match(name)
    if m is None:
        return None
    stem = m.group("stem")
    while (inner := _PART.match(stem)) is not None:
        stem = inner.group("stem")
    return stem


def remove_stale_parts(folder: str | Path, stems: Collection[str] | None = None) -> list[Path]:
    """Delete the temp files (``.STEM.XXXXXXXX.partSUFFIX``) that atomic_path writes left in ``folder``.

    A write that completes renames its temp file, and one that fails deletes
    it; only a process killed mid-write (``Pool.terminate()``, SIGKILL, a power
    cut) leaves one. Call this at the start of a run, when no other process is
    writing into ``folder``, or pass ``stems`` (the stems of the files this run
    owns, e.g. ``"S00001_mixed"``) so that only those files' temps are removed
    and concurrent writers of other files (other shards) are left alone. Not
    recursive; a missing folder has nothing to remove. Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        stem = part_stem(path.name)
        if stem is None or (stems is not None and stem not in stems) or not path.is_file():
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # removed by a concurrent run
            continue
        removed.append(path)
    return sorted(removed)


__all__ = ["part_stem", "pool_context", "remove_stale_parts", "worker_pool"]
