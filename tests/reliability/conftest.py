"""Fixtures of the reliability scenarios (see `scenario.py`)."""

from tests.reliability.scenario import fast_retries, rig

__all__ = ["fast_retries", "rig"]
