"""The errors speech synthesis raises."""

from __future__ import annotations

from avse.errors import AvseError


class TtsError(AvseError):
    """Speech synthesis failed: an engine or voice is missing, or an engine misbehaved."""


class EngineMissingError(TtsError):
    """A TTS engine is not installed or cannot start on this machine."""


class VoiceMissingError(TtsError):
    """The engine runs but does not have the requested voice."""
