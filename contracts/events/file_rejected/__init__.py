"""Majors of `sluice.file.rejected`: one subpackage per major (`v1`, ...)."""
