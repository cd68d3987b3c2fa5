"""Masker speech of one corpus added to another, for training mixtures with voices a corpus was made without."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from avse.data.metadata import by_speakers, interferer_wav_path, load_speech_list, masker_speech_list_path
from avse.errors import ConfigError, MetadataError
from avse.utils.fs import atomic_path, ensure_dir, write_json


def _same_file(a: Path, b: Path) -> bool:
    return b.is_file() and (os.path.samefile(a, b) or a.read_bytes() == b.read_bytes())


def add_masker_speech(src: str | Path, dst: str | Path, speakers: Sequence[str], dataset: str = "train") -> dict[str, int]:
    """Add ``src``'s masker speech of the speakers matching ``speakers`` (glob patterns) in ``dataset`` to ``dst``.

    The wavs are hard-linked (copied, atomically, across file systems) into ``dst``'s
    interferers/speech folder and their entries appended to its
    masker_speech_list.json, which is written last and atomically: a run
    stopped half-way leaves the list as it was, and running it again finishes
    the job. Entries ``dst`` already holds, with the same audio, are skipped; a
    name ``dst`` holds with other audio is refused before anything is written.
    Returns ``{"added", "skipped", "speakers"}``.
    """
    src, dst = Path(src), Path(dst)
    for root in (src, dst):
        if not masker_speech_list_path(root).is_file():
            raise MetadataError(masker_speech_list_path(root), "missing: not a corpus (make one with avse synth)")
    if not speakers:
        raise ConfigError("add_masker_speech: no speaker patterns given")
    pick = by_speakers([e for e in load_speech_list(masker_speech_list_path(src)) if e["dataset"] == dataset], speakers)
    if not pick:
        raise ConfigError(f"{src}: no masker speech of {dataset!r} by a speaker matching {', '.join(speakers)}")
    have = load_speech_list(masker_speech_list_path(dst))
    held = {(e["dataset"], e["wavfile"]) for e in have}
    new, skipped = [], 0
    for e in pick:
        a = interferer_wav_path(src, dataset, "speech", e["wavfile"])
        b = interferer_wav_path(dst, dataset, "speech", e["wavfile"])
        if not a.is_file():
            raise MetadataError(a, "missing: the corpus lists it as masker speech")
        if (dataset, e["wavfile"]) in held:
            if not _same_file(a, b):
                raise ConfigError(f"{dst} already holds masker speech {e['wavfile']!r} of {dataset!r}, with other audio")
            skipped += 1
            continue
        if b.exists() and not _same_file(a, b):
            raise ConfigError(f"{b} exists with other audio and is not in {dst}'s masker list")
        new.append((e, a, b))
    for _e, a, b in new:
        if not b.exists():
            ensure_dir(b.parent)
            try:
                os.link(a, b)
            except OSError as err:
                if err.errno != errno.EXDEV:
                    raise
                with atomic_path(b) as tmp:  # another file system: a copy, whole or not at all
                    shutil.copyfile(a, tmp)
    write_json(masker_speech_list_path(dst), [*have, *(e for e, _, _ in new)])
    return {"added": len(new), "skipped": skipped, "speakers": len({e["speaker"] for e, _, _ in new})}
