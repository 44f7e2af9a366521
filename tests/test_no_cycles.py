"""A finished connection is freed by reference counting alone: no reference cycles.

The pipeline pauses Python's cyclic garbage collector during a run (`pipeline._no_cyclic_collections`):
walking every live connection again and again cost 10% of the engine and found nothing. That is only
safe while nothing a connection leaves behind (its endpoints, timer entries, flow record and facts)
sits in a reference cycle; this test runs the CLI's three kinds of job over every sample capture with
the collector off and then looks for any such object still in memory.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, sample_captures

_SCRIPT = r"""
import collections, gc, sys
gc.disable()
from tcpflow_audit.cli import main
from tcpflow_audit.connection import _RELEASED, Connection, ConnectionFacts, Endpoint, FlowRecord
from tcpflow_audit.pipeline import Auditor
from tcpflow_audit.timers import TimerEntry
from tcpflow_audit.tracker import _NO_CONNECTION

KINDS = (Connection, Endpoint, FlowRecord, ConnectionFacts, TimerEntry)

def left() -> dict:
    return dict(collections.Counter(type(o).__name__ for o in gc.get_objects()
                                    if isinstance(o, KINDS) and o is not _RELEASED and o is not _NO_CONNECTION))
                                    # (the shared stand-ins)

out, paths = sys.argv[1], sys.argv[2:]
# the check sees these objects when they are there: records kept by a sink
kept = []
auditor = Auditor()
auditor.add_flow_sink(kept.append)
auditor.run(paths[:3])
seen = left()
del auditor, kept
for args in (["--output-dir", out], ["--csv", "-o", out + "/flows-only.csv"], ["--json", "-o", out + "/all.json"],
             ["--table"]):
    try:
        main(args + paths, standalone_mode=False)
    except SystemExit as stop:
        assert stop.code in (0, None), stop.code
print(seen)
print(left())
"""


def test_nothing_of_a_finished_connection_outlives_it_without_the_cyclic_collector(tmp_path: Path) -> None:
    samples = [str(p) for p in sample_captures()]
    assert len(samples) > 20
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path), *samples], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr
    seen, left = done.stdout.strip().splitlines()[-2:]
    assert "'FlowRecord'" in seen and "'ConnectionFacts'" in seen, seen  # the check can see them
    assert left == "{}", left
    assert (tmp_path / "flows.csv").stat().st_size > 10000 and (tmp_path / "all.json").exists()
