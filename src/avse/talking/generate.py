"""`avse talk`: a face (image or video) and speech in, a lip-synced talking-face video out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from avse.errors import ConfigError, MediaError, NoFaceError
from avse.talking.audio import audio_windows
from avse.talking.model import TalkingFaceConfig, TalkingFaceNet, lower_face_mask
from avse.video.roi import FACE_SIZE, face_crops, face_matrices

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: frames the generator sees at once (with CONTEXT frames either side that are computed and dropped)
CHUNK = 100
CONTEXT = 4
#: pixels over which the pasted crop fades out towards its left, right and bottom edges
EDGE_FEATHER = 6


def load_generator(path: str | Path | None = None) -> tuple[TalkingFaceNet, dict[str, Any]]:
    """A talking-face checkpoint (default: the shipped one) -> (generator in eval mode, its ``extra``)."""
    from avse.api import PRETRAINED_DIR
    from avse.models.checkpoint import read_checkpoint

    path = Path(path) if path is not None else PRETRAINED_DIR / "talking_face.avse.pt"
    ckpt = read_checkpoint(path)
    if ckpt["model"] != "talking_face":
        raise MediaError(path, "not a talking-face checkpoint (its 'model' is not 'talking_face')")
    cfg_d = dict(ckpt["config"])
    cfg_d["channels"] = tuple(cfg_d["channels"])
    net = TalkingFaceNet(TalkingFaceConfig(**cfg_d))
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()})
    net.generator.noise_mode = "const"  # the same noise on every frame: no flicker
    return net.eval(), dict(ckpt.get("extra", {}))


def _to_unit(crops: np.ndarray) -> Tensor:
    """uint8 [N, S, S, 3] -> float [N, 3, S, S] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0


def _to_uint8(x: Tensor) -> np.ndarray:
    """float [N, 3, S, S] in [-1, 1] -> uint8 [N, S, S, 3]."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def image_landmarks(frame: np.ndarray) -> dict[str, np.ndarray]:
    """The largest face of one RGB frame uint8 [H, W, 3] -> landmark dict (lips [1, 40, 2], eyes [1, 4, 2], nose [1, 2], ...).

    Raises NoFaceError when no face is found.
    """
    from avse.video.detect import FaceMeshDetector, to_landmark_dict

    with FaceMeshDetector(max_num_faces=4, static_image_mode=True) as det:
        faces = det.detect(frame)
    if not faces:
        raise NoFaceError("no face found in the image")
    best = max(faces, key=lambda d: float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))
    return to_landmark_dict(best.mesh[None])


class TalkingFace:
    """Talking-face generation: speech and a face -> face frames whose lips follow the speech.

    ``TalkingFace.from_pretrained()`` loads the shipped generator; ``crops`` works on aligned
    face crops, ``animate`` on whole frames (crop, generate, paste back), ``run`` on files.
    """

    def __init__(self, net: TalkingFaceNet, extra: Mapping[str, Any] | None = None):
        self.net = net.eval()
        self.extra = dict(extra or {})
        self.size = net.cfg.size

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> TalkingFace:
        """The generator in ``path`` (a ``*.avse.pt`` written by training), or the shipped one when None."""
        return cls(*load_generator(path))

    @torch.no_grad()
    def crops(self, audio: np.ndarray, reference: np.ndarray, driving: np.ndarray,
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """audio float32 [T] (16 kHz), reference uint8 [S, S, 3] and driving uint8 [N, S, S, 3]
        aligned face crops -> generated crops uint8 [N, S, S, 3] (N = the driving frames; the
        speech is cut or zero-padded to N frames of 640 samples).

        Frames are generated in chunks of ``CHUNK`` with ``CONTEXT`` frames of overlap, so the
        temporal convolutions see the same neighbours as on one long sequence.
        """
        n = len(driving)
        if n < 1 or reference.shape != (self.size, self.size, 3) or driving.shape[1:] != (self.size, self.size, 3):
            raise ConfigError(f"reference [{self.size}, {self.size}, 3] and driving [N >= 1, {self.size}, {self.size}, 3] "
                              f"expected, got {reference.shape} and {driving.shape}")
        cfg = self.net.cfg
        x = np.zeros(n * SAMPLES_PER_FRAME, np.float32)
        m = min(len(audio), len(x))
        x[:m] = np.asarray(audio, np.float32)[:m]
        wins = audio_windows(x, n, kind=cfg.audio_kind, width=cfg.audio_width)  # [N, C, W]
        ref = _to_unit(reference[None])  # [1, 3, S, S]
        out = np.empty_like(driving)
        for s in range(0, n, CHUNK):
            a, b = max(0, s - CONTEXT), min(n, s + CHUNK + CONTEXT)
            res = self.net(wins[None, a:b], ref, _to_unit(driving[a:b])[None])["frames"][0]  # [L, 3, S, S]
            e = min(n, s + CHUNK)
            out[s:e] = _to_uint8(res[s - a : e - a])
            if progress is not None:
                progress(e, n)
        return out

    def paste_mask(self) -> np.ndarray:
        """Where a generated crop replaces the frame, float32 [S, S] in [0, 1]: the lower face, faded at the edges."""
        mask = lower_face_mask(self.size)[0, 0].numpy().copy()  # [S, S]
        ramp = np.clip(np.arange(self.size, dtype=np.float32) / EDGE_FEATHER, 0, 1)
        edge = np.minimum(ramp, ramp[::-1])  # [S]: 0 at the borders
        return mask * np.minimum(edge[None, :], edge[:, None])

    def animate(self, frames: np.ndarray, landmarks: Mapping[str, Any], audio: np.ndarray,
                reference: int = 0, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """frames uint8 [N, H, W, 3] RGB with their landmarks (lips [N, 40, 2], eyes, nose) and
        speech float32 [T] -> frames uint8 [N, H, W, 3] with the lower face regenerated and
        pasted back (the crop warped back into the frame and blended with ``paste_mask``).
        ``reference`` is the frame whose face gives the mouth's look.
        """
        mats = face_matrices(landmarks, self.size)  # [N, 2, 3]
        crops = face_crops(frames, mats, self.size)  # [N, S, S, 3]
        gen = self.crops(audio, crops[reference], crops, progress)
        mask = self.paste_mask()
        out = np.empty_like(frames)
        h, w = frames.shape[1:3]
        for i in range(len(frames)):
            inv = cv2.invertAffineTransform(mats[i])
            face = cv2.warpAffine(gen[i], inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            alpha = cv2.warpAffine(mask, inv, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)[..., None]
            out[i] = np.round(frames[i] * (1.0 - alpha) + face * alpha).astype(np.uint8)
        return out

    def run(self, face: str | Path, speech: str | Path, out: str | Path, progress: bool = True) -> dict[str, Any]:
        """Files in, a video out: ``face`` (an image, or a video whose frames are played forwards
        and backwards for as long as the speech lasts), ``speech`` (any audio or video file) ->
        ``out`` (H.264 + AAC, 25 fps, written atomically). Returns a small report.
        """
        import time

        from avse.api import read_input_audio
        from avse.video.io import has_video, iter_grid_frames

        t0 = time.perf_counter()
        face, speech, out = Path(face), Path(speech), Path(out)
        for p in (face, speech):
            if not p.is_file():
                raise MediaError(p, "no such file")
        if out.resolve() in (face.resolve(), speech.resolve()):
            raise ConfigError(f"{out}: the output would overwrite an input")
        audio = read_input_audio(speech, video=has_video(speech))
        n = max(1, -(-len(audio) // SAMPLES_PER_FRAME))
        if face.suffix.lower() in IMAGE_SUFFIXES:
            img = cv2.imread(str(face), cv2.IMREAD_COLOR)
            if img is None:
                raise MediaError(face, "not a readable image")
            src = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[None]  # [1, H, W, 3]
            lm = image_landmarks(src[0])
        else:
            from avse.video.track import extract_landmarks

            src = np.stack(list(iter_grid_frames(face, max_frames=n)))  # [M, H, W, 3]
            lm, _ = extract_landmarks(face, audio=np.zeros(len(src) * SAMPLES_PER_FRAME, np.float32))
            m = min(len(src), len(lm["lips"]))
            src, lm = src[:m], {k: (v[:m] if k != "lip_index" else v) for k, v in lm.items()}
        order = _ping_pong(len(src), n)  # [n] frame indices
        frames = src[order]
        lms = {k: (np.asarray(v)[order] if k != "lip_index" else v) for k, v in lm.items()}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="talk", unit="frame")
        try:
            made = self.animate(frames, lms, audio, progress=(lambda d, t: bar.update(d - bar.n)) if bar else None)
        finally:
            if bar is not None:
                bar.close()
        from avse.video.io import write_video

        write_video(out, made, fps=VIDEO_FPS, audio=audio[: n * SAMPLES_PER_FRAME], sample_rate=SAMPLE_RATE)
        secs = time.perf_counter() - t0
        return {"output": str(out), "frames": n, "seconds": round(secs, 2),
                "ms_per_frame": round(1000 * secs / n, 1), "size": list(frames.shape[1:3])}


def _ping_pong(m: int, n: int) -> np.ndarray:
    """n indices into m frames: 0, 1, .., m-1, m-2, .., 1, 0, 1, .. (a still image: all 0)."""
    if m <= 1:
        return np.zeros(n, np.int64)
    period = 2 * (m - 1)
    k = np.arange(n) % period
    return np.where(k < m, k, period - k)


__all__ = ["IMAGE_SUFFIXES", "load_generator", "image_landmarks", "TalkingFace", "FACE_SIZE"]
