"""AVSE metadata: load and validate the speech, noise and scene lists; resolve corpus file paths."""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

from avse.errors import ConfigError, MetadataError
from avse.utils.fs import file_name_problem

SPLITS = ("train", "dev", "test")
INTERFERER_TYPES = ("speech", "noise")


class SpeechEntry(TypedDict, total=False):
    """One entry of target_speech_list.json / masker_speech_list.json (extra fields are kept)."""

    wavfile: str  # file stem, no extension
    dataset: str  # split: train, dev or test
    nsamples: int
    speaker: str
    text: str
    engine: str
    voice: str
    nframes: int


class NoiseEntry(TypedDict, total=False):
    """One entry of masker_noise_list.json (extra fields are kept)."""

    ID: str
    # "class" is a keyword: it is read as entry["class"]
    type: str  # always "noise"
    dataset: str
    nsamples: int


class SceneInterferer(TypedDict, total=False):
    """The ``interferer`` field of a scene: which file, from which sample."""

    type: str  # "speech" or "noise"
    name: str  # wavfile (speech) or ID (noise)
    offset: int  # first sample read from the interferer file


class Scene(TypedDict, total=False):
    """One entry of scenes.{split}.json (AVSE field names; extra fields are kept)."""

    scene: str  # "S00001"
    dataset: str
    target: dict[str, Any]  # {"name", "speaker", ...}
    duration: int  # samples of the rendered scene (target + pre + post)
    interferer: SceneInterferer
    interferers: list[SceneInterferer]  # ours, only when a scene has several
    SNR: float
    pre_samples: int
    post_samples: int


# ---------------------------------------------------------------------------
# Paths of the AVSE corpus layout
# ---------------------------------------------------------------------------


def metadata_dir(root: str | Path) -> Path:
    """ROOT/metadata."""
    return Path(root) / "metadata"


def target_speech_list_path(root: str | Path) -> Path:
    """ROOT/metadata/target_speech_list.json."""
    return metadata_dir(root) / "target_speech_list.json"


def masker_speech_list_path(root: str | Path) -> Path:
    """ROOT/metadata/masker_speech_list.json."""
    return metadata_dir(root) / "masker_speech_list.json"


def masker_noise_list_path(root: str | Path) -> Path:
    """ROOT/metadata/masker_noise_list.json."""
    return metadata_dir(root) / "masker_noise_list.json"


def scenes_path(root: str | Path, dataset: str) -> Path:
    """ROOT/metadata/scenes.{dataset}.json."""
    return metadata_dir(root) / f"scenes.{dataset}.json"


def target_wav_path(root: str | Path, split: str, wavfile: str) -> Path:
    """ROOT/{split}/targets/{wavfile}.wav."""
    return Path(root) / split / "targets" / f"{wavfile}.wav"


def target_video_path(root: str | Path, split: str, wavfile: str) -> Path:
    """ROOT/{split}/targets_video/{wavfile}.mp4."""
    return Path(root) / split / "targets_video" / f"{wavfile}.mp4"


def target_landmarks_path(root: str | Path, split: str, wavfile: str) -> Path:
    """ROOT/{split}/targets_landmarks/{wavfile}.npz."""
    return Path(root) / split / "targets_landmarks" / f"{wavfile}.npz"


def interferer_wav_path(root: str | Path, split: str, kind: str, name: str) -> Path:
    """ROOT/{split}/interferers/{kind}/{name}.wav with kind "speech" or "noise"."""
    if kind not in INTERFERER_TYPES:
        raise ValueError(f"interferer type must be one of {INTERFERER_TYPES}, got {kind!r}")
    return Path(root) / split / "interferers" / kind / f"{name}.wav"


def scenes_dir(root: str | Path, split: str) -> Path:
    """ROOT/{split}/scenes, where rendered scenes go."""
    return Path(root) / split / "scenes"


def target_paths(root: str | Path, split: str, entry: dict[str, Any]) -> dict[str, Path]:
    """Paths of a target speech entry: {"wav", "video", "landmarks"}."""
    name = entry["wavfile"]
    return {
        "wav": target_wav_path(root, split, name),
        "video": target_video_path(root, split, name),
        "landmarks": target_landmarks_path(root, split, name),
    }


def interferer_path(root: str | Path, split: str, entry: dict[str, Any]) -> Path:
    """Wav path of a masker entry: a speech-list entry (``wavfile``) or a noise-list entry (``ID``),
    or a scene's ``interferer`` dict (``type`` + ``name``)."""
    if "type" in entry and "name" in entry:
        return interferer_wav_path(root, split, entry["type"], entry["name"])
    if "wavfile" in entry:
        return interferer_wav_path(root, split, "speech", entry["wavfile"])
    return interferer_wav_path(root, split, "noise", entry["ID"])


# ---------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------


def _read_json_list(path: str | Path) -> tuple[Path, list[Any]]:
    path = Path(path)
    if not path.exists():
        raise MetadataError(path, "no such file")
    if path.is_dir():
        raise MetadataError(path, "is a folder, not a JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MetadataError(path, f"unreadable ({err.__class__.__name__}: {err})".replace("\n", " ")) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MetadataError(path, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    if not isinstance(data, list):
        raise MetadataError(path, f"expected a JSON list of entries, got a JSON {_json_kind(data)}")
    if not data:
        raise MetadataError(path, "empty list: no entries")
    return path, data


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_Check = tuple[str, Callable[[Any], bool], str]

_STR: Callable[[Any], bool] = _is_str
_POS_INT: Callable[[Any], bool] = lambda v: _is_int(v) and v > 0  # noqa: E731
_NONNEG_INT: Callable[[Any], bool] = lambda v: _is_int(v) and v >= 0  # noqa: E731
_SPEAKER: Callable[[Any], bool] = lambda v: _is_str(v) or _is_int(v)  # noqa: E731

_SPEECH_FIELDS: list[_Check] = [
    ("wavfile", _STR, "a non-empty string"),
    ("dataset", _STR, "a non-empty string"),
    ("nsamples", _POS_INT, "a positive integer"),
    ("speaker", _SPEAKER, "a string or an integer"),
]
_NOISE_FIELDS: list[_Check] = [
    ("ID", _STR, "a non-empty string"),
    ("class", _STR, "a non-empty string"),
    ("type", lambda v: v == "noise", '"noise"'),
    ("dataset", _STR, "a non-empty string"),
    ("nsamples", _POS_INT, "a positive integer"),
]
_SCENE_FIELDS: list[_Check] = [
    ("scene", _STR, "a non-empty string"),
    ("dataset", _STR, "a non-empty string"),
    ("target", lambda v: isinstance(v, dict), "an object"),
    ("duration", _POS_INT, "a positive integer"),
    ("interferer", lambda v: isinstance(v, dict), "an object"),
    ("SNR", _is_number, "a finite number"),
    ("pre_samples", _NONNEG_INT, "a non-negative integer"),
    ("post_samples", _NONNEG_INT, "a non-negative integer"),
]
_TARGET_FIELDS: list[_Check] = [("name", _STR, "a non-empty string")]
_INTERFERER_FIELDS: list[_Check] = [
    ("type", lambda v: v in INTERFERER_TYPES, '"speech" or "noise"'),
    ("name", _STR, "a non-empty string"),
    ("offset", _NONNEG_INT, "a non-negative integer"),
]


def _where(index: int, entry: Any, key: str) -> str:
    if isinstance(entry, dict) and isinstance(entry.get(key), (str, int)) and not isinstance(entry.get(key), bool):
        return f"entry {index} ({key} {entry[key]!r})"
    return f"entry {index}"


def _check_fields(path: Path, where: str, entry: Any, checks: list[_Check], prefix: str = "") -> None:
    if not isinstance(entry, dict):
        raise MetadataError(path, f"{where}: expected an object, got a JSON {_json_kind(entry)}")
    for key, ok, expected in checks:
        if key not in entry:
            raise MetadataError(path, f"{where}: missing field '{prefix}{key}'")
        if not ok(entry[key]):
            raise MetadataError(path, f"{where}: field '{prefix}{key}' must be {expected}, got {entry[key]!r}")


def safe_name(value: Any, path: str | Path, what: str) -> str:
    """``value`` if it is a plain file name (:func:`avse.utils.fs.file_name_problem`), else a one-line
    MetadataError naming ``path`` and ``what`` (the entry and field): names from metadata become paths."""
    problem = file_name_problem(value)
    if problem is not None:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise MetadataError(path, f"{what} must be a plain file name, got {shown} ({problem})")
    return value


def _check_names(path: Path, where: str, entry: dict[str, Any], keys: tuple[str, ...], prefix: str = "") -> None:
    """safe_name on each of ``keys`` that ``entry`` holds as a string (an integer speaker is a name too, and safe)."""
    for key in keys:
        if isinstance(entry.get(key), str):
            safe_name(entry[key], path, f"{where}: field '{prefix}{key}'")


def _check_unique(path: Path, entries: list[dict[str, Any]], keys: tuple[str, ...], what: str) -> None:
    seen: dict[tuple[Any, ...], int] = {}
    for i, e in enumerate(entries):
        k = tuple(e[key] for key in keys)
        if k in seen:
            raise MetadataError(path, f"entry {i}: duplicate {what} {k[-1]!r} (also entry {seen[k]})")
        seen[k] = i


def load_speech_list(path: str | Path) -> list[SpeechEntry]:
    """Load and validate a speech list (target_speech_list.json or masker_speech_list.json).

    Returns the entries as dicts with every field kept. Raises MetadataError
    (one line) when the file is missing, not JSON, not a non-empty list, or an
    entry lacks ``wavfile``/``dataset``/``nsamples``/``speaker`` or has a bad
    value, or a ``wavfile`` repeats within a split. ``wavfile``, ``dataset``
    and a string ``speaker`` become parts of paths, so each must be a plain
    file name (:func:`safe_name`), or the whole file is refused.
    """
    path, data = _read_json_list(path)
    for i, entry in enumerate(data):
        _check_fields(path, _where(i, entry, "wavfile"), entry, _SPEECH_FIELDS)
        _check_names(path, _where(i, entry, "wavfile"), entry, ("wavfile", "dataset", "speaker"))
    _check_unique(path, data, ("dataset", "wavfile"), "wavfile")
    return data


def speaker_patterns(name: str, patterns: Sequence[str] | None) -> tuple[str, ...]:
    """Glob patterns of speaker labels (``["queen-*"]``) as a tuple; None gives (). ConfigError naming
    ``name`` for a bare string (whose characters would be taken for patterns) or a non-string."""
    if patterns is None:
        return ()
    if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"{name} must be a list of speaker patterns such as ['queen-*'], got {patterns!r}")
    return tuple(patterns)


def by_speakers(entries: Sequence[SpeechEntry], patterns: Sequence[str]) -> list[SpeechEntry]:
    """The speech list entries whose ``speaker`` matches one of the glob ``patterns`` (case-sensitive), in order."""
    return [e for e in entries if any(fnmatch.fnmatchcase(str(e["speaker"]), p) for p in patterns)]


def load_noise_list(path: str | Path) -> list[NoiseEntry]:
    """Load and validate masker_noise_list.json.

    Every entry needs ``ID``, ``class``, ``type`` (= "noise"), ``dataset`` and
    ``nsamples``; other fields are kept. ``ID`` and ``dataset`` must be plain
    file names (:func:`safe_name`). Raises MetadataError (one line).
    """
    path, data = _read_json_list(path)
    for i, entry in enumerate(data):
        _check_fields(path, _where(i, entry, "ID"), entry, _NOISE_FIELDS)
        _check_names(path, _where(i, entry, "ID"), entry, ("ID", "dataset"))
    _check_unique(path, data, ("dataset", "ID"), "ID")
    return data


def load_scenes(path: str | Path) -> list[Scene]:
    """Load and validate a scenes.{split}.json file.

    Every scene needs ``scene``, ``dataset``, ``target.name``, ``duration``,
    ``interferer.{type,name,offset}``, ``SNR``, ``pre_samples`` and
    ``post_samples``; an optional ``interferers`` list (ours) is checked like
    ``interferer``. Scene names must be unique; ``scene``, ``dataset``,
    ``target.name``, ``target.speaker`` and every interferer ``name`` must be
    plain file names (:func:`safe_name`). Raises MetadataError (one line).
    """
    path, data = _read_json_list(path)
    for i, entry in enumerate(data):
        where = _where(i, entry, "scene")
        _check_fields(path, where, entry, _SCENE_FIELDS)
        _check_fields(path, where, entry["target"], _TARGET_FIELDS, prefix="target.")
        _check_fields(path, where, entry["interferer"], _INTERFERER_FIELDS, prefix="interferer.")
        _check_names(path, where, entry, ("scene", "dataset"))
        _check_names(path, where, entry["target"], ("name", "speaker"), prefix="target.")
        _check_names(path, where, entry["interferer"], ("name",), prefix="interferer.")
        if "interferers" in entry:
            extra = entry["interferers"]
            if not isinstance(extra, list) or not extra:
                raise MetadataError(path, f"{where}: field 'interferers' must be a non-empty list")
            for j, item in enumerate(extra):
                _check_fields(path, where, item, _INTERFERER_FIELDS, prefix=f"interferers[{j}].")
                _check_names(path, where, item, ("name",), prefix=f"interferers[{j}].")
    _check_unique(path, data, ("scene",), "scene")
    return data
