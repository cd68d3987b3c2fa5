"""Audio: reading any format, resampling, loudness, and spectral features."""

from avse.audio.io import load_audio, save_wav, resample, peak_normalize, loudness_normalize, blend_at_lufs

__all__ = ["load_audio", "save_wav", "resample", "peak_normalize", "loudness_normalize", "blend_at_lufs"]
