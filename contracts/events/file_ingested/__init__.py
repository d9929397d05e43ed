"""Majors of `sluice.file.ingested`: one subpackage per major (`v1`, ...)."""
