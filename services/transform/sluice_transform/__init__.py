"""The transform service: one deploy unit."""
