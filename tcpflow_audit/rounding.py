"""Rounding to decimal places, exactly as round(x, places) does, without its decimal round trip.

round(x, places) on a float converts x to decimal digits and back, which costs about half a
microsecond: a noticeable share of the per-connection work, where several durations are rounded
for every connection. `round_places` gives the same float much faster in all but the rare cases
where it cannot be sure, and leaves those to round() (tests/test_rounding.py compares the two).
"""

from __future__ import annotations

import math
from typing import Final


def round_places(x: float, places: int) -> float:
    """round(x, places), the same float (sign of zero included), for places from 0 to 9.

    Away from a tie, rounding x * 10**places to an integer in floating point lands on the integer
    round() lands on: the product is off by at most half a unit in its last place, far less than
    the distance to the half that would matter. And integer / 10**places is the double nearest
    to the decimal number round() reads back. Within that error of a half, for magnitudes where
    the product is no longer exact to the unit, and for infinities and NaN, round() decides.
    """
    scale = _SCALES[places]
    scaled = abs(x) * scale
    if scaled < 4.0e15:
        whole = float(math.floor(scaled))
        fraction = scaled - whole  # exact
        if abs(fraction - 0.5) > scaled * 4.5e-16 + 1e-300:
            if fraction > 0.5:
                whole += 1.0
            return math.copysign(whole / scale, x)
    return round(x, places)


_SCALES: Final = [10.0**places for places in range(10)]
