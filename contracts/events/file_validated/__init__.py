"""Majors of `sluice.file.validated`: one subpackage per major (`v1`, ...)."""
