"""The timer queue fires exactly in the order a single heap of (due time, order of setting) would."""

from __future__ import annotations

import heapq
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpflow_audit.connection import Connection
from tcpflow_audit.timers import TimerQueue

KINDS = ("attempt", "delete", "expire", "inactivity")


def connection() -> Connection:
    return Connection(0.0, b"\x0a\x00\x00\x01", 40000, b"\x0a\x00\x00\x02", 80, False, False)


# an operation: ("push", due, kind index, connection index, lane) or ("fire", now) or ("drop", connection index)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("push"),
            st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 1)),
            st.integers(0, 3),
            st.integers(0, 4),
            st.sampled_from(["", "", "a", "b"]),
        ),
        st.tuples(st.just("fire"), st.floats(0, 110, allow_nan=False).map(lambda x: round(x, 1))),
        st.tuples(st.just("drop"), st.integers(0, 4)),
    ),
    max_size=120,
)


@settings(max_examples=400, deadline=None)
@given(OPERATIONS)
def test_same_order_as_one_heap(operations: list[tuple]) -> None:
    conns = [connection() for _ in range(5)]
    queue = TimerQueue()
    reference: list[tuple] = []
    order = 0
    for op in operations:
        if op[0] == "push":
            _, due, kind, which, lane = op
            order += 1
            queue.push(due, conns[which], KINDS[kind], lane)  # any lanes: the same order
            heapq.heappush(reference, (due, order, which, KINDS[kind]))
        elif op[0] == "fire":
            now = op[1]
            fired = []
            while (entry := queue.pop_due_before(now)) is not None:
                fired.append((entry.due, entry.order, conns.index(entry.conn), entry.kind))
            expected = []
            while reference and reference[0][0] < now:
                expected.append(heapq.heappop(reference))
            assert fired == expected
            assert queue.next_due == (reference[0][0] if reference else math.inf)
        else:  # the tracker finishes a connection: its timers may be dropped (they would be skipped)
            which = op[1]
            conns[which].finished = True
            queue.drop_finished()
            reference = [entry for entry in reference if entry[2] != which]
            heapq.heapify(reference)
            conns[which] = connection()  # later pushes for this index are a new connection
        assert len(queue) == len(reference)
        assert queue.next_due <= min((entry[0] for entry in reference), default=math.inf)


def test_out_of_order_timers_go_to_the_heap_and_still_fire_in_order() -> None:
    conn = connection()
    queue = TimerQueue()
    for due in (10.0, 20.0, 5.0, 20.0, 15.0):  # 5.0 and 15.0 arrive late for the "expire" lane
        queue.push(due, conn, "expire")
    assert len(queue.heap) == 2
    fired = []
    while (entry := queue.pop_due_before(100.0)) is not None:
        fired.append((entry.due, entry.order))
    assert fired == [(5.0, 3), (10.0, 1), (15.0, 5), (20.0, 2), (20.0, 4)]
    assert queue.next_due == math.inf and len(queue) == 0


def test_a_timer_due_at_the_packet_time_waits() -> None:
    queue = TimerQueue()
    queue.push(15.0, connection(), "attempt")
    assert queue.pop_due_before(15.0) is None  # strictly before the packet, as in Zeek
    assert queue.next_due == 15.0
    assert queue.pop_due_before(15.000001) is not None
