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
