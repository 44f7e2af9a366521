"""The tracker's timer queue: Zeek's connection timers, fired in order of due time, then of setting.

The tracker sets a handful of timers per connection (attempt, expire, delete, inactivity) and
fires the due ones before each packet. One heap of (due, order) entries would do, but it costs a
dozen tuple comparisons per timer, and a busy capture sets several timers per connection. Most
timers of one kind, though, are set with the same delay after the packet being processed, so
they arrive in due-time order: each kind gets a first-in first-out lane that takes a timer as
long as its due time is not earlier than the lane's last one; the rest (out-of-order timestamps,
re-armed timers) go into a heap. The next timer is the earliest of the lanes' heads and the
heap's top, ties going to the one set first: exactly the order the single heap would give.
Where it is (which lane, or the heap) is kept up to date, so asking whether a timer is due
costs one comparison and firing one costs one look over the lanes.

The timers every connection gets when it is created (`push_new`) take no entry at all: their
lane holds the connection itself, whose start time and `timer_order` give the due time and the
order (a pointer instead of an 80-byte entry; under a SYN flood that is most of the timers).
"""

from __future__ import annotations

import heapq
import math
from collections import deque

from .connection import Connection


class TimerEntry:
    """One timer: when it is due, the order it was set in, its connection and kind, and the
    connection's timer generation when it was set (a timer of an older generation was cancelled)."""

    due: float
    order: int
    conn: Connection
    kind: str
    generation: int

    def __init__(self, due: float, order: int, conn: Connection, kind: str, generation: int) -> None:
        self.due = due
        self.order = order
        self.conn = conn
        self.kind = kind
        self.generation = generation

    def __lt__(self, other: TimerEntry) -> bool:
        """Fires first: due earlier, or at the same time and set first."""
        return self.due < other.due or (self.due == other.due and self.order < other.order)

    def __repr__(self) -> str:
        return f"TimerEntry({self.due}, {self.order}, {self.kind}, generation {self.generation})"


class NewLane:
    """A lane of the timers set when a connection is created, `delay` after its start: the `index`-th
    of them (`push_new`), each kept as its connection. Its timers are due in the order of the lane."""

    kind: str
    delay: float
    index: int
    conns: deque[Connection]

    def __init__(self, kind: str, delay: float, index: int) -> None:
        self.kind = kind
        self.delay = delay
        self.index = index
        self.conns = deque()


class TimerQueue:
    def __init__(self) -> None:
        self.lanes: dict[str, deque[TimerEntry]] = {}
        self._lane_list: list[deque[TimerEntry]] = []  # the same lanes, to look over quickly
        self.new_lanes: list[NewLane] = []  # `push_new`'s, in the order a connection's timers are set
        self.heap: list[TimerEntry] = []
        self.order = 0
        self.next_due = math.inf  # the next timer's due time (inf: none)
        self._next_lane: deque[TimerEntry] | None = None  # where that timer is (None: the heap's top)
        self._next_new: NewLane | None = None  # or this connection lane's head

    def __len__(self) -> int:
        return (
            len(self.heap)
            + sum(len(lane) for lane in self.lanes.values())
            + sum(len(lane.conns) for lane in self.new_lanes)
        )

    def push_new(self, conn: Connection, index: int, delay: float, kind: str) -> None:
        """The `index`-th timer set as `conn` is created (0, 1, ... in that order, nothing set between),
        due `delay` after its start. Kept as the connection in that lane when it fits (same delay, due
        no earlier than the lane's last); else an ordinary timer (`push`)."""
        lanes = self.new_lanes
        if index == 0:
            conn.timer_order = self.order + 1
        if index == len(lanes):
            lanes.append(NewLane(kind, delay, index))
        lane = lanes[index]
        due = conn.start + delay
        conns = lane.conns
        if (
            lane.kind != kind
            or lane.delay != delay
            or conn.timer_order + index != self.order + 1
            or (conns and conns[-1].start > conn.start)
        ):
            self.push(due, conn, kind)
            return
        self.order += 1
        conns.append(conn)
        if due < self.next_due:
            self.next_due = due
            self._next_lane = None
            self._next_new = lane

    def push(self, due: float, conn: Connection, kind: str, lane_name: str = "") -> None:
        """Set a timer. Timers set with the same delay after the packet being processed should share
        a lane (`lane_name`, by default the kind): they then arrive in due-time order."""
        self.order += 1
        entry = TimerEntry(due, self.order, conn, kind, conn.timer_generation)
        lane = self.lanes.get(lane_name or kind)
        if lane is None:
            lane = self.lanes[lane_name or kind] = deque()
            self._lane_list.append(lane)
        if not lane or lane[-1].due <= due:
            lane.append(entry)
        else:
            heapq.heappush(self.heap, entry)
            lane = None
        if due < self.next_due:  # (a tie goes to the timer set first: never this one)
            self.next_due = due
            self._next_lane = lane
            self._next_new = None

    def pop_due_before(self, now: float) -> TimerEntry | None:
        """Remove and return the next timer if it is due strictly before `now`; else None."""
        if self.next_due >= now:
            return None
        new = self._next_new
        lane = self._next_lane
        if new is not None:
            conn = new.conns.popleft()
            entry = TimerEntry(conn.start + new.delay, conn.timer_order + new.index, conn, new.kind, 0)
        elif lane is None:
            entry = heapq.heappop(self.heap)
        else:
            entry = lane.popleft()
        self._find_next()
        return entry

    def _find_next(self) -> None:
        best_due = math.inf
        best_order = 0
        best_lane: deque[TimerEntry] | None = None
        best_new: NewLane | None = None
        for lane in self._lane_list:
            if lane:
                head = lane[0]
                if head.due < best_due or (head.due == best_due and head.order < best_order):
                    best_due, best_order, best_lane = head.due, head.order, lane
        for new in self.new_lanes:
            if new.conns:
                conn = new.conns[0]
                due = conn.start + new.delay
                order = conn.timer_order + new.index
                if due < best_due or (due == best_due and order < best_order):
                    best_due, best_order, best_lane, best_new = due, order, None, new
        heap = self.heap
        if heap:
            top = heap[0]
            if top.due < best_due or (top.due == best_due and top.order < best_order):
                best_due, best_lane, best_new = top.due, None, None
        self.next_due = best_due
        self._next_lane = best_lane
        self._next_new = best_new

    def drop_finished(self) -> None:
        """Forget the timers of finished connections (they would keep those connections in memory)."""
        for name, lane in self.lanes.items():
            self.lanes[name] = deque(entry for entry in lane if not entry.conn.finished)
        self._lane_list = list(self.lanes.values())
        for new in self.new_lanes:
            new.conns = deque(conn for conn in new.conns if not conn.finished)
        self.heap = [entry for entry in self.heap if not entry.conn.finished]
        heapq.heapify(self.heap)
        self._find_next()

    def clear(self) -> None:
        self.lanes.clear()
        self._lane_list.clear()
        for new in self.new_lanes:
            new.conns.clear()
        self.heap.clear()
        self.next_due = math.inf
        self._next_lane = None
        self._next_new = None
