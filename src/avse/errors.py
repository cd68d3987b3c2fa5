"""Typed errors raised by the library; only the CLI turns them into messages."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path


def _rebuild(cls: type[AvseError], args: tuple, state: dict) -> AvseError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class AvseError(Exception):
    """Base class of every error avse raises on purpose."""

    def __reduce__(self) -> tuple:
        # Pickled as its message and attributes, not by calling __init__ again: subclasses take other arguments than
        # their message, and an error a worker process raises must reach the parent (an unpicklable one hangs a Pool).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class MediaError(AvseError):
    """A media file cannot be read: missing, unreadable, truncated or empty."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class EmptyAudioError(MediaError):
    """An audio file (or track) holds no samples."""

    def __init__(self, path: str | Path):
        super().__init__(path, "no audio samples")


class MetadataError(AvseError):
    """A metadata list or scene file is missing, empty or malformed."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(AvseError):
    """An option has an impossible value (an SNR range upside down, a bad shard)."""


class OutputPathError(AvseError):
    """An output location cannot be used (it is a file, or it is an input)."""


class InterfererTooShortError(AvseError):
    """No interferer is long enough to cover the target."""


class NoFaceError(AvseError):
    """No face was found in any frame of the video."""


def first_line(err: BaseException, with_type: bool = True) -> str:
    """The first non-blank line of ``err``'s message (at most 200 characters), prefixed by its type;
    the bare type when the message is empty (torch.load on a zero-byte file says nothing)."""
    line = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")[:200]
    if not line:
        return type(err).__name__
    return f"{type(err).__name__}: {line}" if with_type else line


@contextlib.contextmanager
def about_file(path: str | Path) -> Iterator[None]:
    """Make every AvseError raised inside name ``path``: the same error, its message prefixed by ``path``.

    For work on one file whose deeper steps know only arrays (too few frames,
    a face index out of range): the message then says which file it was
    about. An error whose message already names ``path`` passes unchanged.
    """
    try:
        yield
    except AvseError as err:
        text = str(err)
        if str(path) in text:
            raise
        named = copy.copy(err)
        named.args = (f"{path}: {text}",)
        raise named from None
