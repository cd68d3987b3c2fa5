"""Worker pools and temp-file clean-up."""

from avse.utils.pool import part_stem, remove_stale_parts


def test_part_stem_reads_atomic_temp_names():
    assert part_stem(".S00001_mixed.k3j_x9a2.part.wav") == "S00001_mixed"
    assert part_stem("S00001_mixed.wav") is None


def test_remove_stale_parts_only_touches_temp_files(tmp_path):
    keep = tmp_path / "S00001_mixed.wav"
    keep.write_bytes(b"x")
    stale = tmp_path / ".S00001_mixed.abcd1234.part.wav"
    stale.write_bytes(b"y")
    other = tmp_path / ".S00002_mixed.abcd1234.part.wav"
    other.write_bytes(b"z")
    removed = remove_stale_parts(tmp_path, {"S00001_mixed"})
    assert removed == [stale] and keep.exists() and other.exists()


def _raise_metadata_error(path: str) -> None:
    from avse.errors import MetadataError

    raise MetadataError(path, "no aligned speech phones")


def test_an_error_raised_in_a_worker_reaches_the_parent():
    """avse's errors take other arguments than their message; they must still pickle, or the pool hangs."""
    import pickle

    import pytest

    from avse.data.align import AlignmentError
    from avse.errors import EmptyAudioError, MediaError, MetadataError, about_file
    from avse.utils.pool import worker_pool

    for err in (MediaError("/a.wav", "truncated"), EmptyAudioError("/b.wav"), MetadataError("/c.json", "empty"),
                AlignmentError("too short")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and back.__dict__ == err.__dict__
    with pytest.raises(MediaError, match=r"^/v.mp4: /a.wav: truncated$") as caught, about_file("/v.mp4"):
        raise MediaError("/a.wav", "truncated")
    assert str(pickle.loads(pickle.dumps(caught.value))) == "/v.mp4: /a.wav: truncated"
    with worker_pool(1) as pool, pytest.raises(MetadataError, match="x.wav: no aligned speech phones") as caught:
        pool.apply_async(_raise_metadata_error, ("x.wav",)).get(timeout=60)
    assert caught.value.problem == "no aligned speech phones"
