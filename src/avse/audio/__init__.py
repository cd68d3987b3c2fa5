"""Audio: reading any format, resampling, loudness, and spectral features."""

from __future__ import annotations

from typing import Any

from avse.audio.io import blend_at_lufs, load_audio, loudness_normalize, peak_normalize, resample, save_wav

# Spectral features need torch: imported on first use, so that reading audio stays light.
_FEATURES = (
    "StftConfig",
    "MelConfig",
    "stft",
    "istft",
    "mel_filterbank",
    "mel_spectrogram",
    "mfcc",
    "spec_augment",
)

__all__ = ["load_audio", "save_wav", "resample", "peak_normalize", "loudness_normalize", "blend_at_lufs", *_FEATURES]


def __getattr__(name: str) -> Any:
    if name in _FEATURES:
        from avse.audio import features

        return getattr(features, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FEATURES))
