"""Real-time processing (not yet implemented)."""
