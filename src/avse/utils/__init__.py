"""Small helpers shared across avse: atomic file writes and shard parsing (fs), worker pools (pool), seeding, frame-signal smoothing (signal)."""
