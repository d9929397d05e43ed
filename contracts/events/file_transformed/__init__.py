"""Majors of `sluice.file.transformed`: one subpackage per major (`v1`, ...)."""
