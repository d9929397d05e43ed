"""Majors of `sluice.batch.completed`: one subpackage per major (`v1`, ...)."""
