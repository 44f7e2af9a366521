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


class TimerQueue:
    def __init__(self) -> None:
        self.lanes: dict[str, deque[TimerEntry]] = {}
        self._lane_list: list[deque[TimerEntry]] = []  # the same lanes, to look over quickly
        self.heap: list[TimerEntry] = []
        self.order = 0
        self.next_due = math.inf  # the next timer's due time (inf: none)
        self._next_lane: deque[TimerEntry] | None = None  # where that timer is (None: the heap's top)

    def __len__(self) -> int:
        return len(self.heap) + sum(len(lane) for lane in self.lanes.values())

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

    def pop_due_before(self, now: float) -> TimerEntry | None:
        """Remove and return the next timer if it is due strictly before `now`; else None."""
        if self.next_due >= now:
            return None
        lane = self._next_lane
        if lane is None:
            entry = heapq.heappop(self.heap)
        else:
            entry = lane.popleft()
        self._find_next()
        return entry

    def _find_next(self) -> None:
        best: TimerEntry | None = None
        best_lane: deque[TimerEntry] | None = None
        for lane in self._lane_list:
            if lane:
                head = lane[0]
                if best is None or head < best:
                    best, best_lane = head, lane
        heap = self.heap
        if heap and (best is None or heap[0] < best):
            best, best_lane = heap[0], None
        self.next_due = math.inf if best is None else best.due
        self._next_lane = best_lane

    def drop_finished(self) -> None:
        """Forget the timers of finished connections (they would keep those connections in memory)."""
        for name, lane in self.lanes.items():
            self.lanes[name] = deque(entry for entry in lane if not entry.conn.finished)
        self._lane_list = list(self.lanes.values())
        self.heap = [entry for entry in self.heap if not entry.conn.finished]
        heapq.heapify(self.heap)
        self._find_next()

    def clear(self) -> None:
        self.lanes.clear()
        self._lane_list.clear()
        self.heap.clear()
        self.next_due = math.inf
        self._next_lane = None
