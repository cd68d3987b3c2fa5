"""festival in a subprocess running a scheme script that writes the audio and its Segment and Word timings."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

from avse.data.tts.errors import EngineMissingError, TtsError, VoiceMissingError
from avse.data.tts.phones import festival_to_arpabet
from avse.data.tts.process import engine_tmp, last_line, read_wav, run
from avse.data.tts.utterance import Raw, Word, delayed
from avse.data.tts.voices import Voice, catalog_entry
from avse.errors import ConfigError


@functools.lru_cache(maxsize=1)
def festival_voices() -> tuple[str, ...]:
    """The voices festival's ``voice.list`` names; () when festival is not installed (asked once per process)."""
    exe = shutil.which("festival")
    if exe is None:
        return ()
    with engine_tmp("festival") as tmp:
        script = Path(tmp) / "list.scm"
        script.write_text('(format t "AVSE_VOICES %l\\n" (voice.list))\n')
        proc = run([exe, "-b", str(script)], "festival")
    m = re.search(r"AVSE_VOICES \(([^)]*)\)", proc.stdout)
    return tuple(m.group(1).split()) if m else ()


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_script(text: str, voice: Voice, wav: Path, segs: Path) -> str:
    factor = 2.0 ** (float(voice.pitch) / 12.0)
    lines = [f"(voice_{voice.name})"]
    if voice.name.endswith("_hts"):
        # The HTS engine predicts its own durations; "-r" is its speed factor
        # and the durations it used are written back into the Segment relation.
        speed = f"{float(voice.rate):.6f}"
        lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speed}))))')
    else:
        lines.append(
            "(let ((ds (Parameter.get 'Duration_Stretch))) (if (not ds) (set! ds 1.0))"
            f" (Parameter.set 'Duration_Stretch (/ ds {float(voice.rate):.6f})))"
        )
        if factor != 1.0:
            lines.append(
                "(set! int_lr_params (mapcar (lambda (p) (if (member (car p) '(target_f0_mean target_f0_std))"
                f" (list (car p) (* {factor:.6f} (car (cdr p)))) p)) int_lr_params))"
            )
    lines += [
        f"(set! avse_utt (utt.synth (Utterance Text {_scheme_string(text)})))",
        f"(utt.save.wave avse_utt {_scheme_string(str(wav))} 'riff)",
        f"(set! avse_fd (fopen {_scheme_string(str(segs))} \"w\"))",
        "(format avse_fd \"phoneset %s\\n\" (Parameter.get 'PhoneSet))",
        "(mapcar (lambda (s) (format avse_fd \"p %s %f\\n\" (item.name s) (item.feat s \"end\")))"
        " (utt.relation.items avse_utt 'Segment))",
        "(mapcar (lambda (w) (format avse_fd \"w %s %f %f\\n\" (item.name w)"
        " (item.feat w \"R:SylStructure.daughter1.daughter1.segment_start\")"
        " (item.feat w \"R:SylStructure.daughtern.daughtern.segment_end\")))"
        " (utt.relation.items avse_utt 'Word))",
        "(fclose avse_fd)",
    ]
    return "\n".join(lines) + "\n"


def synth_festival(text: str, voice: Voice) -> Raw:
    """festival's audio of ``text`` with the end times of its Segment relation and the spans of its words."""
    exe = shutil.which("festival")
    if exe is None:
        raise EngineMissingError("festival is not installed (no festival on PATH)")
    voices = festival_voices()
    if voice.name not in voices:
        raise VoiceMissingError(f"festival has no voice {voice.name!r} (has: {', '.join(voices) or 'none'})")
    info = catalog_entry(voice)
    if float(voice.pitch) != 0.0 and (info is None or not info.pitch_control):
        raise ConfigError(f"festival voice {voice.name} cannot change pitch; use pitch=0")
    with engine_tmp("festival") as tmp:
        wav, segs, script = Path(tmp) / "out.wav", Path(tmp) / "segs.txt", Path(tmp) / "say.scm"
        script.write_text(_festival_script(text, voice, wav, segs))
        proc = run([exe, "-b", str(script)], "festival", cwd=tmp)
        if proc.returncode != 0 or not segs.exists():
            raise TtsError(f"festival failed: {last_line(proc.stderr or proc.stdout)}")
        audio, sr = read_wav(wav, "festival")
        rows = segs.read_text().splitlines()
    phoneset = "radio"
    phone_ends: list[tuple[str, float]] = []
    words: list[Word] = []
    for row in rows:
        parts = row.split()
        if len(parts) == 2 and parts[0] == "phoneset":
            phoneset = parts[1]
        elif len(parts) == 3 and parts[0] == "p":
            phone_ends.append((festival_to_arpabet(parts[1], phoneset, "festival"), float(parts[2])))
        elif len(parts) == 4 and parts[0] == "w":
            words.append((parts[1], float(parts[2]), float(parts[3])))
    if not phone_ends:
        raise TtsError("festival returned no segments")
    phone_ends, words = delayed(phone_ends, words, voice)
    return Raw(audio=audio, sample_rate=sr, phone_ends=phone_ends, words=words)
