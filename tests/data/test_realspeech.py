"""Importing real recordings (fillets-ng transcripts, a folder of recordings) and synthesizing a corpus with real voices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avse import SAMPLE_RATE
from avse.audio.io import save_wav
from avse.cli import main
from avse.config import SPLITS, synth_config
from avse.data.metadata import load_speech_list
from avse.data.realspeech import (
    LIST_NAME,
    discover,
    fillets_speaker,
    import_speech,
    load_real_speech,
    parse_dialogs_lua,
)
from avse.data.synth import _by_speaker, plan_speech, real_speaker_splits, synthesize_corpus
from avse.data.tts import PAUSE, Voice, synthesize
from avse.errors import ConfigError, MediaError, MetadataError, OutputPathError
from avse.video.io import read_video
from avse.video.landmarks import read_landmarks

DEBIAN = Path(os.environ.get("AVSE_DEBIAN_DATA", Path(__file__).resolve().parents[2] / "data" / "debian"))
FILLETS = DEBIAN / "usr/share/games/fillets-ng"

LUA = r'''
-- Intro dialogs
dialogId("bar-v-co", "font_big", "What are we supposed to do with it?")
dialogStr("Ale co s tím budeme dělat?")

dialogId("bar-m-panb", "font_small",
"Yes. Let’s get to work.")
dialogStr(
"Ano. Tak se dejme do práce. Říkal \"ne\", C:\\WINDOWS" .. " a dost.")

dialogId("bar-x-suck0", "", "")

dialogId("bar-x-vypr", font_white, "I can hear everything!")
dialogStr('Všechno slyším!')
'''


def test_parse_dialogs_lua():
    lines = parse_dialogs_lua(LUA)
    assert [ln.id for ln in lines] == ["bar-v-co", "bar-m-panb", "bar-x-suck0", "bar-x-vypr"]
    assert lines[0].font == "font_big" and lines[0].text == "Ale co s tím budeme dělat?"
    assert lines[0].english == "What are we supposed to do with it?"
    assert lines[1].text == 'Ano. Tak se dejme do práce. Říkal "ne", C:\\WINDOWS a dost.'  # escapes, '..', lines
    assert lines[2].font == "" and lines[2].text is None  # no dialogStr: no text
    assert lines[3].font == "font_white" and lines[3].text == "Všechno slyším!"  # bare name, single quotes
    with pytest.raises(ValueError):
        parse_dialogs_lua('dialogId("x", "font_big"')


def test_fillets_speaker_is_the_character_per_language():
    assert fillets_speaker("font_big", "cs") == "fillets-cs-big"
    assert fillets_speaker("font_small", "nl") == "fillets-nl-small"
    assert fillets_speaker("font_both", "cs") is None and fillets_speaker("", "cs") is None


def _make_folder(root: Path) -> Path:
    """Three speakers with transcribed recordings, one with an untranscribed one, and two unusable files."""
    src = root / "src"
    voices = {"anna": Voice("espeak", "en-us", "f3"), "bert": Voice("espeak", "en-gb-x-rp", "m3"),
              "carl": Voice("espeak", "en-us", "m1", rate=1.1)}
    texts = ["Put the red cup on the table.", "Bin blue at F two now.", "The cat sat on a warm mat."]
    for spk, voice in voices.items():
        for k, text in enumerate(texts[:2]):
            save_wav(src / spk / f"u{k}.wav", synthesize(text, voice).audio)
            (src / spk / f"u{k}.txt").write_text(text + "\n")
    # another rate, FLAC, no transcript: a masker-only speaker
    audio = synthesize(texts[2], Voice("espeak", "en-us", "f2")).audio
    (src / "dora").mkdir()
    sf.write(str(src / "dora" / "prompt.flac"), np.concatenate([audio, audio]), SAMPLE_RATE)
    (src / "dora" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    sf.write(str(src / "dora" / "silence.wav"), np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    return src


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real")
    src = _make_folder(root)
    with pytest.warns(UserWarning, match="skipped 2 of 9 files"):
        summary = import_speech(src, root / "out", jobs=1, progress=False)
    assert summary["kinds"] == ["folder"] and summary["imported"] == 7
    assert summary["skipped"] == {"no speech (silent or steady noise)": 1, "unreadable": 1}
    assert summary["languages"]["en-us"]["speakers"] == 4 and summary["languages"]["en-us"]["aligned"] == 6
    return root / "out"


def test_import_folder_writes_wavs_and_a_list_with_phones(imported):
    items = load_real_speech(imported)
    by_id = {e["id"]: e for e in items}
    assert set(by_id) == {"anna-u0", "anna-u1", "bert-u0", "bert-u1", "carl-u0", "carl-u1", "dora-prompt"}
    e = by_id["anna-u0"]
    assert e["speaker"] == "anna" and e["language"] == "en-us" and e["transcript"] == "Put the red cup on the table."
    audio, sr = sf.read(str(imported / e["wavfile"]))
    assert sr == SAMPLE_RATE and audio.ndim == 1 and len(audio) == e["nsamples"]
    assert e["duration"] == pytest.approx(len(audio) / SAMPLE_RATE, abs=1e-4)
    phones = e["phones"]
    assert phones[0][1] == 0.0 and phones[-1][2] == pytest.approx(e["duration"], abs=1e-3)
    assert all(a[2] == b[1] for a, b in zip(phones, phones[1:]))
    words = [w[0] for w in e["words"]]  # espeak-ng's words ("on the" may come as one event)
    assert words[0] == "Put" and words[-1] == "table" and len(words) >= 5
    assert all(a[1] <= a[2] <= b[1] for a, b in zip(e["words"], e["words"][1:]))
    assert by_id["dora-prompt"]["transcript"] is None and by_id["dora-prompt"]["phones"] is None


def test_import_resumes_and_refuses_output_inside_source(imported, tmp_path):
    src = Path(json.loads((imported / LIST_NAME).read_text())["source"])
    with pytest.warns(UserWarning):
        again = import_speech(src, imported, jobs=1, progress=False)
    assert again["made_now"] == 0 and again["imported"] == 7
    with pytest.raises(OutputPathError):
        import_speech(src, src / "out", progress=False)
    with pytest.raises(ConfigError, match="no such folder"):
        import_speech(tmp_path / "nothing", tmp_path / "o", progress=False)


def test_load_real_speech_refuses_a_missing_list(tmp_path):
    with pytest.raises(MetadataError, match="import"):
        load_real_speech(tmp_path)


def test_real_speakers_are_split_disjointly_and_pinned(imported):
    items = load_real_speech(imported)
    cfg = synth_config("tiny", real_speech=str(imported))
    splits = real_speaker_splits(items, cfg)
    assert set(splits) == {"anna", "bert", "carl", "dora"}
    assert {splits[s] for s in ("anna", "bert", "carl")} == set(SPLITS)  # three target speakers, one per split
    pinned = real_speaker_splits(items, synth_config("tiny", real_speech=str(imported), real_test_speakers=("anna",)))
    assert pinned["anna"] == "test"
    with pytest.raises(ConfigError, match="not in"):
        real_speaker_splits(items, synth_config("tiny", real_speech=str(imported), real_dev_speakers=("zed",)))
    with pytest.raises(ConfigError, match="real_fraction"):
        synth_config("tiny", real_fraction=1.0)


def test_real_split_one_zero_zero_puts_every_real_voice_in_train(imported, tmp_path, capsys):
    items = load_real_speech(imported)
    splits = real_speaker_splits(items, synth_config("tiny", real_speech=str(imported), real_split_fractions=(1.0, 0.0, 0.0)))
    assert set(splits.values()) == {"train"} and set(splits) == {"anna", "bert", "carl", "dora"}
    with pytest.raises(SystemExit):  # three shares or nothing
        main(["synth", str(tmp_path / "x"), "--real-speech", str(imported), "--real-split", "1", "0"])
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "x"), "--real-split", "1", "0", "0"]) == 2
    assert "need --real-speech" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_plan_with_real_speech(imported):
    cfg = synth_config("tiny", real_speech=str(imported), real_fraction=0.5)
    plan = plan_speech(cfg)
    assert plan == plan_speech(cfg)
    real = [t for t in plan if t.real is not None]
    tts = [t for t in plan if t.real is None]
    assert [t.id for t in tts] == [t.id for t in plan_speech(synth_config("tiny"))]  # the TTS plan is untouched
    for split in SPLITS:
        assert any(t.split == split and t.role == "target" for t in real)
    split_of = {}
    for t in real:
        assert split_of.setdefault(t.speaker, t.split) == t.split  # a real speaker lives in one split
        if t.role == "target":
            assert len(t.real.ids) == 1 and t.real.phones and t.speaker != "dora"
    assert any(t.role == "masker" and t.speaker == "dora" for t in real)  # untranscribed: masker only


def test_real_masker_reuse_makes_target_speakers_maskers_too(imported):
    def roles(cfg):
        out: dict[str, set[str]] = {}
        for t in plan_speech(cfg):
            if t.real is not None:
                out.setdefault(t.speaker, set()).add(t.role)
        return out

    plain = roles(synth_config("tiny", real_speech=str(imported), real_fraction=0.5))
    assert plain["anna"] == plain["bert"] == {"target"}  # both of their lines are targets: none left over
    reuse_cfg = synth_config("tiny", real_speech=str(imported), real_fraction=0.5, real_masker_reuse=True)
    reuse = roles(reuse_cfg)
    assert all(reuse[s] == {"target", "masker"} for s in ("anna", "bert", "carl"))
    targets = [t for t in plan_speech(reuse_cfg) if t.real is not None and t.role == "target"]
    assert [t.id for t in targets] == [t.id for t in plan_speech(synth_config("tiny", real_speech=str(imported), real_fraction=0.5))
                                       if t.real is not None and t.role == "target"]  # the targets are unchanged


def test_real_targets_by_speaker_take_every_voice_in_turn(imported, capsys, tmp_path):
    pool = [{"id": f"{spk}{k}", "speaker": spk} for spk, n in (("a", 20), ("b", 2), ("c", 1)) for k in range(n)]
    rng = np.random.default_rng(0)
    for n, counts in ((3, {"a": 1, "b": 1, "c": 1}), (6, {"a": 3, "b": 2, "c": 1}), (30, {"a": 20, "b": 2, "c": 1})):
        got = _by_speaker(pool, n, rng)
        assert len({e["id"] for e in got}) == len(got) == min(n, len(pool))  # no recording twice
        assert {s: sum(e["speaker"] == s for e in got) for s in "abc"} == counts
    # three real targets among anna's, bert's and carl's two lines each: by speaker always three voices, at random
    # (the default) a voice twice for some seeds
    def target_speakers(by_speaker: bool, seed: int) -> list[str]:
        cfg = synth_config("tiny", real_speech=str(imported), real_fraction=0.6, real_split_fractions=(1.0, 0.0, 0.0),
                           real_targets_by_speaker=by_speaker, seed=seed)
        return [t.speaker for t in plan_speech(cfg) if t.real is not None and t.role == "target"]

    for seed in range(8):
        assert sorted(target_speakers(True, seed)) == ["anna", "bert", "carl"]
    assert target_speakers(True, 3) == target_speakers(True, 3)  # the same plan every time
    assert any(len(set(target_speakers(False, seed))) < 3 for seed in range(8))
    # a recording whose recognised phones are all pauses has no lips to draw: a masker, never a target
    listed = json.loads((imported / LIST_NAME).read_text())
    for e in listed["items"]:
        if e["speaker"] == "dora":
            e["phones"], e["phones_from"] = [[PAUSE, 0.0, e["duration"]]], "recognised"
    (tmp_path / "paused").mkdir()
    (tmp_path / "paused" / LIST_NAME).write_text(json.dumps(listed))
    cfg = synth_config("tiny", real_speech=str(tmp_path / "paused"), real_fraction=0.9, real_targets_by_speaker=True,
                       real_split_fractions=(1.0, 0.0, 0.0))
    roles = {(t.speaker, t.role) for t in plan_speech(cfg) if t.real is not None}
    assert {s for s, role in roles if role == "target"} == {"anna", "bert", "carl"}  # all but dora
    assert ("dora", "masker") in roles
    assert main(["synth", str(tmp_path / "x"), "--real-targets-by-speaker"]) == 2
    assert "need --real-speech" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_synth_with_real_speech_makes_targets_with_faces(imported, tmp_path):
    cfg = synth_config("tiny", real_speech=str(imported), train_speakers=(1, 1), dev_speakers=(1, 1), test_speakers=(1, 1),
                       utterances_per_speaker=(1, 1, 1), noises_per_split=(1, 1, 1), noise_seconds=3.0, real_masker_seconds=3.0)
    root = tmp_path / "corpus"
    summary = synthesize_corpus(root, cfg, jobs=1, progress=False)
    targets = load_speech_list(root / "metadata" / "target_speech_list.json")
    maskers = load_speech_list(root / "metadata" / "masker_speech_list.json")
    real_t = [e for e in targets if e["engine"] == "real"]
    assert len(real_t) == 3 and {e["dataset"] for e in real_t} == set(SPLITS)
    assert any(e["engine"] == "real" for e in maskers)
    for e in real_t:
        split, uid = e["dataset"], e["wavfile"]
        audio, sr = sf.read(str(root / split / "targets" / f"{uid}.wav"))
        assert sr == SAMPLE_RATE and len(audio) == e["nsamples"]
        clip = read_video(root / split / "targets_video" / f"{uid}.mp4")
        assert len(clip.frames) == e["nframes"] == int(np.ceil(len(audio) / 640))
        assert clip.audio is not None and abs(len(clip.audio) - len(audio)) <= 1024  # the real recording is the track
        lm = read_landmarks(root / split / "targets_landmarks" / f"{uid}.npz")
        assert len(lm["lips"]) == e["nframes"]
        times = lm["phone_times"]
        assert times[0, 0] == 0.0 and times[-1, 1] == pytest.approx(len(audio) / SAMPLE_RATE, abs=1e-6)
        assert lm["phone_symbols"][0] == PAUSE and any(s != PAUSE for s in lm["phone_symbols"])
    assert summary["test"]["real_targets"] == 1
    # speakers are disjoint across splits
    spk = {s: {e["speaker"] for e in targets + maskers if e["dataset"] == s} for s in SPLITS}
    assert not (spk["train"] & spk["dev"]) and not (spk["train"] & spk["test"]) and not (spk["dev"] & spk["test"])
    # the same command resumes without redoing anything
    assert synthesize_corpus(root, cfg, jobs=1, progress=False)["made_now"] == 0


def test_cli_import_and_synth_flags(imported, tmp_path, capsys):
    assert main(["synth", str(tmp_path / "c"), "--preset", "tiny", "--real-fraction", "0.3", "--quiet"]) == 2
    assert "--real-speech" in capsys.readouterr().err
    src = Path(json.loads((imported / LIST_NAME).read_text())["source"])
    assert main(["import-speech", str(src), str(tmp_path / "o"), "--jobs", "1", "--quiet", "--no-align"]) == 0
    out = capsys.readouterr()
    assert "7 recordings, 4 speakers" in out.out and "skipped 2 of 9 files" in out.err
    assert all(e["phones"] is None for e in load_real_speech(tmp_path / "o"))


def test_import_recognises_untranscribed_english_which_can_then_be_a_target(imported, tmp_path):
    pytest.importorskip("pocketsphinx")
    src = Path(json.loads((imported / LIST_NAME).read_text())["source"])
    with pytest.warns(UserWarning, match="skipped 2 of 9 files"):
        summary = import_speech(src, tmp_path / "rec", jobs=1, progress=False, recognise=True)
    assert summary["languages"]["en-us"]["aligned"] == 6 and summary["languages"]["en-us"]["recognised"] == 1
    by_id = {e["id"]: e for e in load_real_speech(tmp_path / "rec")}
    dora = by_id["dora-prompt"]
    assert dora["transcript"] is None and dora["words"] is None and dora["phones_from"] == "recognised"
    phones = dora["phones"]
    assert phones[0][1] == 0.0 and phones[-1][2] == pytest.approx(dora["duration"], abs=1e-3)
    assert all(a[2] == b[1] for a, b in zip(phones, phones[1:])) and sum(p != PAUSE for p, _, _ in phones) >= 10
    assert "phones_from" not in by_id["anna-u0"] and by_id["anna-u0"]["words"]  # transcribed lines are aligned as before
    # a transcript-free recording with phones is a possible target: dora's speaker is shared out with the targets
    cfg = synth_config("tiny", real_speech=str(tmp_path / "rec"), real_fraction=0.5)
    targets = [t for t in plan_speech(cfg) if t.real is not None and t.role == "target"]
    assert any(t.speaker == "dora" and t.real.phones and t.text == "" for t in targets)
    with pytest.warns(UserWarning):  # the same options resume; without recognition dora's files (the two unusable
        assert import_speech(src, tmp_path / "rec", jobs=1, progress=False, recognise=True)["made_now"] == 0  # too)
        again = import_speech(src, tmp_path / "rec", jobs=1, progress=False)  # are imported again, and dora is a masker
    assert again["made_now"] == 3 and {e["id"]: e for e in load_real_speech(tmp_path / "rec")}["dora-prompt"]["phones"] is None


def test_import_recognises_other_languages_only_when_asked(imported, tmp_path, capsys):
    pytest.importorskip("pocketsphinx")
    src = Path(json.loads((imported / LIST_NAME).read_text())["source"])
    out = tmp_path / "cs"
    with pytest.warns(UserWarning):
        import_speech(src, out, languages=("cs",), do_align=False, jobs=1, progress=False, recognise=True)
    assert load_real_speech(out)[0]["language"] == "cs"
    assert all(e["phones"] is None for e in load_real_speech(out))  # English only: the Czech folder is not heard
    assert main(["import-speech", str(src), str(out), "--language", "cs", "--no-align", "--recognise", "all",
                 "--jobs", "1", "--quiet"]) == 0
    assert '"made_now": 3,' in capsys.readouterr().out  # only the untranscribed files (dora's, two unusable) again
    by_id = {e["id"]: e for e in load_real_speech(out)}
    assert by_id["dora-prompt"]["phones_from"] == "recognised" and len(by_id["dora-prompt"]["phones"]) > 10
    assert all(e["phones"] is None for k, e in by_id.items() if k != "dora-prompt")  # transcribed, not aligned
    with pytest.raises(ConfigError, match="recognise must be one of"):
        import_speech(src, out, recognise="czech")
    with pytest.raises(SystemExit):
        main(["import-speech", str(src), str(out), "--recognise", "czech"])
    assert "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------------------- with Debian's fillets-ng data


needs_fillets = pytest.mark.skipif(not (FILLETS / "script").is_dir(), reason=f"no fillets-ng data in {DEBIAN} (scripts/fetch_real_speech)")


@needs_fillets
def test_fillets_transcripts_parse_and_name_the_lead_voices():
    kinds, items, skipped = discover(DEBIAN, ("cs", "nl"))
    items = [i for i in items if i.id.startswith("fillets-")]  # not the word games' Czech and Dutch voices, if fetched
    assert kinds[0] == "fillets-ng" and len(items) > 3000
    speakers = {i.speaker for i in items}
    assert {"fillets-cs-big", "fillets-cs-small", "fillets-nl-big", "fillets-nl-small"} <= speakers
    assert all(i.transcript for i in items)
    assert sum(v for k, v in skipped.items() if k != "the same file in another language folder") < 100


def _make_debian_voices(root: Path) -> Path:
    """A tree as scripts/fetch_real_speech --more-voices unpacks it: word games and asterisk prompt voices."""
    share = root / "debian" / "usr" / "share"
    words = [synthesize(t, Voice("espeak", "en-us", "m3")).audio for t in ("apple", "banana", "cherry")]
    sf.write(str(_mk(share / "klettres/en/alpha/A.ogg")), words[0], SAMPLE_RATE)
    sf.write(str(_mk(share / "klettres/en_GB/syllab/ba.wav")), words[1], SAMPLE_RATE)
    _mk(share / "klettres/icons/hicolor/x.png").write_bytes(b"\x89PNG")
    sf.write(str(_mk(share / "ktuberling/sounds/sr/ear.ogg")), words[2], SAMPLE_RATE)
    _mk(share / "ktuberling/sounds/sr@latin/ear.ogg").write_bytes((share / "ktuberling/sounds/sr/ear.ogg").read_bytes())
    (share / "ktuberling/sounds/sr.soundtheme").write_text("<theme/>")
    sf.write(str(_mk(share / "asterisk/sounds/fr/digits/1.wav")), words[0], SAMPLE_RATE)
    sf.write(str(_mk(share / "asterisk/sounds/it_IT_f_Menardi/hello.wav")), words[1], SAMPLE_RATE)
    _mk(share / "asterisk/sounds/digits").mkdir()
    (share / "asterisk/sounds/digits/fr").symlink_to("../fr/digits")  # as asterisk-prompt-fr-armelle links it
    return root / "debian"


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_word_games_and_prompt_voices_are_maskers_one_speaker_per_language(tmp_path):
    src = _make_debian_voices(tmp_path)
    kinds, items, skipped = discover(src)
    assert kinds == ["asterisk", "klettres", "ktuberling"]
    assert sorted((i.speaker, i.language) for i in items) == [
        ("asterisk-Menardi", "it"), ("asterisk-fr", "fr"),  # a linked folder is not read twice
        ("klettres-en", "en"), ("klettres-en_GB", "en-gb"), ("ktuberling-sr", "sr")]
    assert skipped == {"the same file in another language folder": 1}  # sr@latin ships sr's files again
    assert all(i.transcript is None for i in items)
    _, only_en, _ = discover(src, ("en",))
    assert {i.speaker for i in only_en} == {"klettres-en", "klettres-en_GB"}
    with pytest.warns(UserWarning, match="1 the same file in another language folder"):
        summary = import_speech(src, tmp_path / "out", jobs=1, progress=False)
    assert summary["imported"] == 5 and summary["kinds"] == kinds
    entries = load_real_speech(tmp_path / "out")
    assert all(e["phones"] is None and (tmp_path / "out" / e["wavfile"]).is_file() for e in entries)


def _queen_archive(path: Path, entries: dict[str, bytes]) -> Path:
    """A ``queen.1c`` as the game's talkie ships it: a QTBL table of named entries, then their bytes."""
    import struct

    head = b"QTBL" + b"CEM10\0" + b"\0\0" + b"\1" + struct.pack(">H", len(entries))
    offset = len(head) + 21 * len(entries)
    table, data = b"", b""
    for name, blob in entries.items():
        table += name.encode().ljust(12, b"\0") + b"\1" + struct.pack(">II", offset + len(data), len(blob))
        data += blob
    _mk(path).write_bytes(head + table + data)
    return path


def _mp3(text: str, voice: Voice, tmp_path: Path) -> bytes:
    from avse.audio.io import resample

    x = resample(synthesize(text, voice).audio, SAMPLE_RATE, 11025)
    f = tmp_path / "line.mp3"
    sf.write(str(f), x, 11025, format="MP3")
    return f.read_bytes()


def test_queen_talkie_lines_are_maskers_named_by_who_speaks(tmp_path):
    hero, other = Voice("espeak", "en-us", "m3"), Voice("espeak", "en-us", "f3")
    lines = {
        "JOE00011.SB": _mp3("I have seen better days.", hero, tmp_path),
        "020006J1.SB": _mp3("Where is the plane?", hero, tmp_path),
        "020006P1.SB": _mp3("Over the hill, past the river.", other, tmp_path),
        "1200B5P2.SB": _mp3("Nobody goes there at night.", other, tmp_path),
        "C1A__051.SB": _mp3("Look out!", other, tmp_path),  # a cut scene: several voices, skipped
        "ROOM1.BBK": b"\0" * 40,  # not a sound
    }
    src = tmp_path / "debian"
    _queen_archive(src / "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c", lines)
    kinds, items, skipped = discover(src)
    assert kinds == ["queen"] and skipped == {"cut-scene lines (several voices)": 1}
    assert {i.source.split(":")[1]: i.speaker for i in items} == {
        "JOE00011.SB": "queen-joe", "020006J1.SB": "queen-joe", "020006P1.SB": "queen-room02", "1200B5P2.SB": "queen-room12"}
    assert all(i.transcript is None and i.language == "en" for i in items)
    with pytest.raises(ConfigError, match="no recordings found"):  # another language: none of its lines
        discover(src, ("cs",))
    summary = import_speech(src, tmp_path / "out", jobs=1, progress=False)
    assert summary["imported"] == 4
    for e in load_real_speech(tmp_path / "out"):
        x, sr = sf.read(str(tmp_path / "out" / e["wavfile"]))
        assert sr == SAMPLE_RATE and e["phones"] is None
        assert 0.6 < len(x) / SAMPLE_RATE < 4.0 and np.abs(x).max() > 0.05  # decoded speech, not silence


QUEEN_ARCHIVE = DEBIAN / "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"


@pytest.mark.skipif(not QUEEN_ARCHIVE.is_file(), reason=f"no Amazon Queen talkie in {DEBIAN} (scripts/fetch_real_speech --games)")
@pytest.mark.slow
def test_the_packaged_queen_talkie_decodes_to_speech():
    from avse.data.align import speech_span
    from avse.data.realspeech import _load_span

    _, items, skipped = discover(QUEEN_ARCHIVE.parent)
    assert len(items) > 4000 and skipped.get("cut-scene lines (several voices)", 0) > 2000
    assert "queen-joe" in {i.speaker for i in items} and len({i.speaker for i in items}) > 50
    for item in items[:: len(items) // 5]:
        assert item.span is not None
        x = _load_span(item.path, item.span)
        assert x.dtype == np.float32 and len(x) > 0.3 * SAMPLE_RATE and speech_span(x) is not None


def test_queen_archive_that_is_not_one_is_refused(tmp_path):
    from avse.data.realspeech import queen_table

    bad = _mk(tmp_path / "queen.1c")
    bad.write_bytes(b"RIFF" + b"\0" * 40)
    with pytest.raises(MetadataError, match="QTBL"):
        queen_table(bad)
    short = _queen_archive(tmp_path / "q2" / "queen.1c", {"JOE00011.SB": b"abc"})
    short.write_bytes(short.read_bytes()[:-2])  # the last entry runs past the end
    with pytest.raises(MetadataError, match="past the end"):
        queen_table(short)


@needs_fillets
@pytest.mark.slow
def test_fillets_lines_align(tmp_path):
    from avse.audio.io import load_audio
    from avse.data.align import align

    _, items, _ = discover(DEBIAN, ("cs",))
    for item in items[:5]:
        audio, _ = load_audio(item.path)
        res = align(audio, item.transcript, item.language)
        assert res.phones[-1][2] == pytest.approx(len(audio) / SAMPLE_RATE)
        assert sum(p != PAUSE for p, _, _ in res.phones) > 3


class _RncWriter:
    """Packs bytes as RNC method 1 from a plan of blocks of literal runs and back-references, the way the reader takes
    them: bits least significant first in 16-bit little-endian words, a literal run's bytes placed after the word
    that the bits are in; canonical Huffman codes of mixed lengths (the first symbol used gets the longest)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.word = -1  # where the word being filled starts
        self.nbits = 16

    def bits(self, value: int, n: int) -> None:
        for i in range(n):
            if self.nbits == 16:
                self.word, self.nbits = len(self.out), 0
                self.out += b"\0\0"
            if value >> i & 1:
                self.out[self.word + self.nbits // 8] |= 1 << (self.nbits % 8)
            self.nbits += 1

    @staticmethod
    def _symbol(value: int) -> tuple[int, int, int]:
        """value -> (symbol, extra bits, their count), as the reader decodes them."""
        if value < 2:
            return value, 0, 0
        s = value.bit_length()
        return s, value - (1 << (s - 1)), s - 1

    def table(self, values: list[int], before: dict[int, tuple[int, int]] | None = None) -> dict[int, tuple[int, int]]:
        """Write a table for the symbols ``values`` need -> {symbol: (code as written, length)}; an empty one (the
        reader then keeps the previous block's) where there are none or ``before`` has them all."""
        symbols = sorted({self._symbol(v)[0] for v in values})
        if not symbols or (before and set(symbols) <= set(before)):
            self.bits(0, 5)
            return before or {}
        k = len(symbols)
        comb = [min(i + 1, k - 1) for i in range(k)] if k > 1 else [1]  # 1, 2, ..., k-1, k-1: a complete code
        lengths = dict(zip(symbols, reversed(comb)))
        self.bits(max(symbols) + 1, 5)
        for s in range(max(symbols) + 1):
            self.bits(lengths.get(s, 0), 4)
        codes, code = {}, 0
        for length in range(1, 17):  # canonical: by length, then by symbol
            for s in symbols:
                if lengths[s] == length:
                    msb_first = code >> (16 - length)
                    codes[s] = (int(f"{msb_first:0{length}b}"[::-1], 2), length)
                    code += 1 << (16 - length)
        return codes

    def value(self, table: dict[int, tuple[int, int]], value: int) -> None:
        symbol, extra, n = self._symbol(value)
        self.bits(*table[symbol])
        self.bits(extra, n)

    def pack(self, blocks: list[list[tuple[bytes, tuple[int, int] | None]]]) -> tuple[bytes, bytes]:
        """``blocks``: per block [(literal bytes, (distance, length) or None)], only a block's last step without a
        match; a block whose matches the previous tables can code writes empty ones -> (packed, unpacked)."""
        import struct

        from avse.data.realspeech import _crc16

        plain = bytearray()
        self.bits(0, 2)
        dist: dict[int, tuple[int, int]] = {}
        length: dict[int, tuple[int, int]] = {}
        for steps in blocks:
            for lit, match in steps:
                plain += lit
                if match:
                    for _ in range(match[1]):
                        plain.append(plain[-match[0]])
            raw = self.table([len(lit) for lit, _ in steps])
            dist = self.table([m[0] - 1 for _, m in steps if m], dist)
            length = self.table([m[1] - 2 for _, m in steps if m], length)
            self.bits(len(steps), 16)
            for lit, match in steps:
                self.value(raw, len(lit))
                self.out += lit
                if match:
                    self.value(dist, match[0] - 1)
                    self.value(length, match[1] - 2)
        body = bytes(self.out)
        head = b"RNC\x01" + struct.pack(">IIHH", len(plain), len(body), _crc16(bytes(plain)), _crc16(body)) + bytes([0, len(blocks)])
        return head + body, bytes(plain)


def test_crc16_is_the_reflected_a001_checksum():
    from avse.data.realspeech import _crc16

    assert _crc16(b"123456789") == 0xBB3D  # the check value of CRC-16/ARC
    assert _crc16(b"") == 0


def test_rnc_unpack_reads_literals_and_overlapping_back_references():
    from avse.data.realspeech import rnc_unpack

    rng = np.random.default_rng(0)
    noise = bytes(rng.integers(0, 256, 300, dtype=np.uint8))
    steps = [(b"ab", (2, 9)), (noise[:37], (1, 40)), (b"", (39, 60)), (noise[37:300], (300, 120)), (b"xyz", None)]
    packed, plain = _RncWriter().pack([steps])
    assert plain.startswith(b"ababababab") and len(plain) == 2 + 9 + 37 + 40 + 60 + 263 + 120 + 3
    assert rnc_unpack(packed) == plain
    # several blocks, codes of up to 5 bits, a block that keeps the match tables of the one before
    blocks = [steps[:2] + [(b"q", None)], [(noise[:5], (3, 7)), (b"", (11, 30)), (noise[5:9], (4, 2)), (b"", (6, 5)), (b"zz", None)],
              [(noise[9:200], None)], [(b"k", (3, 30)), (b"m", (11, 30)), (b"end", None)]]  # the last: second block's tables
    packed, plain = _RncWriter().pack(blocks)
    assert rnc_unpack(packed) == plain
    with pytest.raises(ValueError, match="not an RNC"):
        rnc_unpack(b"RIFF" + packed[4:])
    with pytest.raises(ValueError, match="checksum"):
        rnc_unpack(packed[:30] + bytes([packed[30] ^ 0x10]) + packed[31:])
    with pytest.raises(ValueError, match="cut short"):
        rnc_unpack(packed[:-5])


def _sky_archive(folder: Path, files: dict[int, tuple[bytes, bool]]) -> Path:
    """``sky.dnr`` and ``sky.dsk`` as the game's CD release ships them: {file number: (data after the 22-byte
    header, RNC-packed or not)}, every other file's offset in 16-byte units, the others' in bytes."""
    import struct

    disk, index = bytearray(), bytearray(struct.pack("<I", len(files)))
    for k, (number, (data, packed)) in enumerate(files.items()):
        disk += b"\0" * (-len(disk) % 16 + 16 * (k % 2))
        size = 22 + len(data)
        head = struct.pack("<H", (size >> 8) & 0xFF00 | (0x80 if packed else 0)) + b"\0" * 10 + struct.pack("<H", size & 0xFFFF) + b"\0" * 8
        blob = head + (_RncWriter().pack([[(data, None)]])[0] if packed else data)
        offset = len(disk) >> 4 | 0x800000 if k % 2 else len(disk) + 3  # in 16-byte units, or in bytes (bit 23 clear)
        disk += b"\0" * (0 if k % 2 else 3)
        flags = len(blob) | (0 if packed else 0x800000)
        index += struct.pack("<H", number) + offset.to_bytes(3, "little") + flags.to_bytes(3, "little")
        disk += blob
    _mk(folder / "sky.dsk").write_bytes(bytes(disk))
    (folder / "sky.dnr").write_bytes(bytes(index))
    return folder


def _pcm8(text: str, voice: Voice) -> bytes:
    from avse.audio.io import resample

    x = resample(synthesize(text, voice).audio, SAMPLE_RATE, 11025)
    return np.clip(np.round(x * 120 + 128), 0, 255).astype(np.uint8).tobytes()


def test_sky_talkie_lines_are_one_speaker_unpacked_or_not(tmp_path):
    voice = Voice("espeak", "en-us", "m3")
    src = tmp_path / "debian"
    root = src / "usr/share/scummvm/beneath-a-steel-sky"
    long_line = _pcm8("Nobody goes up to the factory at night, not even the guards, not since the accident last winter, "
                      "when the second furnace broke and the whole floor went dark for a week.", voice)
    assert len(long_line) + 22 > 65535  # its size needs the header's high byte
    _sky_archive(root, {
        50003: (_pcm8("Where is the lift?", voice), False),
        51200: (long_line, True),
        60203: (b"\x80" * 400, False),  # a sound effect, not a line
        12: (b"\0" * 64, True),  # game data
    })
    kinds, items, skipped = discover(src)
    assert kinds == ["sky"] and skipped == {}
    assert [(i.id, i.speaker, i.language, i.transcript) for i in items] == [("sky-0003", "sky", "en", None), ("sky-1200", "sky", "en", None)]
    with pytest.raises(ConfigError, match="no recordings found"):
        discover(src, ("cs",))
    summary = import_speech(src, tmp_path / "out", jobs=1, progress=False)
    assert summary["imported"] == 2
    from avse.audio.io import resample

    lengths = {}
    pcm = {"sky-0003": _pcm8("Where is the lift?", voice), "sky-1200": long_line}
    for e in load_real_speech(tmp_path / "out"):
        x, sr = sf.read(str(tmp_path / "out" / e["wavfile"]))
        assert sr == SAMPLE_RATE and e["phones"] is None and np.abs(x).max() > 0.05
        lengths[e["id"]] = len(x) / SAMPLE_RATE
        want = resample((np.frombuffer(pcm[e["id"]], np.uint8).astype(np.float32) - 128) / 128, 11025, SAMPLE_RATE)
        n = min(len(x), len(want))
        assert np.corrcoef(x[:n], want[:n])[0, 1] > 0.99  # the line itself, from its first sample
    assert lengths["sky-1200"] == pytest.approx(len(long_line) / 11025, abs=0.01)  # decoded whole, unpacked
    assert lengths["sky-0003"] == pytest.approx(len(_pcm8("Where is the lift?", voice)) / 11025, abs=0.01)
    # a packed line damaged on disk is skipped and counted, the import goes on
    disk = root / "sky.dsk"
    blob = bytearray(disk.read_bytes())
    item = next(i for i in items if i.id == "sky-1200")
    assert item.sky is not None
    blob[item.sky[1] + 22 + 40] ^= 0x55
    disk.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="1 unreadable"):
        summary = import_speech(src, tmp_path / "out2", jobs=1, progress=False)
    assert summary["imported"] == 1 and summary["skipped"] == {"unreadable": 1}


def test_sky_index_that_is_not_one_is_refused(tmp_path):
    from avse.data.realspeech import sky_table

    bad = _mk(tmp_path / "sky.dnr")
    bad.write_bytes(b"\x05\0\0\0" + b"\0" * 16)  # says 5 entries, holds 2
    with pytest.raises(MetadataError, match="5 entries"):
        sky_table(bad)
    bad.write_bytes(b"\0\0")
    with pytest.raises(MetadataError, match="entry count"):
        sky_table(bad)
    bad.write_bytes(b"\0\0\0\0")
    with pytest.raises(MetadataError, match="lists no files"):
        sky_table(bad)


def test_sky_file_cut_short_or_without_header_is_a_media_error(tmp_path):
    from avse.data.realspeech import sky_file

    disk = _mk(tmp_path / "sky.dsk")
    disk.write_bytes(b"\x80" * 100)
    for entry, why in [((50001, 60, 80, 0x800000 | 80), "past the end"), ((50002, 0, 1, 0x800000 | 1), "shorter than its 22-byte header")]:
        with pytest.raises(MediaError, match=why):
            sky_file(disk, entry)


SKY_ROOT = DEBIAN / "usr/share/scummvm/beneath-a-steel-sky"


@pytest.mark.skipif(not (SKY_ROOT / "sky.dsk").is_file(), reason=f"no Beneath a Steel Sky in {DEBIAN} (scripts/fetch_real_speech --games)")
@pytest.mark.slow
def test_the_packaged_sky_talkie_unpacks_to_speech():
    from avse.data.align import speech_span
    from avse.data.realspeech import _sky_speech

    _, items, _ = discover(SKY_ROOT)
    assert len(items) > 3400 and {i.speaker for i in items} == {"sky"}
    for item in items[:: len(items) // 8]:
        assert item.sky is not None
        x = _sky_speech(item.path, item.sky)  # an RNC-packed line fails its checksums unless unpacked right
        assert x.dtype == np.float32 and len(x) > 0.2 * SAMPLE_RATE and speech_span(x) is not None
