"""MBROLA voices: espeak-ng writes the phones, durations and pitch (.pho), mbrola speaks them with a recorded speaker's diphones."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

from avse.data.tts.errors import EngineMissingError, TtsError, VoiceMissingError
from avse.data.tts.phones import PAUSE, mbrola_to_arpabet
from avse.data.tts.process import engine_tmp, last_line, read_wav, run
from avse.data.tts.utterance import Raw
from avse.data.tts.voices import Voice
from avse.utils.fs import exclusive_lock

MBROLA_ENV = "AVSE_MBROLA"  # the folder `scripts/fetch_mbrola` filled (default data/mbrola)
# Languages whose espeak-ng rules read the corpus's English text letter by letter (3-4 times as long).
_UNREADABLE = ("he", "ja")
_PHO_LINE = re.compile(r"^(\S+)\s+(\d+(?:\.\d+)?)((?:\s+-?\d+(?:\.\d+)?)*)\s*$")


def mbrola_dir() -> Path:
    """The folder of ``scripts/fetch_mbrola`` (the program in usr/bin, voices in usr/share/mbrola): $AVSE_MBROLA, else ./data/mbrola."""
    return Path(os.environ.get(MBROLA_ENV) or "data/mbrola").resolve()


def _databases(folder: Path) -> list[Path]:
    """The voice database files ``folder`` holds (usr/share/mbrola/NAME/NAME), sorted."""
    return sorted(db for db in (folder / "usr" / "share" / "mbrola").glob("*/*") if db.name == db.parent.name)


def _espeak_voices_dir() -> Path | None:
    from avse.data.tts.espeak import _espeak

    try:
        return _espeak().data_path
    except TtsError:
        return None


_VOICES: dict[tuple[Path, tuple[str, ...]], tuple[tuple[str, str, str], ...]] = {}


def _mbrola_voices(folder: Path, dbs: list[Path] | None = None) -> tuple[tuple[str, str, str], ...]:
    """(database, espeak language, sex) of every MBROLA voice in ``folder`` that espeak-ng can drive, sorted by name.

    espeak-ng's voice file ``voices/mb/mb-NAME`` says the language whose
    phoneme rules read the text, and the speaker's gender; voices it gives no
    gender, that the folder lacks, or whose language reads English text
    letter by letter (Hebrew, Japanese), are left out. ``dbs``: ``_databases(folder)``, when the caller has it.
    """
    data = _espeak_voices_dir()
    if data is None or shutil.which("espeak-ng") is None or not (folder / "usr" / "bin" / "mbrola").is_file():
        return ()
    have = tuple(db.name for db in (_databases(folder) if dbs is None else dbs))
    if (folder, have) in _VOICES:  # asked again with the same databases fetched
        return _VOICES[(folder, have)]
    out = []
    for spec in sorted((data / "voices" / "mb").glob("mb-*")):
        fields: dict[str, str] = {}
        for line in spec.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("language", "gender", "mbrola") and parts[0] not in fields:
                fields[parts[0]] = parts[1]
        name = spec.name[3:]
        if fields.get("mbrola") != name or fields.get("gender") not in ("male", "female"):
            continue  # an "-en" variant of another database, or no gender given
        language = fields.get("language", "en")
        if language.split("-")[0] in _UNREADABLE or name not in have:
            continue
        out.append((name, language, fields["gender"]))
    _VOICES[(folder, have)] = tuple(out)
    return _VOICES[(folder, have)]


def mbrola_voices() -> tuple[tuple[str, str, str], ...]:
    """(database, language, sex) of the MBROLA voices installed in :func:`mbrola_dir` that espeak-ng can drive."""
    return _mbrola_voices(mbrola_dir())


_OVERLAYS: dict[tuple[Path, tuple[str, ...]], Path] = {}


def _overlay_ready(home: Path, data: Path, dbs: list[Path]) -> bool:
    target = home / "espeak-ng-data"
    if not (target / "mbrola").is_dir():
        return False
    return (target / "phontab").resolve() == (data / "phontab").resolve() and sorted(
        p.name for p in (target / "mbrola").iterdir()
    ) == [db.name for db in dbs]


def _espeak_data_overlay(folder: Path, dbs: list[Path] | None = None) -> Path:
    """A folder whose ``espeak-ng-data`` is the system's plus ``mbrola/NAME`` for each of ``folder``'s voices.

    espeak-ng (through ``$ESPEAK_DATA_PATH``) finds a voice's database at
    ``espeak-ng-data/mbrola/NAME``. Made once in ``folder/.espeak-N``, under a
    lock so that synthesis workers starting together wait for one another, and
    made again as a new folder (an older one is never changed while another
    process may be using it) when the voices fetched or the system's data differ.
    ``dbs``: ``_databases(folder)``, when the caller has it.
    """
    data = _espeak_voices_dir()
    if data is None:
        raise EngineMissingError("espeak-ng is not usable (MBROLA voices need it for their phones)")
    dbs = _databases(folder) if dbs is None else dbs
    key = (folder, tuple(db.name for db in dbs))
    if key in _OVERLAYS:  # made or checked by this process for the same voices: a finished one is never changed
        return _OVERLAYS[key]
    with exclusive_lock(folder / ".espeak.lock"):
        made = sorted(int(p.name[8:]) for p in folder.glob(".espeak-*") if p.name[8:].isdigit())
        if made and _overlay_ready(folder / f".espeak-{made[-1]}", data, dbs):
            _OVERLAYS[key] = folder / f".espeak-{made[-1]}"
            return _OVERLAYS[key]
        home = folder / f".espeak-{made[-1] + 1 if made else 1}"
        staging = folder / f".espeak.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "espeak-ng-data" / "mbrola").mkdir(parents=True)
        for entry in data.iterdir():
            if entry.name != "mbrola":
                (staging / "espeak-ng-data" / entry.name).symlink_to(entry)
        for db in dbs:
            (staging / "espeak-ng-data" / "mbrola" / db.name).symlink_to(db)
        staging.rename(home)
        _OVERLAYS[key] = home
        return home


def parse_pho(text: str) -> list[tuple[str, float, list[tuple[float, float]]]]:
    """(phone, duration_ms, [(percent, f0_hz), ...]) of every phone line of an MBROLA .pho text."""
    out = []
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = _PHO_LINE.match(line)
        if m is None:
            raise TtsError(f"espeak-ng wrote a .pho line mbrola would not read: {line!r}")
        nums = [float(v) for v in m.group(3).split()]
        out.append((m.group(1), float(m.group(2)), list(zip(nums[0::2], nums[1::2]))))
    return out


def scale_pho(phones: list[tuple[str, float, list[tuple[float, float]]]], rate: float, pitch: float) -> list[tuple[str, int, list[tuple[float, float]]]]:
    """The phones ``rate`` times faster (whole ms, rounded on the running sum so no time drifts) and ``pitch`` semitones higher."""
    out = []
    factor = 2.0 ** (pitch / 12.0)
    start = 0.0
    for sym, dur, f0 in phones:
        end = start + dur / rate
        ms = int(round(end)) - int(round(start))
        start = end
        if ms <= 0:
            continue
        out.append((sym, ms, [(p, round(hz * factor, 1)) for p, hz in f0]))
    return out


def synth_mbrola(text: str, voice: Voice) -> Raw:
    """MBROLA database ``voice.name``'s audio of ``text``, its phones' end times those espeak-ng gave mbrola.

    mbrola speaks every phone for its duration; its audio ends within 20 ms of
    the last phone's end (checked; up to 13 ms measured over the 67 voices).
    """
    folder = mbrola_dir()
    dbs = _databases(folder)  # looked at once a call: a voice fetched meanwhile is found
    known = {name: lang for name, lang, _sex in _mbrola_voices(folder, dbs)}
    if voice.name not in known:
        have = ", ".join(sorted(known)) or "none"
        raise VoiceMissingError(f"no MBROLA voice {voice.name!r} in {folder} (has: {have}; scripts/fetch_mbrola fetches them)")
    env = {
        **os.environ,
        "ESPEAK_DATA_PATH": str(_espeak_data_overlay(folder, dbs)),
        "PATH": f"{folder / 'usr' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = run(["espeak-ng", "-q", "--pho", "-v", f"mb-{voice.name}", text], "espeak-ng", env=env)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise TtsError(f"espeak-ng gave no phones for MBROLA voice {voice.name}: {last_line(proc.stderr or proc.stdout)}")
    phones = scale_pho(parse_pho(proc.stdout), float(voice.rate), float(voice.pitch))
    with engine_tmp("mbrola") as tmp:
        pho, wav = Path(tmp) / "in.pho", Path(tmp) / "out.wav"
        pho.write_text("".join(f"{s} {d}" + "".join(f" {p:g} {hz:g}" for p, hz in f0) + "\n" for s, d, f0 in phones))
        db = folder / "usr" / "share" / "mbrola" / voice.name / voice.name
        proc = run([str(folder / "usr" / "bin" / "mbrola"), "-e", str(db), str(pho), str(wav)], "mbrola", env=env)
        if proc.returncode != 0:
            raise TtsError(f"mbrola failed: {last_line(proc.stderr or proc.stdout)}")
        audio, sr = read_wav(wav, "mbrola")
    ends, t = [], 0
    language = known[voice.name]
    for sym, ms, _f0 in phones:
        t += ms
        ends.append((mbrola_to_arpabet(sym, language), t / 1000.0))
    total = audio.shape[0] / sr
    if not math.isclose(t / 1000.0, total, abs_tol=0.02):
        raise TtsError(f"mbrola's audio ({total:.3f} s) does not last as long as its phones ({t / 1000.0:.3f} s)")
    if all(sym == PAUSE for sym, _ in ends):
        raise TtsError(f"MBROLA voice {voice.name} gave no speech phones for {text!r}")
    return Raw(audio=audio, sample_rate=sr, phone_ends=ends, words=[])
