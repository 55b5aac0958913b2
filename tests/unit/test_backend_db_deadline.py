"""The request's connection deadline: a database wait never outlives it."""

from __future__ import annotations

import time

import pytest

from app.db import acquire_timeout, connection_deadline


def test_outside_a_request_the_acquire_timeout_is_the_setting() -> None:
    assert acquire_timeout(1.0) == 1.0


@pytest.mark.parametrize(("left_s", "expected"), [(0.3, 0.3), (5.0, 1.0), (-2.0, 0.05)])
def test_inside_a_request_it_is_cut_to_what_is_left(left_s: float, expected: float) -> None:
    token = connection_deadline.set(time.monotonic() + left_s)
    try:
        assert acquire_timeout(1.0) == pytest.approx(expected, abs=0.02)
    finally:
        connection_deadline.reset(token)
