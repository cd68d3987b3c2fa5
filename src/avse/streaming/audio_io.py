"""Live audio for the streaming engine: the fixed-latency processor between a sound server and the engine, and its JACK and PortAudio clients."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from math import ceil
from pathlib import Path
from typing import Any

import numpy as np

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME
from avse.errors import ConfigError
from avse.streaming.camera import FaceFader, LipQueue
from avse.streaming.engine import StreamingEnhancer
from avse.streaming.resample import StreamResampler

#: SCHED_FIFO priorities of avse's threads when the system allows it: below JACK's (the server at 10, its
#: clients' process threads, ours included, at 5 by default), so that the audio callback is never kept waiting
ENGINE_PRIORITY = 3
LIPS_PRIORITY = 2
CAMERA_PRIORITY = 1
RECEIVER_PRIORITY = 2  # the thread receiving lip frames from the lip process
MAIN_PRIORITY = 1  # the thread that runs a LiveSession (status line), for the session's duration
#: how long a freewheeling callback waits for the worker's output before it plays zeros (an underrun) after all
FREEWHEEL_WAIT_S = 10.0


def try_realtime(priority: int) -> bool:
    """Put the calling thread under SCHED_FIFO at ``priority`` -> whether the system allowed it (root or an rtprio limit).

    Without it the threads that feed the audio callback compete with every
    other process for the CPU and fall behind on a busy machine.
    """
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, PermissionError):
        return False
    return True


#: the kernel's PM QoS interface: while a process holds it open with a value written, no CPU enters an idle
#: state whose exit latency is longer than that many microseconds (0: the cores poll instead of halting)
CPU_DMA_LATENCY = Path("/dev/cpu_dma_latency")


class IdlePoll:
    """Keeps the CPUs out of deep idle states while held (``/dev/cpu_dma_latency`` at 0 µs), where the system allows it.

    A block of audio arrives every few ms and the model's core sleeps in
    between. Waking a halted core (in a virtual machine: a halted vCPU)
    costs time and leaves caches cold: a 640-sample block of ``av-causal``
    took 3.6 ms of its thread's CPU after a 36 ms sleep, 2.6 ms with the
    cores polling, 1.2 ms back to back (``bench/bench_paced.py``). This is the usual low-latency audio
    setting: it costs power (an idle core spins in the kernel instead of
    halting), not CPU time of any process. ``acquire()`` -> whether it took
    effect (root, or write access to the device); ``release()`` restores the
    system's choice (closing the file is enough).
    """

    def __init__(self, path: Path = CPU_DMA_LATENCY):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether the request is in force."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Ask for 0 µs idle exit latency until ``release()`` -> whether the system allowed it."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except OSError:
            return False
        try:
            os.write(fd, struct.pack("i", 0))
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the request back (idempotent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class OutputFifo:
    """The output timeline: position q of the server's output stream holds processed sample q - ``prefill``.

    The worker ``write``s processed samples in order; the audio callback
    ``read``s the next n positions. A position not written in time is played
    as zero (an ``underrun``) and its sample, when it comes, is discarded, so
    the latency never changes. Thread-safe for one writer and one reader.
    """

    def __init__(self, prefill: int, capacity: int):
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, np.float32)  # ring: position q at q % capacity
        self.write_pos = int(prefill)  # next position the worker writes (positions before prefill are zeros)
        self.read_pos = 0
        self.underruns = 0  # reads that found samples missing
        self.missing = 0  # samples played as zeros for want of output
        self.underrun_at: list[int] = []  # output positions of the first 100 underruns
        self._lock = threading.Lock()

    def write(self, y: np.ndarray) -> None:
        """Append processed samples float [m] at the write position (those already due are dropped)."""
        with self._lock:
            q, y = self.write_pos, np.asarray(y, np.float32)
            self.write_pos += y.shape[0]
            skip = max(0, self.read_pos - q)  # already played as zeros
            y, q = y[skip:], q + skip
            if y.shape[0] > self.capacity:
                raise ConfigError("output FIFO overflow: the reader stopped")
            i = q % self.capacity
            k = min(y.shape[0], self.capacity - i)
            self._buf[i : i + k] = y[:k]
            self._buf[: y.shape[0] - k] = y[k:]

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` output samples -> float32 [n] (zeros where nothing was written in time)."""
        with self._lock:
            q = self.read_pos
            self.read_pos += n
            ready = max(0, min(n, self.write_pos - q))
            out = np.zeros(n, np.float32)
            idx = (q + np.arange(ready)) % self.capacity
            out[:ready] = self._buf[idx]
            self._buf[idx] = 0.0  # a ring slot is read once
            if ready < n:
                self.underruns += 1
                self.missing += n - ready
                if len(self.underrun_at) < 100:
                    self.underrun_at.append(q)
            return out


def min_prefill(engine_block: int, period: int, down: StreamResampler, up: StreamResampler, cycles: int = 4000) -> int:
    """The least output prefill (server samples) with which a block's output is due no earlier than the cycle its input completes.

    Simulates ``cycles`` callbacks of ``period`` server samples: input ->
    ``down`` -> whole engine blocks -> ``up``; the prefill must cover the
    largest shortfall of output made so far against output read so far.
    """
    worst = 0
    for c in range(1, cycles + 1):
        d = down.count(c * period)  # model-rate samples in
        made = up.count((d // engine_block) * engine_block)  # server samples out
        worst = max(worst, c * period - made)
    return worst


class LiveProcessor:
    """Fixed-latency live enhancement between a sound server's callback and a StreamingEnhancer.

    The audio callback calls ``callback(x, t)`` with the cycle's input float32
    [n] (server rate, n = ``period``) and the capture time ``t``
    (time.monotonic() s of its first sample) and plays the float32 [n] it
    returns; it only queues and copies. A worker thread resamples to 16 kHz
    (``StreamResampler``), picks the lip frame of each 40 ms audio frame
    (``lips``, a LipQueue, through a FaceFader; None: no video), runs the
    engine, resamples back, and writes the output timeline (``OutputFifo``).

    Latency, exact (server samples, ``latency``): ``prefill`` (the least
    buffering for whole engine blocks, ``min_prefill``, plus ``headroom_ms``
    rounded up to whole samples: the time the worker has to run a block) +
    the engine's look-ahead and the two resampling filters' delays. An
    output sample not ready in time is played as zero and counted (``fifo.underruns``).
    The worker asks for SCHED_FIFO at ``priority`` (0: never; ``realtime`` says
    whether it got it).

    ``freewheel``: set while the sound server runs its graph as fast as it can
    instead of in real time (JACK's freewheel mode, an offline bounce). Then
    the callback waits for the worker to have its output ready (up to
    ``FREEWHEEL_WAIT_S``) rather than play zeros: the output is the offline
    output, sample for sample. Lip frames are still matched by capture time,
    which freewheeling outruns, so it is meant for audio.
    """

    def __init__(
        self,
        engine: StreamingEnhancer,
        sample_rate: int,
        period: int,
        lips: LipQueue | None = None,
        headroom_ms: float = 20.0,
        record: bool = False,
        ramp_frames: int = 5,
        priority: int = ENGINE_PRIORITY,
    ):
        if engine.sample_rate != SAMPLE_RATE:
            raise ConfigError(f"the engine runs at {engine.sample_rate} Hz; live I/O expects {SAMPLE_RATE}")
        if period < 1 or headroom_ms < 0:
            raise ConfigError(f"period must be >= 1 and headroom >= 0, got {period}, {headroom_ms}")
        self.engine = engine
        self.sample_rate = int(sample_rate)
        self.period = int(period)
        self.lips = lips if engine.video else None
        self.fader = FaceFader(ramp_frames, width=max(1, engine.model.visual_channels))
        self.down = StreamResampler(self.sample_rate, SAMPLE_RATE)
        self.up = StreamResampler(SAMPLE_RATE, self.sample_rate)
        self.ratio = Fraction(self.sample_rate, SAMPLE_RATE)  # server samples per model sample
        self.headroom = ceil(headroom_ms * self.sample_rate / 1000.0)
        self.prefill = min_prefill(engine.block, self.period, self.down, self.up) + self.headroom
        self.fifo = OutputFifo(self.prefill, capacity=max(8 * self.sample_rate, 16 * self.period))
        self.recording: list[np.ndarray] | None = [] if record else None
        self.record_anchors: list[tuple[int, float]] = []  # (server position, capture time) of each cycle, when recording
        self._queue: deque[tuple[np.ndarray, float]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()  # notified after each block the worker writes
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.freewheel = False
        self.priority = int(priority)
        self.realtime = False  # whether the worker runs under SCHED_FIFO
        self.cycles = 0
        self.skipped = 0  # server samples of missed cycles, filled with silence
        self.in_samples = 0  # server samples received
        self.model_in = 0  # 16 kHz samples given to the engine
        self.frames_given = 0  # visual frames given to the engine
        self.block_ms: deque[float] = deque(maxlen=40000)  # engine time per block, ms (the last 40000: 26 min at 640)
        self.blocks_timed = 0  # entries ever appended to block_ms (block_ms[0] is entry blocks_timed - len(block_ms))
        self.busy_s = 0.0  # worker time spent processing
        self.started: float | None = None  # time.monotonic() of the first callback
        self._anchor = (0, 0.0)  # (server position, capture time) of the latest cycle's first sample
        self.mode_log: list[tuple[int, str]] = []  # (visual frame index, fader mode) at each change
        self.visual_trace: deque[tuple[int, float, float]] = deque(maxlen=3000)  # (frame index, fader gain, mouth opening given)

    # --- latency -----------------------------------------------------------------------------------
    @property
    def latency(self) -> Fraction:
        """Input-to-output latency in server samples (exact): prefill + r (engine delay + down filter) + up filter."""
        return self.prefill + self.ratio * (self.engine.delay + self.down.delay) + self.up.delay

    @property
    def latency_ms(self) -> float:
        """Input-to-output latency in milliseconds."""
        return 1000.0 * float(self.latency) / self.sample_rate

    def describe(self) -> dict[str, Any]:
        """The engine's ``describe()`` plus the live path: rates, period, prefill, headroom, filter delays, total latency."""
        return dict(
            self.engine.describe(),
            server_rate=self.sample_rate,
            period=self.period,
            prefill_samples=self.prefill,
            headroom_samples=self.headroom,
            resample_delay_ms=round(1000.0 * (self.down.delay_seconds + self.up.delay_seconds), 4),
            live_latency_samples=float(self.latency),
            live_latency_ms=round(self.latency_ms, 4),
            realtime_worker=self.realtime,
        )

    # --- life cycle --------------------------------------------------------------------------------
    def start(self) -> LiveProcessor:
        """Warm the engine up (a few blocks of silence, then a fresh stream) and start the worker thread; returns self.

        Also, process-wide: shortens the interpreter's GIL switch interval to
        at most 1 ms (the audio callback waits for the GIL, and the default 5 ms
        is most of a short period), and moves every object that exists now out
        of the garbage collector's reach until ``stop()`` (``gc.freeze``).
        """
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        gc.collect()  # what exists now is never collected while the stream runs: a full collection of it
        gc.freeze()  # holds the GIL for tens of ms (an xrun); young objects are still collected
        for _ in range(4):  # first calls allocate and plan: slower than the rest
            self.engine.push(np.zeros(self.engine.block, np.float32), np.zeros((1, self.engine.model.visual_channels), np.float32) if self.engine.video else None)
        self.engine.reset()
        self._thread = threading.Thread(target=self._work, name="avse-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the worker (what is queued is processed first); the garbage collector sees every object again."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        gc.unfreeze()

    # --- the audio callback side -------------------------------------------------------------------
    def skip(self, n: int, t: float) -> None:
        """``n`` server samples the callback never saw (a missed cycle), from capture time ``t``: silence in, output positions passed."""
        self.callback(np.zeros(n, np.float32), t)
        self.skipped += n

    def callback(self, x: np.ndarray, t: float) -> np.ndarray:
        """One cycle: input float [n] captured from time ``t`` (monotonic s) -> output float32 [n] to play now."""
        if self.started is None:
            self.started = t
        self._queue.append((np.array(x, dtype=np.float32, copy=True), t))
        self._wake.set()
        self.cycles += 1
        if self.freewheel:
            self._wait_for_output(len(x))
        return self.fifo.read(len(x))

    def _wait_for_output(self, n: int) -> None:
        """Block until the next ``n`` output positions are written (the prefill makes them computable from the input so far)."""
        deadline = time.monotonic() + FREEWHEEL_WAIT_S
        with self._done:
            while self.fifo.write_pos < self.fifo.read_pos + n and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return
                self._done.wait(min(left, 0.1))

    # --- the worker --------------------------------------------------------------------------------
    def _work(self) -> None:
        self.realtime = try_realtime(self.priority)
        try:
            while True:
                self._wake.wait(0.1)
                self._wake.clear()
                while self._queue:
                    x, t = self._queue.popleft()
                    self._process(x, t)
                    if self.freewheel:
                        with self._done:
                            self._done.notify_all()
                if self._stop.is_set() and not self._queue:
                    return
        except BaseException as err:  # reported by the session; the callback keeps playing zeros
            self.error = err
            with self._done:
                self._done.notify_all()

    def _time_of(self, j: int) -> float:
        """Capture time (monotonic s) of 16 kHz stream sample ``j``."""
        pos, t = self._anchor
        server = (j - float(self.down.delay)) * float(self.ratio)
        return t + (server - pos) / self.sample_rate

    def _frames_for(self, d_total: int) -> np.ndarray | None:
        """The visual frames the engine needs for every block it can now run -> float32 [f, 82] or None."""
        if not self.engine.video:
            return None
        runnable = (d_total // self.engine.block) * self.engine.block  # samples the engine will have run
        need = (runnable - 1) // SAMPLES_PER_FRAME + 1 if runnable else 0
        rows = []
        while self.frames_given < need:
            f = self.frames_given
            lip = self.lips.take(self._time_of(f * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2)) if self.lips else None
            before = self.fader.mode
            rows.append(self.fader.step(None if lip is None else lip.features))
            self.visual_trace.append((f, self.fader.gain, float(rows[-1][-2])))
            if self.fader.mode != before or not self.mode_log:
                self.mode_log.append((f, self.fader.mode))
            self.frames_given += 1
        return np.stack(rows) if rows else None

    def _process(self, x: np.ndarray, t: float) -> None:
        t0 = time.perf_counter()
        self._anchor = (self.in_samples, t)
        if self.recording is not None:
            self.record_anchors.append(self._anchor)
        self.in_samples += x.shape[0]
        x16 = self.down.push(x)  # [d]
        self.model_in += x16.shape[0]
        frames = self._frames_for(self.model_in)
        y16 = self.engine.push(x16, frames)  # [m], m a multiple of the block
        if y16.ndim == 2:
            y16 = y16[0]  # several outputs: the first is the target
        if self.recording is not None and y16.shape[0]:
            self.recording.append(y16)
        self.fifo.write(self.up.push(y16))
        dt = time.perf_counter() - t0
        self.busy_s += dt
        if y16.shape[0]:
            self.block_ms.append(1e3 * dt * self.engine.block / y16.shape[0])
            self.blocks_timed += 1

    def recorded(self) -> np.ndarray:
        """The enhanced 16 kHz stream so far, aligned with the 16 kHz input (the engine's delay removed) -> float32 [T]."""
        if not self.recording:
            return np.zeros(0, np.float32)
        y = np.concatenate(self.recording)
        return y[self.engine.delay :]

    def recorded_clock(self) -> tuple[float, float]:
        """When ``recorded()``'s sample 0 was captured (monotonic s) and the sound card's rate over the nominal one (``audio_clock``)."""
        from avse.streaming.record import audio_clock

        t0, ratio = audio_clock(np.array(self.record_anchors, np.float64), self.sample_rate)
        # recorded() sample j is 16 kHz stream sample j, which came from server position (j - down filter's delay) * r
        return t0 - float(self.down.delay) * float(self.ratio) / (self.sample_rate * ratio), ratio


class JackAudio:
    """A JACK client with ports ``NAME:in`` and ``NAME:out`` running a LiveProcessor in its process callback.

    ``make(sample_rate, period)`` builds the LiveProcessor once the server's
    rate and period are known. ``server``: the JACK server name (None: the
    default, or $JACK_DEFAULT_SERVER). ``connect``: connect the first
    physical capture port to ``in`` and ``out`` to the physical playback
    ports. Capture times: the cycle start (jack_frames_since_cycle_start)
    minus one period. ``xruns``: the server's xrun notifications. While the
    server freewheels, the processor waits for its engine in the callback
    (``LiveProcessor.freewheel``); ``set_freewheel`` asks the server for it.
    """

    def __init__(self, make, name: str = "avse", server: str | None = None, connect: bool = False):
        try:
            import jack
        except (ImportError, OSError) as err:
            raise ConfigError(f"JACK needs the JACK-Client package and libjack ({err}); install the live extra: pip install 'avse[live]'") from None
        jack.set_error_function(lambda message: None)  # libjack's own lines when no server runs: ours says it
        try:
            self.client = jack.Client(name, servername=server, no_start_server=True)
        except jack.JackOpenError:
            where = f"JACK server {server!r}" if server else "a JACK server"
            raise ConfigError(f"cannot connect to {where}: is jackd running? (or use --device N for PortAudio)") from None
        finally:
            jack.set_error_function(None)
        self.sample_rate = int(self.client.samplerate)
        self.period = int(self.client.blocksize)
        self.processor: LiveProcessor = make(self.sample_rate, self.period)
        self.inport = self.client.inports.register("in")
        self.outport = self.client.outports.register("out")
        self.xruns = 0
        self.first_frame: int | None = None  # JACK frame time of the first cycle
        self._next_frame = 0
        self.missed_cycles = 0  # jumps in the frame time between two of our cycles
        self.missed_at: list[int] = []  # JACK frame times where the first 100 missed stretches began
        self.xrun_at: list[int] = []  # JACK frame times of the first 100 xrun notifications
        self._closed = False
        self._load = 0.0
        self.connect = connect
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.set_freewheel_callback(self._freewheel)

    def _freewheel(self, starting: bool) -> None:
        self.processor.freewheel = bool(starting)

    def set_freewheel(self, on: bool, timeout: float = 5.0) -> None:
        """Ask the server to start (``on``) or stop freewheeling; returns once this client has been told (ConfigError after ``timeout`` s)."""
        self.client.set_freewheel(bool(on))
        deadline = time.monotonic() + timeout
        while self.processor.freewheel != bool(on):
            if time.monotonic() > deadline:
                raise ConfigError(f"the JACK server did not {'start' if on else 'stop'} freewheeling within {timeout} s")
            time.sleep(0.01)

    def _xrun(self, delay: float) -> None:
        self.xruns += 1
        if len(self.xrun_at) < 100:
            self.xrun_at.append(int(self.client.last_frame_time))

    def _process(self, frames: int) -> None:
        t = time.monotonic() - (self.client.frames_since_cycle_start + frames) / self.sample_rate
        now = int(self.client.last_frame_time)
        if self.first_frame is None:
            self.first_frame = now
        elif now != self._next_frame:  # cycles this client missed: keep the timeline (silence in, their output lost)
            gap = (now - self._next_frame) % (1 << 32)
            if 0 < gap < 60 * self.sample_rate:
                self.missed_cycles += 1
                if len(self.missed_at) < 100:
                    self.missed_at.append(self._next_frame)
                self.processor.skip(gap, t - gap / self.sample_rate)
        self._next_frame = (now + frames) % (1 << 32)
        self.outport.get_array()[:] = self.processor.callback(self.inport.get_array(), t)

    @property
    def ports(self) -> tuple[str, str]:
        """The full names of the input and output ports (e.g. "avse:in", "avse:out")."""
        return self.inport.name, self.outport.name

    def cpu_load(self) -> float:
        """The JACK server's DSP load in percent (the last one read, once the client is closed)."""
        if not self._closed:
            self._load = float(self.client.cpu_load())
        return self._load

    def start(self) -> None:
        """Start the worker, activate the client (and connect to the sound card's ports with ``connect``)."""
        self.processor.start()
        self.client.activate()
        if self.connect:
            capture = self.client.get_ports(is_physical=True, is_output=True, is_audio=True)
            playback = self.client.get_ports(is_physical=True, is_input=True, is_audio=True)
            if capture:
                self.client.connect(capture[0], self.inport)
            for p in playback[:2]:
                self.client.connect(self.outport, p)

    def stop(self) -> None:
        """Deactivate and close the client, then stop the worker."""
        try:
            self.cpu_load()
            self._closed = True
            self.client.deactivate()
            self.client.close()
        finally:
            self.processor.stop()


class SoundDeviceAudio:
    """PortAudio (``sounddevice``) duplex stream on ``device`` running a LiveProcessor in its callback, for machines without JACK.

    Opens mono input and output at 16 kHz when the device takes it, else at
    its default rate (the processor resamples). Capture times come from
    PortAudio's stream clock (inputBufferAdcTime) mapped onto time.monotonic().
    ``xruns``: callbacks flagged with an input overflow or output underflow.
    """

    def __init__(self, make, device: int | str | None = None, period: int = 320):
        try:
            import sounddevice as sd
        except (ImportError, OSError) as err:
            raise ConfigError(f"PortAudio needs the sounddevice package and libportaudio2 ({err}); install the live extra") from None
        self._sd = sd
        try:
            info = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as err:
            raise ConfigError(f"audio device {device!r}: {err}") from None
        rate = SAMPLE_RATE
        try:
            sd.check_input_settings(device=device, samplerate=rate, channels=1)
            sd.check_output_settings(device=device, samplerate=rate, channels=1)
        except (ValueError, sd.PortAudioError):
            rate = int(info["default_samplerate"])
        self.sample_rate = rate
        self.period = int(period) * rate // SAMPLE_RATE
        self.processor: LiveProcessor = make(self.sample_rate, self.period)
        self.xruns = 0
        self._load = 0.0
        self.stream = sd.Stream(device=device, samplerate=rate, blocksize=self.period, channels=1, dtype="float32",
                                latency="low", callback=self._callback)

    def _callback(self, indata, outdata, frames, when, status) -> None:
        if status.input_overflow or status.output_underflow:
            self.xruns += 1
        now = time.monotonic()
        lag = when.currentTime - when.inputBufferAdcTime if when.currentTime > 0 else frames / self.sample_rate
        outdata[:, 0] = self.processor.callback(indata[:, 0], now - lag)

    def cpu_load(self) -> float:
        """PortAudio's CPU load of the callback in percent (the last one read, once the stream is closed)."""
        if not self.stream.closed:
            self._load = 100.0 * float(self.stream.cpu_load)
        return self._load

    def start(self) -> None:
        """Start the worker and the stream."""
        self.processor.start()
        self.stream.start()

    def stop(self) -> None:
        """Stop and close the stream, then the worker."""
        try:
            self.cpu_load()
            self.stream.stop()
            self.stream.close()
        finally:
            self.processor.stop()


@contextlib.contextmanager
def dummy_jack_server(name: str, rate: int = SAMPLE_RATE, period: int = 320, timeout: float = 10.0) -> Iterator[str]:
    """Run ``jackd -n NAME -d dummy -r RATE -p PERIOD`` (a real JACK server with no sound card) for the duration -> its name.

    Waits until a client can connect; raises ConfigError when jackd is
    missing or does not come up within ``timeout`` s (its last output in the
    message). The server is stopped (SIGTERM, then SIGKILL) on exit.
    """
    import jack

    exe = shutil.which("jackd")
    if exe is None:
        raise ConfigError("jackd is not installed (Debian: apt-get install jackd2)")
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    log = tempfile.TemporaryFile("w+")  # jackd's output; a pipe nobody reads could fill and stall it
    proc = subprocess.Popen([exe, "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    jack.set_error_function(lambda message: None)  # "cannot connect" while it comes up is expected
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise ConfigError(f"jackd exited with code {proc.returncode}: {' '.join(log.read().split())[-300:]}")
            try:
                jack.Client("avse-probe", servername=name, no_start_server=True).close()
                break
            except jack.JackOpenError:
                if time.monotonic() > deadline:
                    raise ConfigError(f"jackd did not come up within {timeout} s") from None
                time.sleep(0.1)
        jack.set_error_function(None)
        yield name
    finally:
        jack.set_error_function(None)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


__all__ = ["CPU_DMA_LATENCY", "IdlePoll", "JackAudio", "LiveProcessor", "OutputFifo", "SoundDeviceAudio", "dummy_jack_server", "min_prefill", "try_realtime"]
