"""The ingest service: one deploy unit."""
