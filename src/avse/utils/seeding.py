"""Stable seeds derived from a run's seed and an item's name, the same in every process and on every machine."""

from __future__ import annotations

import hashlib


def item_seed(seed: int, name: str) -> int:
    """A stable 63-bit seed for item ``name`` (an id, or e.g. ``"epoch:index"``) of a run made with ``seed``."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


__all__ = ["item_seed"]
