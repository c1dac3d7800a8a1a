"""Small shared utilities: atomic file writes, seeding, image grids."""
