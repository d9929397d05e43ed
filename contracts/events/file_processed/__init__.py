"""Majors of `sluice.file.processed`: one subpackage per major (`v1`, ...)."""
