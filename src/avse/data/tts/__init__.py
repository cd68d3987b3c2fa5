"""Offline text-to-speech (espeak-ng, flite, festival, MBROLA): 16 kHz audio with ARPAbet phone and word timings.

``synthesize(text, voice)`` returns an :class:`Utterance` whose phones are
lowercase ARPAbet without stress digits plus ``"pau"``, contiguous, starting at
0 and ending at the last sample, so that they can drive lip motion frame by
frame. The timings come from the engines themselves: espeak-ng's C API
(through ctypes: phoneme events plus sample-counting output hooks, see
``espeak._espeak_phone_starts``), flite's ``-psdur`` segment end times and festival's
``Segment`` relation (measured against the audio energy, the best-fitting
shift is within 6 ms for every voice), and for an MBROLA voice the .pho file
that espeak-ng writes for mbrola, which speaks each phone for exactly its
duration (no word timings). Leading and trailing silence is made exactly
``KEEP_SILENCE_S`` long (cut or zero-padded, audio and timings shifted
together); the audio is peak normalised to ``PEAK`` (0.9) so that every
utterance has the same headroom.

Voice parameters are engine independent: ``pitch`` is a shift in semitones
from the voice's own pitch (0 = as shipped) and ``rate`` a speaking-rate
factor (1 = as shipped, 1.2 = 20 % faster). ``VOICE_CATALOG`` lists the voices
known here; ``speaker_voices`` draws distinct speaker identities from it.

The same text and voice give the same samples, whatever was synthesised
before: espeak-ng is loaded afresh for every call (its static state would
otherwise leak between calls), flite and festival run in a fresh process.

Modules: ``voices`` (Voice and the catalogue), ``phones`` (phone sets and the
maps into ARPAbet), ``utterance`` (Utterance and the shared post-processing),
one module per engine (``espeak``, ``flite``, ``festival``, ``mbrola``, with ``process``
for running a program), and ``speakers`` (what is installed, speaker identities).
"""

from __future__ import annotations

from avse.data.tts.errors import EngineMissingError, TtsError, VoiceMissingError
from avse.data.tts.espeak import synth_espeak
from avse.data.tts.festival import synth_festival
from avse.data.tts.flite import synth_flite
from avse.data.tts.mbrola import synth_mbrola
from avse.data.tts.phones import (
    ARPABET,
    ESPEAK_OTHER_TO_ARPABET,
    ESPEAK_TO_ARPABET,
    MRPA_TO_ARPABET,
    PAUSE,
    PHONES,
    RADIO_TO_ARPABET,
    VOWELS,
    espeak_to_arpabet,
)
from avse.data.tts.speakers import available_engines, available_voices, speaker_voices
from avse.data.tts.utterance import KEEP_SILENCE_S, PEAK, Phone, Utterance, Word, finalize
from avse.data.tts.voices import ENGINES, ESPEAK_LANGUAGES, ESPEAK_VARIANTS, VOICE_CATALOG, Voice, VoiceInfo
from avse.errors import ConfigError

__all__ = [
    "ARPABET",
    "ENGINES",
    "ESPEAK_LANGUAGES",
    "ESPEAK_OTHER_TO_ARPABET",
    "ESPEAK_TO_ARPABET",
    "ESPEAK_VARIANTS",
    "KEEP_SILENCE_S",
    "MRPA_TO_ARPABET",
    "PAUSE",
    "PEAK",
    "PHONES",
    "RADIO_TO_ARPABET",
    "VOICE_CATALOG",
    "VOWELS",
    "ConfigError",
    "EngineMissingError",
    "Phone",
    "TtsError",
    "Utterance",
    "Voice",
    "VoiceInfo",
    "VoiceMissingError",
    "Word",
    "available_engines",
    "available_voices",
    "espeak_to_arpabet",
    "speaker_voices",
    "synthesize",
]

_SYNTH = {"espeak": synth_espeak, "flite": synth_flite, "festival": synth_festival, "mbrola": synth_mbrola}


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speak ``text`` with ``voice``: audio [T] float32 at 16 kHz (peak 0.9) with phone and word timings.

    Raises EngineMissingError / VoiceMissingError when the engine or voice is
    not installed, ConfigError for a pitch shift on a voice that cannot do it,
    and TtsError when the engine fails.
    """
    text = " ".join(text.split())
    if not text:
        raise TtsError("nothing to say: the text is empty")
    return finalize(_SYNTH[voice.engine](text, voice), text, voice)
