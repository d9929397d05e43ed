"""Majors of `sluice.batch.failed`: one subpackage per major (`v1`, ...)."""
