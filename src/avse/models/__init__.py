"""Models: audio-only and audio-visual networks (not yet implemented)."""
