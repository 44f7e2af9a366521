"""Zeek's vocabulary for a connection: its analyzer endpoint states, history letters and conn_state.

Zeek's TCP analyzer keeps, per endpoint, a coarse state (INACTIVE, SYN_SENT, SYN_ACK_SENT,
PARTIAL, ESTABLISHED, CLOSED, RESET) that moves on flags alone, and a per-connection history
string. conn.log's `conn_state` is a function of the two endpoint states, their sizes and the
history. This module holds those definitions so that `conn_state` and `history` mean exactly
what they mean in Zeek (base/protocols/conn/main.zeek and src/packet_analysis/protocol/tcp/).
The per-packet rules that move these states are in `connection.py`, next to the RFC ones.
"""

from __future__ import annotations

import re
from typing import Final

# Zeek analyzer endpoint states (TCP_ENDPOINT_*).
INACTIVE: Final = 0
SYN_SENT: Final = 1
SYN_ACK_SENT: Final = 2
PARTIAL: Final = 3
ESTABLISHED: Final = 4
CLOSED: Final = 5
RESET: Final = 6

# History bits (TCP_Endpoint::HIST_*); the responder's are shifted left by 16.
HIST_SYN_PKT: Final = 0x1
HIST_FIN_PKT: Final = 0x2
HIST_RST_PKT: Final = 0x4
HIST_FIN_RST_PKT: Final = 0x8
HIST_DATA_PKT: Final = 0x10
HIST_ACK_PKT: Final = 0x20
HIST_MULTI_FLAG_PKT: Final = 0x40
HIST_CORRUPT_PKT: Final = 0x80

_RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R.*")

# Ports Zeek's default scripts register as likely server ports (likely_server_ports): used to
# decide who is the originator of a connection whose first packet is not a bare SYN.
LIKELY_SERVER_PORTS: Final = frozenset(
    {
        20,
        21,
        22,
        23,
        25,
        53,
        79,
        80,
        81,
        88,
        110,
        111,
        113,
        135,
        137,
        139,
        143,
        161,
        179,
        389,
        443,
        445,
        465,
        502,
        512,
        513,
        514,
        563,
        585,
        587,
        614,
        631,
        636,
        853,
        989,
        990,
        992,
        993,
        995,
        1080,
        1194,
        1433,
        1723,
        1883,
        2049,
        2811,
        3128,
        3268,
        3306,
        3389,
        5060,
        5222,
        5223,
        5269,
        5432,
        5672,
        5900,
        6379,
        6666,
        6667,
        6668,
        6669,
        8000,
        8080,
        8443,
        8888,
        9200,
        11211,
        20000,
        27017,
    }
)


def conn_state(orig_state: int, resp_state: int, orig_size: int, resp_size: int, history: str) -> str:
    """Zeek's conn_state() from base/protocols/conn/main.zeek, branch for branch."""
    o_inactive = orig_state == INACTIVE or orig_state == PARTIAL
    r_inactive = resp_state == INACTIVE or resp_state == PARTIAL
    if resp_state == RESET:
        if orig_state in (SYN_SENT, SYN_ACK_SENT) or (orig_state == RESET and orig_size == 0 and resp_size == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig_state == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0_HISTORY.fullmatch(history) else "OTH"
        return "RSTO"
    if resp_state == CLOSED and orig_state == CLOSED:
        return "SF"
    if orig_state == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp_state == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig_state == SYN_SENT and resp_state == INACTIVE:
        return "S0"
    if orig_state == ESTABLISHED and resp_state == ESTABLISHED:
        return "S1"
    return "OTH"


def should_flip(src_port: int, dst_port: int, flags: int) -> bool:
    """Whether the first packet's sender is probably the responder (Zeek's WantConnection heuristic).

    A bare SYN is never flipped. A SYN-ACK always is (its sender answers a SYN we did not see).
    Otherwise the sender is taken for the server when its port is a likely server port and the
    destination's is not, or both are and the source port is the lower one.
    """
    syn = flags & 0x02
    ack = flags & 0x10
    if syn and not ack:
        return False
    if syn and ack:
        return True
    if src_port in LIKELY_SERVER_PORTS:
        if dst_port in LIKELY_SERVER_PORTS:
            return src_port < dst_port
        return True
    return False
