"""Settings: the engine's timeouts and limits, each with its default and the reason for it.

Detector thresholds live with the detectors (`detectors/thresholds.py`); this module holds what
the connection engine needs. Defaults are Zeek's (so results can be checked against Zeek) and
Linux's (for TIME_WAIT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class EngineConfig:
    # Zeek's defaults (base/init-bare.zeek); the same names, so Zeek users recognise them.
    inactivity_timeout: float = 300.0  # tcp_inactivity_timeout: an idle connection is finalised after 5 min
    attempt_timeout: float = 5.0  # tcp_attempt_delay: a SYN with no reply is finalised (S0) after 5 s
    syn_timeout: float = 5.0  # tcp_SYN_timeout: first check for a dead connection 5 s after its start
    close_delay: float = 5.0  # tcp_close_delay: a closed connection is kept 5 s for stragglers
    linger: float = 5.0  # tcp_connection_linger: quiet time before a half-closed one is dropped
    session_timer: float = 6.0  # tcp_session_timer: period of the dead-connection check
    # Linux: TCP_TIMEWAIT_LEN is 60 s, i.e. 2*MSL with MSL = 30 s.
    msl: float = 30.0
    # Memory bound under hostile traffic: past this many live connections the oldest is finalised early
    # (end_reason "evicted", counted in the summary).
    max_connections: int = 1_000_000
    verify_checksums: bool = False

    @property
    def time_wait(self) -> float:
        return 2.0 * self.msl

    def apply(self, name: str, value: Any) -> None:
        """Set setting `name` from a config file or an option, or raise ValueError saying what is wrong:
        an unknown name, a wrong type, a time that is negative or not finite, a cap below 1."""
        default = getattr(EngineConfig(), name, None) if name != "time_wait" else None
        if default is None:
            raise ValueError(f"unknown engine setting {name!r}")
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"engine setting {name} must be true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"engine setting {name} must be a whole number of at least 1, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"engine setting {name} must be a number of seconds, not negative, got {value!r}")
        else:
            value = float(value)
        setattr(self, name, value)
