"""Voices: a speaker identity (Voice) and the catalogue of engine voices and espeak-ng variants."""

from __future__ import annotations

from dataclasses import dataclass

from avse.errors import ConfigError

ENGINES = ("espeak", "flite", "festival")
# Engines a corpus uses only when asked (SynthConfig.engines): MBROLA's voices are a separate,
# non-free download (scripts/fetch_mbrola), so their presence must not change a default corpus.
EXTRA_ENGINES = ("mbrola",)
ALL_ENGINES = ENGINES + EXTRA_ENGINES


@dataclass(frozen=True)
class Voice:
    """One speaker identity: an engine voice plus a fixed pitch shift and speaking rate.

    engine: "espeak" | "flite" | "festival" | "mbrola".
    name: espeak language ("en-us", "en-gb-x-rp"), flite voice ("slt"),
        festival voice ("kal_diphone"; see VOICE_CATALOG), or MBROLA database
        ("us1", "de4"; ``avse.data.tts.mbrola.mbrola_voices``).
    variant: espeak voice variant ("f3", "m2"), None for the other engines.
    pitch: semitones above (+) or below (-) the voice's own pitch.
    rate: speaking-rate factor, 1.0 = the engine's default speed.
    """

    engine: str
    name: str
    variant: str | None = None
    pitch: int | float = 0.0
    rate: int | float = 1.0

    def __post_init__(self) -> None:
        if self.engine not in ALL_ENGINES:
            raise ConfigError(f"unknown TTS engine {self.engine!r}; expected one of {', '.join(ALL_ENGINES)}")
        if not self.name:
            raise ConfigError("a voice needs a name")
        if self.variant is not None and self.engine != "espeak":
            raise ConfigError(f"{self.engine} voices have no variants (got {self.variant!r})")
        if not (0.5 <= float(self.rate) <= 2.0):
            raise ConfigError(f"voice rate must be within [0.5, 2], got {self.rate}")
        if not (-12.0 <= float(self.pitch) <= 12.0):
            raise ConfigError(f"voice pitch shift must be within +-12 semitones, got {self.pitch}")

    @property
    def id(self) -> str:
        """Stable string id, e.g. ``"espeak-en-us+f3-p+1.50-r1.050"``."""
        base = self.name if self.variant is None else f"{self.name}+{self.variant}"
        return f"{self.engine}-{base}-p{float(self.pitch) + 0.0:+.2f}-r{float(self.rate):.3f}"


@dataclass(frozen=True)
class VoiceInfo:
    """A voice an engine ships: how it sounds and what can be changed."""

    engine: str
    name: str
    variant: str | None
    sex: str  # how it sounds: "male" | "female"
    accent: str
    pitch_control: bool  # whether Voice.pitch can move it

    def voice(self, pitch: float = 0.0, rate: float = 1.0) -> Voice:
        """This voice with a pitch shift (semitones) and a rate factor."""
        return Voice(self.engine, self.name, self.variant, pitch, rate)


ESPEAK_LANGUAGES = {"en-us": "American", "en-gb-x-rp": "British (RP)"}
# espeak-ng variants that sound like a (plain) man or woman; None = the language's default voice (male).
ESPEAK_VARIANTS = {
    None: "male", "m1": "male", "m2": "male", "m3": "male", "m4": "male", "m6": "male", "m7": "male",
    "f1": "female", "f2": "female", "f3": "female", "f4": "female", "f5": "female",
}

# Every voice used here (31 timbres; all present on the project machines):
#   espeak-ng  en-us and en-gb-x-rp, each as the default voice (male) and the
#              variants m1 m2 m3 m4 m6 m7 (male) and f1 f2 f3 f4 f5 (female);
#              other variants (klatt*, whisper, croak, ...) sound unnatural.
#   flite      slt (US female), kal16 (US male), awb (Scottish male), rms (US
#              male). "kal" is the 8 kHz build of kal16 and "awb_time" only says
#              the time, so neither is listed.
#   festival   cmu_us_slt_arctic_hts (US female, HTS), kal_diphone and
#              ked_diphone (US male, diphone).
# flite's rms and festival's HTS voice ignore pitch requests (checked: the
# samples are identical), so only their rate varies.
VOICE_CATALOG: tuple[VoiceInfo, ...] = (
    *(
        VoiceInfo("espeak", lang, var, sex, accent, True)
        for lang, accent in ESPEAK_LANGUAGES.items()
        for var, sex in ESPEAK_VARIANTS.items()
    ),
    VoiceInfo("flite", "slt", None, "female", "American", True),
    VoiceInfo("flite", "kal16", None, "male", "American", True),
    VoiceInfo("flite", "awb", None, "male", "Scottish", True),
    VoiceInfo("flite", "rms", None, "male", "American", False),
    VoiceInfo("festival", "cmu_us_slt_arctic_hts", None, "female", "American", False),
    VoiceInfo("festival", "kal_diphone", None, "male", "American", True),
    VoiceInfo("festival", "ked_diphone", None, "male", "American", True),
)


def catalog_entry(voice: Voice) -> VoiceInfo | None:
    """The VOICE_CATALOG entry of ``voice``'s engine voice (and variant); None when it is not listed."""
    for info in VOICE_CATALOG:
        if (info.engine, info.name, info.variant) == (voice.engine, voice.name, voice.variant):
            return info
    return None
