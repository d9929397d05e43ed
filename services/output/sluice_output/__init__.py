"""The output service: one deploy unit."""
