"""The talking-face generator: its layers, data, training, generation, paste-back, baselines and measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avse.data.prepare import load_cached, prepare
from avse.errors import ConfigError, MediaError
from avse.talking.audio import MEL_PER_FRAME, audio_windows, frame_windows
from avse.talking.baselines import energy_mouth, speech_opening, still
from avse.talking.generate import TalkingFace, _ping_pong
from avse.talking.metrics import identity_similarity, lip_distance, psnr, ssim
from avse.talking.model import Discriminator, ModulatedConv, TalkingFaceConfig, TalkingFaceNet, lower_face_mask
from avse.talking.train import FaceWindows, cache_items, fit_talking, save_generator
from avse.video.roi import FACE_SIZE, face_crops, face_matrices, face_reference, transform_points

SMALL = {"channels": (16, 16, 8, 8, 8), "w_dim": 16, "audio_dim": 16, "visual_dim": 16}


@pytest.fixture(scope="module")
def face_cache(tiny_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces") / "cache"
    report = prepare(tiny_corpus, out, jobs=1, progress=False, faces=True)
    assert report["failed"] == {}
    return out


def _small_net(seed: int = 0) -> TalkingFaceNet:
    torch.manual_seed(seed)
    return TalkingFaceNet(TalkingFaceConfig(**SMALL))


# --- layers ---------------------------------------------------------------------------------------


def test_modulated_conv_equals_a_per_sample_modulated_kernel():
    torch.manual_seed(0)
    conv = ModulatedConv(6, 5, 3, w_dim=4, noise=False, activate=False)
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 4)
    s = conv.affine(w)  # [B, cin]
    want = []
    for b in range(3):  # StyleGAN2's definition: scale the kernel's input channels, demodulate, convolve
        k = conv.weight * conv.scale * s[b][None, :, None, None]
        k = k * torch.rsqrt(k.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        want.append(F.conv2d(x[b : b + 1], k, padding=1) + conv.bias[None, :, None, None])
    torch.testing.assert_close(conv(x, w), torch.cat(want), atol=1e-5, rtol=1e-5)


def test_generator_repaints_only_the_lower_face_and_codes_have_their_shapes():
    net = _small_net()
    b, t = 2, 5
    audio = torch.randn(b, t, 80, 16)
    ref = torch.rand(b, 3, 96, 96) * 2 - 1
    drv = torch.rand(b, t, 3, 96, 96) * 2 - 1
    out = net(audio, ref, drv)
    assert out["frames"].shape == (b, t, 3, 96, 96) and out["raw"].shape == (b, t, 3, 96, 96)
    assert out["canonical"].shape == (b, 16) and out["motion"].shape == (b, t, 16)
    mask = lower_face_mask()[0, 0]
    top = int((mask == 0).all(dim=1).nonzero().max())  # last row untouched
    torch.testing.assert_close(out["frames"][..., : top + 1, :], drv[..., : top + 1, :])
    assert not torch.allclose(out["frames"][..., 80:, :], drv[..., 80:, :])
    # the speech steers the lower face
    other = net(torch.randn(b, t, 80, 16), ref, drv)["frames"]
    assert (other[..., 60:, :] - out["frames"][..., 60:, :]).abs().mean() > 1e-4


def test_generator_refuses_mismatched_inputs():
    net = _small_net()
    with pytest.raises(ConfigError):
        net(torch.randn(1, 5, 80, 16), torch.rand(1, 3, 64, 64), torch.rand(1, 5, 3, 96, 96))
    with pytest.raises(ConfigError):
        TalkingFaceConfig(size=100)


def test_discriminator_scores_and_features_with_odd_batches():
    d = Discriminator(TalkingFaceConfig(**SMALL))
    score, feats = d(torch.rand(7, 3, 96, 96))
    assert score.shape == (7,) and [f.shape[-1] for f in feats] == [48, 24, 12, 6]
    # channels-last input (a permuted image stack) gives the same scores
    x = torch.rand(4, 96, 96, 3)
    torch.testing.assert_close(d(x.permute(0, 3, 1, 2))[0], d(x.permute(0, 3, 1, 2).contiguous())[0])


# --- audio windows and face crops ------------------------------------------------------------------


def test_frame_windows_centre_on_each_video_frame():
    m = 200
    feats = torch.arange(m, dtype=torch.float32)[None].repeat(3, 1)  # [C, M]: each column holds its index
    win = frame_windows(feats, 50, width=16)  # [50, 3, 16]
    centres = win[:, 0, 7:9].mean(-1)  # the two middle columns
    want = torch.arange(50) * MEL_PER_FRAME + MEL_PER_FRAME / 2
    assert torch.all((centres - want).abs() <= 1.0)
    assert win[0, 0, 0] == 0 and win.shape == (50, 3, 16)  # the start repeats the edge
    assert audio_windows(np.zeros(16000, np.float32)).shape == (25, 80, 16)
    with pytest.raises(ConfigError):
        audio_windows(np.zeros((2, 100), np.float32))


def test_face_crops_put_eyes_and_nose_on_the_reference(face_cache):
    rec = cache_items(face_cache, "train")[0]
    c = load_cached(rec)
    lm = {k: c[k] for k in ("lips", "eyes", "nose")}
    m = face_matrices(lm, half_window=0)
    stable = np.concatenate([lm["eyes"], lm["nose"][:, None]], axis=1)
    err = np.abs(transform_points(m, stable) - face_reference()).max()
    assert err < 4.0  # a similarity fit of 5 points of a drawn face
    assert c["faces"].shape == (len(c["lips"]), FACE_SIZE, FACE_SIZE, 3) and c["faces"].dtype == np.uint8
    with pytest.raises(ConfigError):
        face_crops(np.zeros((2, 50, 50, 3), np.uint8), m[:1])


# --- data and training ----------------------------------------------------------------------------


def test_face_windows_clips_in_memory(face_cache):
    """(faces, audio) pairs in memory give the same items as the cache files they came from."""
    from avse.talking.train import _load

    files = cache_items(face_cache, "train")[:2]
    from_files = FaceWindows(files, frames=5, augment=False, seed=3)
    in_memory = FaceWindows([_load(f) for f in files], frames=5, augment=False, seed=3)
    for i in range(2):
        a, b = from_files[i], in_memory[i]
        for k in ("faces", "reference", "audio", "audio_clean"):
            torch.testing.assert_close(a[k], b[k])
    faces, audio = _load(files[0])
    with pytest.raises(MediaError, match="fewer than the window"):
        FaceWindows([(faces[:3], audio[: 3 * 640])], frames=5)[0]


def test_face_windows_items(face_cache):
    files = cache_items(face_cache, "train")
    ds = FaceWindows(files, frames=5, augment=False)
    item = ds[0]
    assert item["faces"].shape == (5, 3, 96, 96) and item["reference"].shape == (3, 96, 96)
    assert item["audio"].shape == (5, 80, 16) and item["audio_clean"].shape == (5, 80, 16)
    assert -1.0 <= float(item["faces"].min()) and float(item["faces"].max()) <= 1.0
    again = ds[0]  # validation items are the same every time
    torch.testing.assert_close(item["faces"], again["faces"])
    aug = FaceWindows(files, frames=5, augment=True, kind="mfcc", n_mfcc=13)[0]
    assert aug["audio"].shape == (5, 13, 16) and aug["audio_clean"].shape == (5, 80, 16)
    with pytest.raises(MediaError):
        cache_items(face_cache, "nosuchsplit")
    part = face_cache / "train" / ".x.part.npz"  # what a running `avse prepare` is writing
    part.write_bytes(b"")
    try:
        assert cache_items(face_cache, "train") == files
    finally:
        part.unlink()


def test_training_writes_a_generator_and_resumes(face_cache, tmp_path):
    cfg = {"model_config": SMALL, "data": {"root": str(face_cache), "frames": 5, "batch_size": 2, "val_items": 1},
           "gan_start": 1, "max_steps": 2, "val_every": 1, "checkpoint_every": 1, "r1_every": 1}
    path = fit_talking(cfg, tmp_path / "run")
    assert path.is_file() and (tmp_path / "run" / "samples.png").is_file()
    first = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)["global_step"]
    fit_talking({**cfg, "max_steps": 3}, tmp_path / "run", resume=True)
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)["global_step"] > first
    tf = TalkingFace.from_pretrained(path)
    assert tf.net.cfg.channels == SMALL["channels"]
    # a new run starts from this one's weights, with a part the first one did not have
    from avse.talking.train import TalkingFaceModule, TalkTrainConfig, warm_start_talking

    grown = TalkingFaceModule(TalkTrainConfig(model_config={**SMALL, "motion_to_start": True}))
    missing = warm_start_talking(grown, tmp_path / "run")
    assert missing and all("motion_start" in k for k in missing)
    torch.testing.assert_close(grown.net.audio.out.weight, tf.net.audio.out.weight, atol=1e-3, rtol=1e-3)  # float16 export
    other = TalkingFaceModule(TalkTrainConfig(model_config={**SMALL, "w_dim": 8}))
    with pytest.raises(ConfigError):
        warm_start_talking(other, tmp_path / "run")
    with pytest.raises(ConfigError):
        fit_talking({**cfg, "data": {"root": str(face_cache), "bogus": 1}}, tmp_path / "other")


# --- generation -----------------------------------------------------------------------------------


def test_chunked_generation_equals_one_pass(monkeypatch, tmp_path):
    net = _small_net(1)
    save_generator(tmp_path / "g.avse.pt", net)
    tf = TalkingFace.from_pretrained(tmp_path / "g.avse.pt")
    rng = np.random.default_rng(0)
    drv = rng.integers(0, 255, (23, 96, 96, 3), dtype=np.uint8)
    audio = rng.standard_normal(23 * 640).astype(np.float32) * 0.1
    whole = tf.crops(audio, drv[0], drv)
    import avse.talking.generate as gen

    monkeypatch.setattr(gen, "CHUNK", 6)
    chunked = tf.crops(audio, drv[0], drv)
    assert np.abs(whole.astype(int) - chunked.astype(int)).max() <= 1  # rounding to uint8 only
    assert np.array_equal(whole[:, :30], drv[:, :30])  # the upper face is the driving frames'


def test_ping_pong_covers_any_length():
    assert _ping_pong(1, 4).tolist() == [0, 0, 0, 0]
    assert _ping_pong(3, 8).tolist() == [0, 1, 2, 1, 0, 1, 2, 1]


@pytest.mark.slow
def test_avse_talk_animates_a_drawn_face_image(tiny_corpus, tmp_path):
    """The whole command on a face image (a frame of a rendered corpus video): frames, sound, the upper face kept."""
    import cv2

    from avse.video.io import iter_grid_frames, read_video

    pytest.importorskip("mediapipe")
    video = sorted((tiny_corpus / "train" / "targets_video").glob("*.mp4"))[0]
    frame = next(iter(iter_grid_frames(video, max_frames=1)))
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    t = np.arange(int(1.5 * 16000)) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    import soundfile as sf

    sf.write(tmp_path / "speech.wav", speech, 16000)
    net = _small_net(2)
    save_generator(tmp_path / "g.avse.pt", net)
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, "-m", "avse.cli", "talk", str(img), str(tmp_path / "speech.wav"), "-o", str(out),
                        "--model", str(tmp_path / "g.avse.pt"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    clip = read_video(out)
    assert len(clip.frames) == 38 and clip.frames.shape[1:] == frame.shape
    assert clip.audio is not None and abs(len(clip.audio) - len(speech)) <= 640
    top = frame.shape[0] // 4  # well above the mouth: the input frame (through the video codec)
    assert np.abs(clip.frames[:, :top].astype(int) - frame[None, :top].astype(int)).mean() < 3.0


def test_talk_refuses_missing_files_and_faceless_images(tmp_path):
    import cv2

    net = _small_net()
    save_generator(tmp_path / "g.avse.pt", net)
    tf = TalkingFace.from_pretrained(tmp_path / "g.avse.pt")
    with pytest.raises(MediaError, match="no such file"):
        tf.run(tmp_path / "none.png", tmp_path / "none.wav", tmp_path / "o.mp4", progress=False)
    with pytest.raises(MediaError):
        TalkingFace.from_pretrained(tmp_path / "nothing.avse.pt")
    from avse.api import PRETRAINED_DIR

    with pytest.raises(MediaError, match="not a talking-face checkpoint"):  # an avse checkpoint of another model
        TalkingFace.from_pretrained(PRETRAINED_DIR / "sync_expert.avse.pt")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 120, 3), 128, np.uint8))
    import soundfile as sf

    sf.write(tmp_path / "s.wav", np.zeros(8000, np.float32), 16000)
    from avse.errors import NoFaceError

    pytest.importorskip("mediapipe")
    with pytest.raises(NoFaceError):
        tf.run(blank, tmp_path / "s.wav", tmp_path / "o.mp4", progress=False)
    assert not (tmp_path / "o.mp4").exists()


# --- baselines and measures -----------------------------------------------------------------------


def test_energy_baseline_opens_the_mouth_with_speech_only():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    silent = np.zeros(10 * 640, np.float32)
    assert np.array_equal(energy_mouth(ref, silent, 10), still(ref, 10))
    loud = np.concatenate([np.zeros(5 * 640), 0.3 * rng.standard_normal(5 * 640)]).astype(np.float32)
    o = speech_opening(loud, 10)
    assert o[:3].max() == 0 and o[7:].min() > 0.5
    out = energy_mouth(ref, loud, 10)
    assert np.array_equal(out[0], ref)
    assert np.abs(out[9, 62:90].astype(int) - ref[62:90].astype(int)).mean() > 5  # the jaw moved
    assert np.array_equal(out[9, :40], ref[:40])  # the upper face did not


def test_image_measures(face_cache):
    rng = np.random.default_rng(0)
    one, two = (load_cached(p)["faces"][0] for p in cache_items(face_cache, "train")[:2])
    a = np.stack([one, two])
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert 20 < psnr(a, noisy) < 24.5 and ssim(a, noisy) < 0.8  # 20 gray levels of noise: 22.1 dB
    # identity (LBP histograms): blind to brightness, and a face is nearer to itself slightly
    # blurred than to another speaker's face
    import cv2

    brighter = np.clip(one.astype(int) + 12, 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(one, (5, 5), 1.0)
    assert identity_similarity(one, one) == pytest.approx(1.0)
    assert identity_similarity(one, brighter) > 0.95
    assert identity_similarity(one, two) < identity_similarity(one, blurred) < 1.0
    lips = rng.normal(0, 5, (4, 40, 2))
    assert lip_distance(lips, lips + 3.0) == pytest.approx(0.0, abs=1e-9)  # position removed
    assert lip_distance(lips, lips * 1.5) > 1.0
    nan = lips.copy()
    nan[:] = np.nan
    assert np.isnan(lip_distance(lips, nan))
    with pytest.raises(ConfigError):
        psnr(a, a[:1])


# --- the shipped generator ------------------------------------------------------------------------


def test_shipped_generator_follows_the_speech_better_than_a_still_face(face_cache):
    """On a clip of speakers it never saw, the shipped generator's lips agree with the speech
    (the shipped expert's LSE-C) more than the reference frame held still does."""
    from avse.talking.expert import SyncExpert, lse

    tf = TalkingFace.from_pretrained()
    expert = SyncExpert.from_pretrained()
    c = load_cached(cache_items(face_cache, "test")[0])
    faces, audio = c["faces"], c["audio"]
    ours = tf.crops(audio, faces[0], faces)
    assert ours.shape == faces.shape
    got = lse(expert, ours, audio)["lse_c"]
    floor = lse(expert, still(faces[0], len(faces)), audio)["lse_c"]
    assert got > floor


def test_avse_info_describes_the_talking_checkpoints(capsys):
    from avse.api import PRETRAINED_DIR
    from avse.cli import main

    for file, words in (("talking_face.avse.pt", "talking-face generator"), ("sync_expert.avse.pt", "lip-sync expert")):
        assert main(["info", str(PRETRAINED_DIR / file)]) == 0
        out = capsys.readouterr().out
        assert words in out and "M parameters" in out
