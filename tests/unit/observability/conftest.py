"""Fixtures shared by the observability tests."""

from __future__ import annotations

import pytest
from aws_lambda_powertools import Metrics


@pytest.fixture(autouse=True)
def no_metrics_left_over() -> None:
    # Powertools' Metrics instances share one metric set per process: a test that ran earlier in
    # this process (any order: the suite runs on several workers) and left a handler's metrics
    # unflushed must not add them to the EMF these tests read.
    Metrics().clear_metrics()
