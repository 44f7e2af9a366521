"""The RFC 9293 TCP state diagram, seen from a passive observer: the one place where endpoint transitions live.

An observer never sees a socket's state; it sees segments. The connection engine
(`connection.py`) turns each segment, checked against the sequence and acknowledgement
numbers, into *events* for one endpoint or the other (for example, "this endpoint has
received the peer's FIN", which is known only once the endpoint acknowledges FIN seq+1).
This module says what each event does to each state, exactly as the RFC 9293 diagram
(section 3.3.2) draws it. Events with no entry for the current state change nothing.

States are short strings with the RFC names, so that they print as they are. `UNKNOWN`
is the state of an endpoint whose opening was not captured (a connection picked up
midstream); it takes part in the close sequence like ESTABLISHED, since a FIN is
meaningful whatever came before.
"""

from __future__ import annotations

from typing import Final

CLOSED: Final = "CLOSED"
LISTEN: Final = "LISTEN"
SYN_SENT: Final = "SYN_SENT"
SYN_RCVD: Final = "SYN_RCVD"
ESTABLISHED: Final = "ESTABLISHED"
FIN_WAIT_1: Final = "FIN_WAIT_1"
FIN_WAIT_2: Final = "FIN_WAIT_2"
CLOSING: Final = "CLOSING"
TIME_WAIT: Final = "TIME_WAIT"
CLOSE_WAIT: Final = "CLOSE_WAIT"
LAST_ACK: Final = "LAST_ACK"
UNKNOWN: Final = "UNKNOWN"

ALL_STATES: Final = (
    CLOSED,
    LISTEN,
    SYN_SENT,
    SYN_RCVD,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    CLOSING,
    TIME_WAIT,
    CLOSE_WAIT,
    LAST_ACK,
    UNKNOWN,
)

# Events, named after what happened to the endpoint whose state moves.
SEND_SYN: Final = "send_syn"  # it sent a SYN (active open)
SEND_SYN_ACK: Final = "send_syn_ack"  # it answered the peer's SYN with a SYN-ACK acking ISN+1 (passive open)
RECV_SYN_ACK: Final = "recv_syn_ack"  # it acknowledged the peer's SYN-ACK (ack = peer ISN+1): it saw it
RECV_ACK_OF_SYN: Final = "recv_ack_of_syn"  # the peer acknowledged its SYN-ACK (ack = its ISN+1)
SEND_FIN: Final = "send_fin"  # it sent a FIN
RECV_FIN: Final = "recv_fin"  # it acknowledged the peer's FIN (ack >= FIN seq+1): it saw it
RECV_ACK_OF_FIN: Final = "recv_ack_of_fin"  # the peer acknowledged its FIN
SEND_RST: Final = "send_rst"  # it sent a RST: it has dropped the connection
RECV_RST: Final = "recv_rst"  # the peer's RST was acceptable (seq in window, or acks our SYN)
TIME_WAIT_EXPIRED: Final = "time_wait_expired"  # 2*MSL passed since it entered TIME_WAIT

TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    # opening
    (CLOSED, SEND_SYN): SYN_SENT,
    (LISTEN, SEND_SYN): SYN_SENT,
    (UNKNOWN, SEND_SYN): SYN_SENT,
    (CLOSED, SEND_SYN_ACK): SYN_RCVD,  # it was listening: LISTEN -> SYN_RCVD (LISTEN itself is never seen)
    (LISTEN, SEND_SYN_ACK): SYN_RCVD,
    (UNKNOWN, SEND_SYN_ACK): SYN_RCVD,
    (SYN_SENT, SEND_SYN_ACK): SYN_RCVD,  # simultaneous open
    (SYN_SENT, RECV_SYN_ACK): ESTABLISHED,
    (UNKNOWN, RECV_SYN_ACK): ESTABLISHED,  # its SYN was not captured, its ACK of the SYN-ACK was
    (SYN_RCVD, RECV_ACK_OF_SYN): ESTABLISHED,
    # closing, active side
    (SYN_RCVD, SEND_FIN): FIN_WAIT_1,
    (ESTABLISHED, SEND_FIN): FIN_WAIT_1,
    (UNKNOWN, SEND_FIN): FIN_WAIT_1,
    (FIN_WAIT_1, RECV_ACK_OF_FIN): FIN_WAIT_2,
    (FIN_WAIT_1, RECV_FIN): CLOSING,  # simultaneous close
    (FIN_WAIT_2, RECV_FIN): TIME_WAIT,
    (CLOSING, RECV_ACK_OF_FIN): TIME_WAIT,
    (TIME_WAIT, TIME_WAIT_EXPIRED): CLOSED,
    # closing, passive side
    (SYN_RCVD, RECV_FIN): CLOSE_WAIT,
    (ESTABLISHED, RECV_FIN): CLOSE_WAIT,
    (UNKNOWN, RECV_FIN): CLOSE_WAIT,
    (CLOSE_WAIT, SEND_FIN): LAST_ACK,
    (LAST_ACK, RECV_ACK_OF_FIN): CLOSED,
}

# A RST ends the connection in every state (RFC 9293 3.10.7); acceptability of a received
# RST is decided by the engine from the sequence numbers before it raises RECV_RST.
for _state in ALL_STATES:
    TRANSITIONS[(_state, SEND_RST)] = CLOSED
    if _state not in (CLOSED, LISTEN, TIME_WAIT):
        TRANSITIONS[(_state, RECV_RST)] = CLOSED
del _state

EDGES_FROM: Final[dict[str, dict[str, str]]] = {state: {} for state in ALL_STATES}
"""TRANSITIONS by state, then event: looked up with no (state, event) key to build and hash."""
for (_state, _event), _new_state in TRANSITIONS.items():
    EDGES_FROM[_state][_event] = _new_state
del _state, _event, _new_state
