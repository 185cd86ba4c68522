"""Training recipes, one per file."""
