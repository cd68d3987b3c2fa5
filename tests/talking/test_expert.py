"""The lip-sync expert: shapes, gradients, LSE's sign convention, checkpoints, and the shipped expert on known shifts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avse.errors import ConfigError, MediaError
from avse.talking.expert import (
    PRETRAINED,
    SyncExpert,
    clip_embeddings,
    estimate_offset_expert,
    lse,
    lse_from_embeddings,
    mouth_frames,
    stack_windows,
    sync_loss,
)
from avse.video.sync import shift_audio

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
TEST_CACHE = Path(__file__).resolve().parents[2] / "data" / "talk_faces" / "test"
shipped = pytest.mark.skipif(not PRETRAINED.is_file(), reason="no shipped sync expert (src/avse/pretrained/sync_expert.avse.pt)")


@pytest.fixture(scope="module")
def expert() -> SyncExpert:
    torch.manual_seed(0)
    return SyncExpert().eval()


def test_embedding_shapes_and_norms(expert):
    v = torch.rand(3, 5, 48, 96)
    a = torch.randn(3, 80, 16)
    ev, ea = expert.embed_video(v), expert.embed_audio(a)
    assert ev.shape == ea.shape == (3, expert.config.embed_dim)
    torch.testing.assert_close(ev.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(ea.norm(dim=-1), torch.ones(3))
    sim = expert(a, v)
    assert sim.shape == (3,) and bool((sim.abs() <= 1 + 1e-6).all())


def test_bad_shapes_raise(expert):
    with pytest.raises(ConfigError):
        expert.embed_video(torch.rand(2, 5, 96, 96))
    with pytest.raises(ConfigError):
        expert.embed_audio(torch.rand(2, 80, 20))
    with pytest.raises(ConfigError):
        mouth_frames(np.zeros((4, 96, 96), np.uint8))


def test_size_budget():
    assert sum(p.numel() for p in SyncExpert().parameters()) * 4 < 2.0e6  # float32 weights under 2 MB


def test_mouth_frames_uint8_and_float_agree():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (4, 96, 96, 3), dtype=np.uint8)
    a = mouth_frames(faces)  # [4, 48, 96]
    b = mouth_frames(torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255.0)  # [4, 3, 96, 96] float
    assert a.shape == b.shape == (4, 48, 96)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    gray = faces[:, 48:].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    np.testing.assert_allclose(a.numpy(), gray, atol=1e-5)


def test_stack_windows_repeats_edges():
    frames = torch.arange(6, dtype=torch.float32)[:, None, None].expand(6, 2, 3)  # frame i holds value i
    win = stack_windows(frames)  # [6, 5, 2, 3]
    assert win.shape == (6, 5, 2, 3)
    assert win[:, :, 0, 0].tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5],
                                         [2, 3, 4, 5, 5], [3, 4, 5, 5, 5]]
    batched = stack_windows(frames[None].expand(2, 6, 2, 3))
    assert batched.shape == (2, 6, 5, 2, 3)


def test_sync_loss_gradient_reaches_generated_faces(expert):
    frozen = expert.eval().requires_grad_(False)
    faces = torch.rand(2, 7, 3, 96, 96, requires_grad=True)  # a generator's output [B, T, 3, 96, 96]
    mouths = stack_windows(mouth_frames(faces))  # [B, T, 5, 48, 96]
    loss = sync_loss(frozen, torch.randn(2, 80, 16), mouths[:, 3])
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert faces.grad is not None and faces.grad[:, :, :, 48:].abs().sum() > 0
    assert faces.grad[:, :, :, :48].abs().sum() == 0  # the upper face is not seen
    assert all(p.grad is None for p in frozen.parameters())
    expert.requires_grad_(True)


def test_sync_loss_is_bce_of_the_logit(expert):
    a, v = torch.randn(3, 80, 16), torch.rand(3, 5, 48, 96)
    with torch.no_grad():
        want = -F.logsigmoid(expert.logit(expert(a, v))).mean()
        torch.testing.assert_close(sync_loss(expert, a, v), want)


def test_lse_sign_on_constructed_embeddings():
    """Audio late by s frames: the sound of frame t comes at t + s, so a[t + s] = v[t] -> offset +s."""
    rng = np.random.default_rng(1)
    n, s = 40, 3
    v = F.normalize(torch.from_numpy(rng.standard_normal((n, 16))).float(), dim=-1)
    a = F.normalize(torch.from_numpy(rng.standard_normal((n, 16))).float(), dim=-1)
    a[s:] = v[: n - s]
    r = lse_from_embeddings(v, a, max_offset=6)
    assert r["offset_frames"] == s
    assert r["dists"].shape == (13,) and r["lse_d"] == pytest.approx(0.0, abs=1e-6)
    assert r["lse_c"] > 1.0
    r = lse_from_embeddings(a, v, max_offset=6)  # the other way round: audio early
    assert r["offset_frames"] == -s


def test_lse_near_looks_for_sync_close_to_zero_only():
    """A true match at offset +1 and a closer chance one at +9: ``near`` keeps the search by 0, the median stays."""
    rng = np.random.default_rng(2)
    n = 60
    v = F.normalize(torch.from_numpy(rng.standard_normal((n, 16))).float(), dim=-1)
    a = F.normalize(torch.from_numpy(rng.standard_normal((n, 16))).float(), dim=-1)
    a[1:] = F.normalize(v[: n - 1] + 0.6 * a[1:], dim=-1)  # audio 1 frame late, partly matching
    a[9:] = F.normalize(a[9:] + 4.0 * v[: n - 9], dim=-1)  # a closer match 9 frames late
    anywhere = lse_from_embeddings(v, a, max_offset=12)
    close = lse_from_embeddings(v, a, max_offset=12, near=3)
    assert anywhere["offset_frames"] == 9 and close["offset_frames"] == 1
    assert np.array_equal(anywhere["dists"], close["dists"])
    assert close["lse_d"] == pytest.approx(close["dists"][12 + 1]) and close["lse_c"] < anywhere["lse_c"]
    assert close["lse_c"] == pytest.approx(np.median(close["dists"]) - close["dists"][13])
    assert lse_from_embeddings(v, a, max_offset=12, near=12)["offset_frames"] == 9  # near = max_offset: all of them
    assert lse_from_embeddings(v, a, max_offset=12, near=2, center=8)["offset_frames"] == 9  # around a known offset
    assert lse_from_embeddings(v, a, max_offset=12, near=2, center=40)["offset_frames"] in (10, 11, 12)  # clipped


def test_window_center_moves_only_for_an_offset_beyond_the_window():
    from avse.talking.expert import ASSIGN_NEAR, window_center

    assert window_center(None) == 0 and window_center(ASSIGN_NEAR) == 0 and window_center(-ASSIGN_NEAR) == 0
    assert window_center(ASSIGN_NEAR + 1) == ASSIGN_NEAR + 1 and window_center(-7) == -7
    assert window_center(2, near=1) == 2


@shipped
def test_video_offset_frames_reads_late_sound_from_the_lips(tiny_corpus):
    """A drawn talker with its sound 5 frames late: the lips say +5 (within a frame); a still face says nothing."""
    from avse.api import video_offset_frames
    from avse.audio.io import load_audio
    from avse.data.metadata import load_speech_list, target_speech_list_path
    from avse.video.landmarks import read_landmarks

    e = max(load_speech_list(target_speech_list_path(tiny_corpus)), key=lambda e: e["nsamples"])
    lm = read_landmarks(tiny_corpus / e["dataset"] / "targets_landmarks" / f"{e['wavfile']}.npz")
    voice = load_audio(tiny_corpus / e["dataset"] / "targets" / f"{e['wavfile']}.wav")[0]
    late = np.concatenate([np.zeros(5 * 640, np.float32), voice])
    still = {"lips": np.repeat(lm["lips"][:1], len(lm["lips"]), axis=0)}
    assert video_offset_frames([still], late) is None
    found = video_offset_frames([still, {"lips": lm["lips"]}], late)
    assert found is not None and abs(found - 5) <= 1, found


def test_lse_on_a_clip_runs(expert):
    faces = np.random.default_rng(0).integers(0, 256, (30, 96, 96, 3), dtype=np.uint8)
    audio = np.random.default_rng(1).standard_normal(30 * 640).astype(np.float32) * 0.1
    r = lse(expert, faces, audio, max_offset=5)
    assert set(r) == {"lse_d", "lse_c", "offset_frames", "dists"}
    assert r["dists"].shape == (11,) and -5 <= r["offset_frames"] <= 5
    assert r["lse_c"] >= 0 and 0 <= r["lse_d"] <= 2
    with pytest.raises(ConfigError):
        lse(expert, faces[:8], audio, max_offset=5)
    est = estimate_offset_expert(faces, audio, expert=expert, max_offset=5)
    assert est.offset_ms == 40 * r["offset_frames"] and est.confidence == pytest.approx(r["lse_c"])


def test_checkpoint_round_trip(expert, tmp_path):
    path = expert.save(tmp_path / "e.avse.pt", extra={"epoch": 3})
    back = SyncExpert.from_pretrained(path)
    assert back.info["model"] == "sync_expert" and back.info["extra"] == {"epoch": 3}
    assert back.info["sample_rate"] == 16_000 and back.info["video_fps"] == 25
    a, v = torch.randn(2, 80, 16), torch.rand(2, 5, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(back(a, v), expert(a, v))
    ckpt = torch.load(path, weights_only=True)  # a plain dict
    assert SyncExpert.from_pretrained(ckpt).config == expert.config
    with pytest.raises(MediaError):
        SyncExpert.from_pretrained(tmp_path / "missing.avse.pt")
    ckpt["model"] = "avnet"
    with pytest.raises(MediaError):
        SyncExpert.from_pretrained(ckpt)


def _hits(model: SyncExpert, faces, audio, shifts=(-6, 0, 5)) -> list[int]:
    """Found offset minus the true shift for each shift of the audio (frames)."""
    v, _ = clip_embeddings(model, faces, audio)
    errors = []
    for s in shifts:
        _, a = clip_embeddings(model, faces, shift_audio(audio, 40.0 * s))
        errors.append(lse_from_embeddings(v, a, 10)["offset_frames"] - s)
    return errors


@shipped
def test_shipped_expert_finds_a_shift_of_a_synthetic_clip(tiny_corpus):
    """A clip of avse's own synthesis (the tiny corpus: drawn face, TTS voice), audio shifted by known frames."""
    from avse.audio.io import load_audio
    from avse.data.metadata import load_speech_list, target_speech_list_path
    from avse.video.io import iter_grid_frames
    from avse.video.landmarks import read_landmarks
    from avse.video.roi import face_crops, face_matrices

    model = SyncExpert.from_pretrained()
    items = sorted(load_speech_list(target_speech_list_path(tiny_corpus)), key=lambda e: -e["nsamples"])
    errors = []
    for e in items[:3]:
        split, uid = e["dataset"], e["wavfile"]
        lm = read_landmarks(tiny_corpus / split / "targets_landmarks" / f"{uid}.npz")
        n = len(lm["lips"])
        faces = face_crops(iter_grid_frames(tiny_corpus / split / "targets_video" / f"{uid}.mp4", max_frames=n), face_matrices(lm))
        audio = load_audio(tiny_corpus / split / "targets" / f"{uid}.wav")[0]
        errors += _hits(model, faces, audio)
    assert np.mean(np.abs(errors) <= 1) >= 2 / 3, errors


def _two_drawn_talkers(corpus: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two longest clips of a corpus -> (aligned face crops [N, 96, 96, 3], voices [N * 640] on the frames)."""
    from avse.audio.io import load_audio
    from avse.data.metadata import load_speech_list, target_speech_list_path
    from avse.video.io import iter_grid_frames
    from avse.video.landmarks import read_landmarks
    from avse.video.roi import face_crops, face_matrices

    faces, voices = [], []
    for e in sorted(load_speech_list(target_speech_list_path(corpus)), key=lambda e: -e["nsamples"])[:2]:
        split, uid = e["dataset"], e["wavfile"]
        lm = read_landmarks(corpus / split / "targets_landmarks" / f"{uid}.npz")
        n = len(lm["lips"])
        faces.append(face_crops(iter_grid_frames(corpus / split / "targets_video" / f"{uid}.mp4", max_frames=n),
                                face_matrices(lm)))
        v = load_audio(corpus / split / "targets" / f"{uid}.wav")[0][: n * 640]
        voices.append(np.pad(v, (0, n * 640 - len(v))))
    return faces, voices


@shipped
def test_assign_sources_gives_each_face_its_own_voice(tiny_corpus):
    """Two drawn talkers of the tiny corpus and their voices in swapped order: each face gets its own back."""
    from avse.talking.expert import assign_sources

    faces, voices = _two_drawn_talkers(tiny_corpus)
    n = min(len(f) for f in faces)
    t = n * 640
    sources = np.stack([v[:t] for v in voices[::-1]])  # [2, T]: B's voice, then A's
    order, scores = assign_sources(faces, sources)
    assert order == [1, 0], scores
    assert scores.shape == (2, 2) and scores[0, 1] > scores[0, 0] and scores[1, 0] > scores[1, 1]
    with pytest.raises(ConfigError):
        assign_sources(faces, sources[:1])  # more faces than sources
    with pytest.raises(ConfigError):
        assign_sources([faces[0][:8]], sources)  # too short for the expert


def test_route_sources_cross_fades_where_the_pairing_changes():
    from avse.talking.expert import route_sources

    n, t = 40, 40 * 640
    sources = np.stack([np.full(t, 1.0), np.full(t, 2.0)]).astype(np.float32)  # [2, T]
    plan = np.zeros((n, 2), dtype=int)
    plan[:, 1] = 1
    plan[20:] = [1, 0]  # the faces swap outputs at frame 20
    y = route_sources(sources, plan)
    assert y.shape == (2, t) and y.dtype == np.float32
    assert np.allclose(y[0, : 17 * 640], 1.0) and np.allclose(y[0, 23 * 640 :], 2.0)
    assert np.allclose(y[1, : 17 * 640], 2.0) and np.allclose(y[1, 23 * 640 :], 1.0)
    fade = y[0, 17 * 640 : 23 * 640]
    assert np.all(np.diff(fade) >= -1e-6) and 1.0 < fade[len(fade) // 2] < 2.0  # a ramp, not a jump
    assert np.allclose(y.sum(axis=0), 3.0)  # nothing lost or doubled on the way
    for extra in (-1000, 1000):  # sources shorter or longer than the frames: the ends keep the nearest frame's pairing
        z = route_sources(sources[:, : t + extra] if extra < 0 else np.pad(sources, ((0, 0), (0, extra)), mode="edge"), plan)
        assert z.shape == (2, t + extra) and np.allclose(z[0, -500:], 2.0) and np.allclose(z[0, :500], 1.0)
    three = np.concatenate([sources, np.full((1, t), 5.0, dtype=np.float32)])  # one face, three outputs
    one = route_sources(three, np.where(np.arange(n) < 20, 2, 0)[:, None])
    assert one.shape == (1, t) and np.allclose(one[0, :640], 5.0) and np.allclose(one[0, -640:], 1.0)


def test_missed_talker_only_when_the_face_left_with_silence_speaks():
    from avse.talking.expert import RELIABLE_LSE_C, missed_talker

    def result(lse_c, segments=((0, [0, 1]),)):
        return {"order": [0, 1], "lse_c": np.array(lse_c), "segments": list(segments)}

    listener = result([[0.10, 0.01], [0.01, 0.00]])  # face 1 (given output 1) scores nothing anywhere: it listens
    assert missed_talker([-1.0, -45.0], listener) is None
    talking = result([[0.10, 0.01], [RELIABLE_LSE_C + 0.01, 0.00]])  # face 1 clearly speaks in output 0
    why = missed_talker([-1.0, -45.0], talking)
    assert why is not None and "face 1" in why and "-45.0 dB" in why
    assert missed_talker([-1.0, -12.0], talking) is None  # both outputs hold sound: two voices heard
    assert missed_talker([-1.0, -45.0], result(talking["lse_c"], ((0, [0, 1]), (50, [1, 0])))) is None  # turns


def test_one_voice_gives_the_talker_the_whole_input_only_beside_a_listener():
    from avse.api import output_levels_db
    from avse.talking.expert import LISTENER_LSE_C, ONE_VOICE_DB, face_voices, one_voice

    def result(lse_c, order=(0, 1), segments=None):
        return {"order": list(order), "lse_c": np.array(lse_c), "segments": segments or [(0, list(order))],
                "plan": None}

    listener = result([[0.06, 0.01], [0.00, 0.005]])  # face 1 shows no sync with the quiet output 1
    assert one_voice([-0.5, ONE_VOICE_DB - 3], listener) == 0
    assert one_voice([ONE_VOICE_DB - 3, -0.5], result([[0.005, 0.01], [0.00, 0.06]])) == 1  # face 0 listens
    assert one_voice([ONE_VOICE_DB - 3, -0.5], result([[0.06, 0.00], [0.005, 0.01]], order=(1, 0))) == 0
    assert one_voice([-3.0, -6.0], listener) is None  # the quieter output holds a voice of its own
    talking = result([[0.06, 0.01], [0.00, LISTENER_LSE_C + 0.01]])
    assert one_voice([-0.5, -14.0], talking) is None  # its face speaks it: a quiet second talker
    turns = result(listener["lse_c"], segments=[(0, [0, 1]), (50, [1, 0])])
    assert one_voice([-0.5, -14.0], turns) is None  # the pairing changes: talkers who take turns
    assert one_voice([-0.5, -14.0, -20.0], listener) is None  # two faces, two outputs only
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1600).astype(np.float32)
    outs = np.stack([0.9 * x, 0.1 * x])  # a lone voice, a tenth of it split off (-20 dB)
    voices = face_voices(outs, listener, x, one_voice(output_levels_db(outs, x), listener))
    assert np.array_equal(voices[0], x) and np.array_equal(voices[1], outs[1])
    assert np.array_equal(face_voices(outs, listener)[0], outs[0])  # without the mixture: the outputs as paired
    assert np.array_equal(face_voices(outs, talking, x, one_voice(output_levels_db(outs, x), talking))[0], outs[0])


def test_window_confidence_rejects_a_window_shorter_than_the_search():
    from avse.talking.expert import window_confidence

    v = F.normalize(torch.randn(60, 8), dim=-1)
    with pytest.raises(ConfigError):
        window_confidence(v, v, 0, 15, [0], 10)
    with pytest.raises(ConfigError):
        window_confidence(v, v, 16, 15, [0], 50)
    own = window_confidence(v, v, 0, 15, [0, 10], 50)  # the same embeddings: distance 0 at offset 0
    assert own.shape == (2,) and np.all(own > 0.5)


@shipped
def test_assign_over_time_follows_talkers_who_take_turns(tiny_corpus):
    """Two drawn talkers taking turns, both turns in one output as a blind separator leaves them: each face gets
    that output during its own turn and the quiet one during the other's."""
    from avse.talking.expert import assign_over_time, route_sources

    faces, voices = _two_drawn_talkers(tiny_corpus)
    na, nb = len(faces[0]), len(faces[1])
    assert na + nb >= 100, "the tiny corpus' two longest clips are too short for turns"
    face_a = np.concatenate([faces[0], np.repeat(faces[0][-1:], nb, axis=0)])  # still while B talks
    face_b = np.concatenate([np.repeat(faces[1][:1], na, axis=0), faces[1]])
    talk = np.concatenate(voices)
    rng = np.random.default_rng(0)
    sources = np.stack([talk, 1e-3 * rng.standard_normal(len(talk))]).astype(np.float32)  # both turns in output 0
    res = assign_over_time([face_a, face_b], sources)
    plan = res["plan"]
    assert plan.shape == (na + nb, 2) and len(res["segments"]) >= 2, res["segments"]
    margin = 30  # frames around the change of talker where a 2 s window sees both
    assert np.mean(plan[: na - margin, 0] == 0) >= 0.9 and np.mean(plan[na + margin :, 1] == 0) >= 0.9, res["segments"]
    y = route_sources(sources, plan)
    own_a = np.sum(y[0, : (na - margin) * 640] ** 2) / np.sum(talk[: (na - margin) * 640] ** 2)
    own_b = np.sum(y[1, (na + margin) * 640 :] ** 2) / np.sum(talk[(na + margin) * 640 :] ** 2)
    assert own_a > 0.8 and own_b > 0.8  # each face has its own turn's speech
    # one talker and a listener who never speaks: the talker keeps the voice all along
    listener = np.repeat(faces[1][:1], na, axis=0)
    alone = assign_over_time([faces[0], listener], np.stack([voices[0], 1e-3 * rng.standard_normal(na * 640)]).astype(np.float32))
    assert len(alone["segments"]) == 1 and alone["order"] == [0, 1], alone["segments"]
    short = assign_over_time([faces[0][:60], faces[1][:60]], sources[:, : 60 * 640])  # under window + hop: no windows
    assert len(short["segments"]) == 1 and short["window_scores"].shape == (0, 2, 2)


@shipped
@pytest.mark.skipif(not TEST_CACHE.is_dir(), reason="no face cache (data/talk_faces/test)")
def test_shipped_expert_on_cached_test_clips():
    from avse.data.prepare import load_cached

    model = SyncExpert.from_pretrained()
    errors = []
    for path in sorted(TEST_CACHE.glob("*.npz"))[:4]:
        d = load_cached(path, keys=("faces", "audio"))
        if len(d["faces"]) >= 40:
            errors += _hits(model, d["faces"], d["audio"])
    if not errors:
        pytest.skip("no cached test clip of 40 frames or more")
    assert np.mean(np.abs(errors) <= 1) >= 0.75, errors


@pytest.mark.slow
@shipped
@pytest.mark.skipif(not (REAL / "grid").is_dir(), reason="no real GRID clips in ../shared/data/real/grid")
def test_shipped_expert_finds_known_shifts_of_real_grid_clips():
    """Real faces through the front end (landmarks -> aligned crops), the audio shifted by -6, 0, +5 frames."""
    from avse.video.io import iter_grid_frames
    from avse.video.roi import face_crops, face_matrices
    from avse.video.shift import timeline_audio
    from avse.video.track import extract_landmarks

    model = SyncExpert.from_pretrained()
    errors = []
    for video in sorted((REAL / "grid").glob("*.mpg")):
        audio = timeline_audio(video)
        lm, _ = extract_landmarks(video, audio=audio)
        faces = face_crops(iter_grid_frames(video, max_frames=len(lm["lips"])), face_matrices(lm))
        errors += _hits(model, faces, audio)
    assert np.mean(np.abs(errors) <= 1) >= 0.5, errors


@pytest.mark.slow
@shipped
@pytest.mark.skipif(not (REAL / "grid").is_dir(), reason="no real GRID clips in ../shared/data/real/grid")
def test_cli_sync_method_expert(tmp_path, capsys):
    from avse.cli import main

    video = sorted((REAL / "grid").glob("*.mpg"))[0]
    assert main(["sync", str(video), "--method", "expert"]) == 0
    out = capsys.readouterr().out
    assert "LSE-D" in out and "LSE-C" in out and "audio offset" in out


EXPERT_RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs" / "talking").glob("sync_*.yaml"))


@pytest.mark.parametrize("path", EXPERT_RECIPES, ids=lambda p: p.name)
def test_expert_recipe_is_a_train_config_whose_expert_builds(path):
    from avse.talking.expert import Config
    from avse.talking.expert_data import _train_config
    from avse.training.recipe import load_recipe

    cfg = _train_config(load_recipe(path))
    net = SyncExpert(Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.expert.items()}))
    a, v = net.embed_audio(torch.randn(2, 80, 16)), net.embed_video(torch.rand(2, 5, 48, 96))
    assert a.shape == v.shape == (2, cfg.expert.get("embed_dim", 128))
    assert torch.allclose(v.norm(dim=-1), torch.ones(2), atol=1e-4)


def test_judge_recipes_are_not_the_shipped_experts():
    """The measuring expert must not share the generator's expert's seed or its widths (its errors are its own)."""
    from avse.talking.expert_data import _train_config
    from avse.training.recipe import load_recipe

    folder = EXPERT_RECIPES[0].parent
    for stage in ("", "_refine"):
        judge = _train_config(load_recipe(folder / f"sync_judge{stage}.yaml"))
        shipped_recipe = _train_config(load_recipe(folder / f"sync_expert{stage}.yaml"))
        assert judge.seed != shipped_recipe.seed
        assert judge.expert.get("video_channels") != shipped_recipe.expert.get("video_channels")
    assert "sync_judge/" in _train_config(load_recipe(folder / "sync_judge_refine.yaml")).init_from


def test_mouth_embeddings_in_batches_match_the_whole_clip_windowed_at_once(expert):
    from avse.talking.expert import mouth_embeddings, video_embeddings

    faces = np.random.default_rng(0).integers(0, 256, (23, 96, 96, 3), dtype=np.uint8)
    mouths = mouth_frames(faces)
    with torch.no_grad():
        whole = expert.embed_video(stack_windows(mouths))  # every window at once, as before batching
    for batch in (4, 7, 256):  # batches that cut windows at the clip's edges and inside it
        torch.testing.assert_close(mouth_embeddings(expert, mouths, batch=batch), whole, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mouth_embeddings(expert, mouths.half()), whole, rtol=0.05, atol=0.02)  # float16 store
    torch.testing.assert_close(video_embeddings(expert, faces), whole, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError):
        mouth_embeddings(expert, mouths[0])


def test_face_sync_scores_each_sound_as_assign_sources_does(expert):
    from avse.talking.expert import assign_sources, face_sync

    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (40, 96, 96, 3), dtype=np.uint8)
    sounds = rng.standard_normal((3, 40 * 640)).astype(np.float32)
    _, scores = assign_sources([faces], sounds, expert, center=2)
    np.testing.assert_allclose(face_sync(mouth_frames(faces), sounds, expert, center=2), scores[0], atol=1e-6)
    with pytest.raises(ConfigError):
        face_sync(mouth_frames(faces[:8]), sounds, expert)  # too few frames
    with pytest.raises(ConfigError):
        face_sync(mouth_frames(faces), sounds[0], expert)  # one sound, not [S, T]


def test_talker_output_takes_the_blind_output_only_for_a_second_voice_that_is_not_the_face():
    from avse.talking.expert import ONE_VOICE_DB, SECOND_VOICE_VOICED, talker_output

    voice, noise = SECOND_VOICE_VOICED + 0.3, SECOND_VOICE_VOICED - 0.2
    assert talker_output([-3.0, -5.0], [0.06, 0.01], [0.7, voice], 0.03)[0] == 0  # two talkers, the lips follow output 0
    assert talker_output([-5.0, -3.0], [0.01, 0.06], [voice, 0.7], 0.03)[0] == 1
    k, why = talker_output([-3.0, ONE_VOICE_DB - 1], [0.06, 0.01], [0.7, voice], 0.03)
    assert k is None and "one voice" in why  # a lone voice with bits of it split off
    k, why = talker_output([-3.0, -5.0], [0.06, 0.01], [0.7, noise], 0.03)
    assert k is None and "noise" in why  # the other output is noise: the audio-visual model removes it better
    assert talker_output([-3.0, -5.0], [0.06, 0.01], [noise, voice], 0.03)[0] == 0  # only the other output must be a voice
    k, why = talker_output([-3.0, -5.0], [0.04, 0.01], [0.7, voice], 0.05)
    assert k is None and "follow the input" in why  # what was taken away was the face's own speech
    k, why = talker_output([-3.0, -5.0], [0.06, 0.01], [0.7, voice], 0.03, overlap=0.04, min_overlap=0.1)
    assert k is None and "at once on 4%" in why  # no two voices at once: a lone voice split word by word
    k, why = talker_output([-3.0, -5.0], [0.06, 0.01], [0.7, voice], 0.03, overlap=0.1, min_overlap=0.1)
    assert k == 0 and "at once on 10%" in why
    assert talker_output([-3.0, -5.0], [0.06, 0.01], [0.7, voice], 0.03, overlap=None, min_overlap=0.1)[0] == 0  # no detector
    with pytest.raises(ConfigError):
        talker_output([-3.0, -5.0], [0.06], [0.7, voice], 0.03)
    with pytest.raises(ConfigError):
        talker_output([-3.0], [0.06, 0.01], [0.7, voice], 0.03)


def test_talker_output_measures_only_what_its_rules_still_need():
    from avse.talking.expert import ONE_VOICE_DB, SECOND_VOICE_VOICED, talker_output

    asked: list[str] = []

    def lse_outputs():
        asked.append("lips")
        return [0.01, 0.06]

    def voiced(k):
        asked.append(f"voiced {k}")
        return {0: SECOND_VOICE_VOICED - 0.1, 1: 0.9}[k]

    def lse_input():
        asked.append("input")
        return 0.02

    def overlap():
        asked.append("overlap")
        return 0.02

    assert talker_output([-3.0, ONE_VOICE_DB - 5], lse_outputs, voiced, lse_input, overlap, 0.1)[0] is None and asked == []
    assert talker_output([-3.0, -4.0], lse_outputs, voiced, lse_input, overlap, 0.1)[0] is None and asked == ["overlap"]
    asked.clear()
    assert talker_output([-3.0, -4.0], lse_outputs, voiced, lse_input)[0] is None  # output 0, the other, is noise
    assert asked == ["lips", "voiced 0"]
    asked.clear()
    assert talker_output([-3.0, -4.0], [0.06, 0.01], lambda k: 0.9, lse_input)[0] == 0 and asked == ["input"]


def test_video_mouths_from_the_luma_are_the_rgb_crops_mouths(tmp_path):
    """video_mouths reads luma and warps only the crops' lower half: within a level or two of mouth_frames of the
    RGB face crops, and the same whatever the batch."""
    from avse.talking.expert import video_mouths
    from avse.video.io import iter_grid_frames, write_video
    from avse.video.roi import face_crops, face_matrices

    n, h, w = 12, 120, 160
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):  # smooth colours that move: what a codec keeps
        frames[i, ..., 0] = 128 + 90 * np.sin(2 * np.pi * (xx / 70 + i / n))
        frames[i, ..., 1] = 128 + 90 * np.cos(2 * np.pi * (yy / 50 - i / n))
        frames[i, ..., 2] = 60 + 100 * (xx + yy) / (h + w)
    video = tmp_path / "face.mp4"
    write_video(video, frames, fps=25)
    t = np.arange(n, dtype=np.float64)[:, None]
    eyes = np.stack([[60.0, 50.0], [70.0, 50.0], [90.0, 50.0], [100.0, 50.0]])[None] + np.stack([t, 0.5 * t], -1)
    nose = eyes.mean(1) + [0.0, 22.0]
    lips = nose[:, None] + np.stack([np.linspace(-15, 15, 40), np.full(40, 15.0)], -1)[None]
    landmarks = {"eyes": eyes, "nose": nose, "lips": lips}
    got = video_mouths(video, landmarks)
    assert got.shape == (n, 48, 96) and got.dtype == torch.float16
    want = mouth_frames(face_crops(iter_grid_frames(video), face_matrices(landmarks)))
    diff = (got.float() - want).abs() * 255
    assert diff.mean() < 2.0 and diff.max() < 8.0, (diff.mean(), diff.max())
    torch.testing.assert_close(video_mouths(video, landmarks, batch=5), got, rtol=0, atol=0)
    moved = {k: v + [6.0, -4.0] for k, v in landmarks.items()}  # a second face, elsewhere: both cut in one pass
    both = video_mouths(video, [landmarks, moved], batch=5)
    assert isinstance(both, list) and len(both) == 2
    torch.testing.assert_close(both[0], got, rtol=0, atol=0)
    torch.testing.assert_close(both[1], video_mouths(video, moved), rtol=0, atol=0)
    with pytest.raises(ConfigError):
        video_mouths(video, [])


def test_assign_sources_takes_mouth_frames_as_it_takes_face_crops(expert):
    """The faces of assign_sources / assign_over_time may be their mouth frames (what video_mouths gives): the same
    scores as from the crops they come from."""
    from avse.talking.expert import assign_over_time, assign_sources

    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 256, (30, 96, 96, 3), dtype=np.uint8) for _ in range(2)]
    sources = rng.standard_normal((2, 30 * 640)).astype(np.float32)
    order, scores = assign_sources(crops, sources, expert)
    order_m, scores_m = assign_sources([mouth_frames(c).half() for c in crops], sources, expert)
    assert order_m == order
    np.testing.assert_allclose(scores_m, scores, atol=2e-3)
    over = assign_over_time([mouth_frames(c) for c in crops], sources, expert)
    np.testing.assert_allclose(over["lse_c"], scores, atol=1e-5)
