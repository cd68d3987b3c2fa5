"""DNSMOS: no-reference speech quality (P.835 SIG/BAK/OVRL and P.808 MOS) from the DNS Challenge's ONNX models.

The models are not shipped with avse (they are CC BY 4.0 files of the DNS
Challenge, ``DNSMOS/sig_bak_ovr.onnx`` and ``DNSMOS/model_v8.onnx``): the
user gives the folder (or the files) that holds them. The scoring follows the
challenge's own ``dnsmos_local.py``:

- audio at 16 kHz, repeated end to end until it lasts at least 9.01 s;
- windows of 9.01 s every 1 s (``floor(T / fs) - 9.01 + 1`` of them, at least one);
- P.835: the raw waveform window into ``sig_bak_ovr.onnx`` -> raw SIG, BAK, OVRL,
  each mapped to MOS by the challenge's fitted polynomial (``POLY_*``);
- P.808: a log-mel spectrogram of the window minus its last 160 samples (321-point
  periodic Hann STFT, hop 160, centred with reflect padding, 120 Slaney mels,
  power; ``10 log10`` relative to the window's maximum floored at 1e-10 and
  clamped to 80 dB below it; then ``(x + 40) / 40``) into ``model_v8.onnx``;
- every score is the mean over the windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avse import SAMPLE_RATE
from avse.errors import ConfigError, MediaError

INPUT_SECONDS = 9.01
P835_FILE = "sig_bak_ovr.onnx"
P808_FILE = "model_v8.onnx"
#: raw model output -> MOS, highest power first (the challenge's numbers for the non-personalised model)
POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)
SCORES = ("SIG", "BAK", "OVRL", "P808")


@dataclass(frozen=True)
class DnsmosScore:
    """DNSMOS of one signal: P.835 ``sig``, ``bak``, ``ovrl`` (MOS, about 1..5), P.808 ``p808`` (NaN without its model)."""

    sig: float
    bak: float
    ovrl: float
    p808: float
    windows: int

    def as_dict(self) -> dict[str, Any]:
        """{"SIG", "BAK", "OVRL", "P808", "windows"} as plain numbers."""
        return {"SIG": self.sig, "BAK": self.bak, "OVRL": self.ovrl, "P808": self.p808, "windows": self.windows}


def p808_features(window: np.ndarray) -> np.ndarray:
    """The P.808 model's input for one window: audio float [L] at 16 kHz -> float32 [N, 120] (frames, mels)."""
    from avse.audio.features import MelConfig, mel_spectrogram

    cfg = MelConfig(
        sample_rate=SAMPLE_RATE, n_fft=321, win_length=321, hop_length=160, n_mels=120, norm="slaney", power=2.0
    )
    mel = mel_spectrogram(np.asarray(window, dtype=np.float32), cfg).double().numpy()  # [120, N]
    db = 10.0 * np.log10(np.maximum(mel, 1e-10)) - 10.0 * np.log10(max(float(mel.max()), 1e-10))  # [120, N]
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).T.astype(np.float32)  # [N, 120]


def dnsmos_windows(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The 9.01 s windows DNSMOS scores: audio float [T] -> float32 [W, 144160] (short inputs repeated end to end)."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.shape[0] == 0:
        raise ConfigError("DNSMOS needs a non-empty signal")
    length = int(INPUT_SECONDS * sample_rate)
    while x.shape[0] < length:
        x = np.concatenate([x, x])
    n = int(np.floor(x.shape[0] / sample_rate) - INPUT_SECONDS) + 1
    starts = [i * sample_rate for i in range(max(n, 1)) if i * sample_rate + length <= x.shape[0]]
    return np.stack([x[s : s + length] for s in starts])  # [W, L]


class Dnsmos:
    """DNSMOS with the ONNX models of ``model_dir`` (``sig_bak_ovr.onnx``, and ``model_v8.onnx`` for P.808 when there).

    ``threads`` caps ONNX Runtime's threads (1: one core). Raises ConfigError
    when the folder or the P.835 model is missing, or onnxruntime is not
    installed (the ``eval`` extra).
    """

    def __init__(self, model_dir: str | Path, threads: int = 1):
        folder = Path(model_dir)
        p835 = folder / P835_FILE if folder.is_dir() else folder
        if not p835.is_file():
            raise ConfigError(f"{folder}: no DNSMOS model here (expected {P835_FILE}, and {P808_FILE} for P.808)")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("DNSMOS needs onnxruntime: pip install 'avse[eval]'") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
        opts.log_severity_level = 3

        def session(path: Path) -> Any:
            try:
                return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime raises its own exception types for bad files
                raise MediaError(path, f"not a readable ONNX model ({type(err).__name__})") from None

        self._p835 = session(p835)
        p808 = p835.with_name(P808_FILE)
        self._p808 = session(p808) if p808.is_file() else None

    @property
    def has_p808(self) -> bool:
        """Whether the P.808 model was found next to the P.835 one."""
        return self._p808 is not None

    def score(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> DnsmosScore:
        """DNSMOS of ``audio`` float [T] (mono; other rates are resampled to 16 kHz) -> DnsmosScore."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sample_rate != SAMPLE_RATE:
            from avse.audio.io import resample

            x = resample(x, int(sample_rate), SAMPLE_RATE).astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ConfigError("DNSMOS needs a finite signal")
        raw, p808 = [], []
        for window in dnsmos_windows(x):
            raw.append(self._p835.run(None, {"input_1": window[None]})[0][0])  # [3]: SIG, BAK, OVRL (raw)
            if self._p808 is not None:
                feats = p808_features(window[:-160])[None]  # [1, N, 120]
                p808.append(float(self._p808.run(None, {"input_1": feats})[0][0][0]))
        r = np.asarray(raw, dtype=np.float64)  # [W, 3]
        sig = float(np.mean(np.polyval(POLY_SIG, r[:, 0])))
        bak = float(np.mean(np.polyval(POLY_BAK, r[:, 1])))
        ovrl = float(np.mean(np.polyval(POLY_OVRL, r[:, 2])))
        return DnsmosScore(sig, bak, ovrl, float(np.mean(p808)) if p808 else float("nan"), len(raw))


__all__ = ["SCORES", "Dnsmos", "DnsmosScore", "dnsmos_windows", "p808_features"]
