"""Talking-face generation: speech and a face in, lip-synced face frames out (``TalkingFace``), and the lip-sync expert."""

from avse.talking.generate import TalkingFace

__all__ = ["TalkingFace"]
