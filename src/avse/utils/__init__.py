"""Small helpers shared across avse: atomic file writes, seeding, sharding."""
