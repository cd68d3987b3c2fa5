"""Data: the synthetic audio-visual corpus, AVSE metadata, scenes and torch datasets."""
