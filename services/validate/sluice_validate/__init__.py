"""The validate service: one deploy unit."""
