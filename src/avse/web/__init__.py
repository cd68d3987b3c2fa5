"""The browser UI (not yet implemented)."""
