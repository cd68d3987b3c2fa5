"""Objective evaluation (not yet implemented)."""
