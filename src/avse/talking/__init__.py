"""Talking-face generation (not yet implemented)."""
