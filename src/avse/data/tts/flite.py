"""flite in a subprocess: segment end times from -psdur, words from one phone listing per word."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

from avse.data.tts.errors import EngineMissingError, TtsError, VoiceMissingError
from avse.data.tts.phones import PAUSE, festival_to_arpabet
from avse.data.tts.process import engine_tmp, last_line, read_wav, run
from avse.data.tts.utterance import PUNCT, Raw, Word, delayed, spans_from_ends
from avse.data.tts.voices import Voice, catalog_entry
from avse.errors import ConfigError

_FLITE_PHONE = re.compile(r"^([a-z#]+):([0-9]*\.?[0-9]+)$")


@functools.lru_cache(maxsize=1)
def flite_voices() -> tuple[str, ...]:
    """The voices ``flite -lv`` lists; () when flite is not installed (asked once per process)."""
    exe = shutil.which("flite")
    if exe is None:
        return ()
    proc = run([exe, "-lv"], "flite")
    if proc.returncode != 0:
        return ()
    listing = proc.stdout.split(":", 1)[-1]
    return tuple(listing.split())


def _word_tokens(text: str) -> list[str]:
    tokens = [t.strip(PUNCT) for t in text.split()]
    return [t for t in tokens if t]


def _words_from_phone_groups(
    words: list[str], groups: list[list[str]], phone_spans: list[tuple[str, float, float]]
) -> list[Word]:
    """Word spans from each word's phone count; [] when the counts do not match the phones."""
    speech = [(s, e) for sym, s, e in phone_spans if sym != PAUSE]
    if len(groups) != len(words) or sum(len(g) for g in groups) != len(speech) or any(not g for g in groups):
        return []
    out: list[Word] = []
    i = 0
    for word, group in zip(words, groups):
        out.append((word, speech[i][0], speech[i + len(group) - 1][1]))
        i += len(group)
    return out


def synth_flite(text: str, voice: Voice) -> Raw:
    """flite's audio of ``text`` with its segment end times and the word spans derived from them."""
    exe = shutil.which("flite")
    if exe is None:
        raise EngineMissingError("flite is not installed (no flite on PATH)")
    if voice.name not in flite_voices():
        raise VoiceMissingError(f"flite has no voice {voice.name!r} (has: {', '.join(flite_voices()) or 'none'})")
    info = catalog_entry(voice)
    if float(voice.pitch) != 0.0 and info is not None and not info.pitch_control:
        raise ConfigError(f"flite voice {voice.name} cannot change pitch; use pitch=0")
    settings = [
        "--setf", f"duration_stretch={1.0 / float(voice.rate):.6f}",
        "--setf", f"f0_shift={2.0 ** (float(voice.pitch) / 12.0):.6f}",
    ]
    with engine_tmp("flite") as tmp:
        wav = Path(tmp) / "out.wav"
        proc = run([exe, "-voice", voice.name, *settings, "-t", text, "-o", str(wav), "-psdur"], "flite")
        if proc.returncode != 0:
            raise TtsError(f"flite failed: {last_line(proc.stderr or proc.stdout)}")
        audio, sr = read_wav(wav, "flite")
    phone_ends = []
    for token in proc.stdout.split():
        m = _FLITE_PHONE.match(token)
        if m:
            phone_ends.append((festival_to_arpabet(m.group(1), "radio", "flite"), float(m.group(2))))
    if not phone_ends:
        raise TtsError("flite printed no phone timings")

    # Word alignment: flite prints no word times, so say the words one per
    # sentence (-ps, no audio) to learn how many phones each word has.
    tokens = _word_tokens(text)
    words: list[Word] = []
    if tokens:
        proc = run([exe, "-voice", voice.name, "-ps", "-t", ". ".join(tokens) + ".", "-o", "none"], "flite")
        groups: list[list[str]] = [[]]
        for token in proc.stdout.split():
            if token == "pau":
                if groups[-1]:
                    groups.append([])
            elif re.fullmatch(r"[a-z]+", token):
                groups[-1].append(token)
        groups = [g for g in groups if g]
        words = _words_from_phone_groups(tokens, groups, spans_from_ends(phone_ends))
    phone_ends, words = delayed(phone_ends, words, voice)
    return Raw(audio=audio, sample_rate=sr, phone_ends=phone_ends, words=words)
