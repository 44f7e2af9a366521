"""Detector thresholds: every number a detector compares against, with its default and the reason.

`Thresholds()` gives the defaults; `Thresholds.from_toml(path)` reads overrides from a TOML file
(top-level keys and/or a `[thresholds]` table; with `engine_fields`, engine settings too) and rejects
unknown keys; `parse_setting("NAME=VALUE")` reads one from the command line (--threshold);
`checked_value` is the one rule both go through; `as_dict()` lists them all.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any

#: Linux net.ipv4.ip_local_port_range default 32768-60999: the ports one client can use to one server ip:port.
LINUX_EPHEMERAL_PORTS = 60999 - 32768 + 1   # 28232


@dataclass(slots=True)
class Thresholds:
    # --- handshake -----------------------------------------------------------------------------------
    # Linux/RFC 6298 initial RTO is 1 s; by 3 s a server has retransmitted its SYN-ACK twice (1 s + 2 s).
    handshake_timeout_s: float = 3.0
    # Linux backs the SYN-ACK off 1 s, 2 s, 4 s...: 2 retransmissions prove >= 3 s without the third ACK
    # even when the capture's own clock cannot show it.
    missing_ack_synack_retries: int = 2
    # One SYN retransmission proves the first SYN went a full RTO (Linux: 1 s) without any reply.
    syn_timeout_retries: int = 1
    # A handful of backscatter RSTs is noise on the Internet; 10 on one service points at spoofed SYNs.
    handshake_reset_warn_count: int = 10
    # --- SYN flood (per server ip:port, sliding window) ------------------------------------------------
    # Rates are per second over this window (Juniper SRX syn-flood screen and Snort/Suricata
    # detection_filter rules count per 1 s).
    syn_flood_window_s: float = 1.0
    # Juniper SRX screen "syn-flood attack-threshold" default: 200 SYNs/s to one destination without
    # a completed handshake.
    syn_flood_rate: int = 200
    # Distinct-source counting keeps at most this many addresses per server (memory bound).
    max_tracked_sources: int = 65536
    # --- refused connections (per server ip:port) ----------------------------------------------------
    # Sliding window for counting refusals (RST to a SYN: Zeek REJ).
    refused_window_s: float = 10.0
    # A retrying client refuses about once per second (Linux connect() returns at once); 20 in 10 s
    # to one port means several clients or a tight retry loop against a service that is down.
    refused_storm_count: int = 20
    # --- close ---------------------------------------------------------------------------------------
    # Linux tcp_fin_timeout is 60 s: after that the peer's orphaned FIN_WAIT_2 socket is gone, and a
    # socket still in CLOSE_WAIT is a file descriptor the application forgot to close().
    close_wait_s: float = 60.0
    # 10 sockets left in CLOSE_WAIT on one service is a descriptor leak, not a one-off race.
    close_wait_critical_count: int = 10
    # Report (info) a server ip:port whose TIME_WAIT population reaches this peak; Linux keeps
    # tcp_max_tw_buckets (>= 4096) so a few hundred is harmless but worth showing.
    time_wait_info_peak: int = 100
    # Linux ip_local_port_range 32768-60999: 28232 ports from one client to one server ip:port.
    ephemeral_ports: int = LINUX_EPHEMERAL_PORTS
    # Warn when one client's TIME_WAIT sockets towards one server ip:port reach this share of the
    # ephemeral range (new connect()s start to fail with EADDRNOTAVAIL near 1.0).
    ephemeral_warn_fraction: float = 0.5
    ephemeral_critical_fraction: float = 0.9
    # Server-side TIME_WAIT accumulation: warn when the server closes first on at least this share of
    # its closed connections ("most") ...
    server_active_close_fraction: float = 0.8
    # ... and has closed at least this many (one server_close.pcap is not a pattern).
    server_active_close_min: int = 50
    # A server FIN or client FIN repeated now and then is a lost ACK; 10 on one service is a lossy path.
    fin_retransmit_warn_count: int = 10
    # --- aborts and reuse ----------------------------------------------------------------------------
    # RST-closing connection pools are common: warn only when at least this many established
    # connections of one service end in RST ...
    rst_abort_warn_count: int = 20
    # ... and they are at least this share of its established connections.
    rst_abort_warn_fraction: float = 0.2
    # Linux accepts a SYN in TIME_WAIT (higher ISN / timestamp); occasional reuse is normal, 10 on one
    # service means clients recycle ports faster than 2*MSL (60 s).
    syn_in_time_wait_warn_count: int = 10
    # --- stalls and dead peers -----------------------------------------------------------------------
    # Linux's zero-window probes start at the RTO (>= 200 ms) and back off; a window closed for 2 s
    # has outlived several probes: the receiving application stopped reading.
    zero_window_s: float = 2.0
    # Linux tcp_keepalive_intvl is 75 s: one side sending that long after the other's last packet has
    # had at least one probe/retransmission go unanswered.
    half_open_silence_s: float = 75.0
    # --- memory bound --------------------------------------------------------------------------------
    # Most (kind, server ip:port) aggregates kept; past this, new servers are counted in `dropped_keys`.
    max_tracked_servers: int = 100_000

    # -----------------------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str, engine_fields: Iterable[str] | None = None) -> Any:
        """Thresholds from a TOML file: top-level keys and/or a `[thresholds]` table.

        Unknown keys raise ValueError naming them. With `engine_fields` (the engine setting names),
        those keys (top level or in an `[engine]` table) are accepted too and the result is the
        pair `(thresholds, engine_settings_dict)`; without it, just the Thresholds.
        """
        with open(path, "rb") as f:
            data = tomllib.load(f)
        engine_names = set(engine_fields) if engine_fields is not None else None
        values: dict[str, Any] = {}
        engine: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in data.items():
            if key == "thresholds" and isinstance(value, dict):
                values.update(value)
            elif key == "engine" and isinstance(value, dict) and engine_names is not None:
                for name, setting in value.items():
                    if name in engine_names:
                        engine[name] = setting
                    else:
                        unknown.append("engine." + name)
            elif engine_names is not None and key in engine_names:
                engine[key] = value
            else:
                values[key] = value
        known = {f.name for f in fields(cls)}
        unknown += sorted(k for k in values if k not in known)
        if unknown:
            raise ValueError("unknown setting(s): %s" % ", ".join(unknown))
        thresholds = cls.from_dict(values)
        return thresholds if engine_names is None else (thresholds, engine)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        return cls().updated(data)

    def updated(self, data: dict[str, Any]) -> Thresholds:
        """A copy with the thresholds in `data` set, each checked by `checked_value`."""
        unknown = sorted(k for k in data if k not in _FIELDS)
        if unknown:
            raise ValueError("unknown threshold(s): %s (known: %s)" % (", ".join(unknown), ", ".join(_FIELDS)))
        values: dict[str, Any] = {name: self.checked_value(name, value) for name, value in data.items()}
        return replace(self, **values)

    @staticmethod
    def checked_value(name: str, value: Any) -> int | float:
        """`value` as threshold `name` holds it (int or float, as its default), or ValueError saying why not:
        not a number, not a whole number for a count, negative."""
        default = _FIELDS[name].default
        assert default is not MISSING
        if (isinstance(default, bool) or not isinstance(value, (int, float)) or isinstance(value, bool)
                or value != value):   # (NaN: every comparison with it is false, the detector would never fire)
            raise ValueError("threshold %s must be a number, got %r" % (name, value))
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("threshold %s must be an integer, got %r" % (name, value))
            value = int(value)
        else:
            value = float(value)
        if value < 0:
            raise ValueError("threshold %s must not be negative, got %r" % (name, value))
        return value

    @classmethod
    def parse_setting(cls, text: str) -> tuple[str, int | float]:
        """`NAME=VALUE` as the command line's --threshold gives it (dashes in NAME are taken as '_'):
        the name and its checked value, or ValueError naming what is wrong."""
        name, equals, value_text = text.partition("=")
        name = name.strip().replace("-", "_")
        if not equals or not name:
            raise ValueError("expected NAME=VALUE, got %r" % text)
        if name not in _FIELDS:
            raise ValueError("unknown threshold %r (known: %s)" % (name, ", ".join(_FIELDS)))
        value: int | float | str = value_text.strip()
        for kind in (int, float):
            try:
                value = kind(value_text)
                break
            except ValueError:
                pass
        return name, cls.checked_value(name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {f.name: f for f in fields(Thresholds)}
