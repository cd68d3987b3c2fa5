"""Data: the synthetic audio-visual corpus, AVSE metadata, scene building, mixing and rendering, and torch datasets."""
