"""round_places gives exactly what round(x, places) gives: ties, near-ties, signs, extremes."""

from __future__ import annotations

import math

import pytest
from conftest import nudge
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpflow_audit.rounding import round_places


def same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e7, 1e7),
    st.floats(-1e13, 1e13),
    st.floats(-1e-3, 1e-3),
)


@settings(max_examples=3000, deadline=None)
@given(VALUES, st.integers(0, 9))
def test_same_as_round(x: float, places: int) -> None:
    assert same_float(round_places(x, places), round(x, places)), (x, places)


@settings(max_examples=3000, deadline=None)
@given(st.integers(-(10**12), 10**12), st.integers(-4, 4), st.sampled_from([3, 6]))
def test_same_as_round_next_to_a_tie(k: int, steps: int, places: int) -> None:
    x = nudge((k + 0.5) / 10**places, steps)  # (k + 1/2) units of the last place, give or take
    assert same_float(round_places(x, places), round(x, places)), (x, places)


@pytest.mark.parametrize("x", [0.0, -0.0, 0.0005, -0.0005, 0.0015, 2.675, -2.675, 1e-300, -1e-300, 4.0e12, 1e300])
def test_hand_picked(x: float) -> None:
    for places in (0, 3, 6):
        assert same_float(round_places(x, places), round(x, places)), (x, places)
