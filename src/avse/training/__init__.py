"""Training with Lightning (not yet implemented)."""
