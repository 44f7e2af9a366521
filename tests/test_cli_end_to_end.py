"""End to end: the command line on every kernel-made sample capture, states read back from its CSV.

The expected values are what a TCP expert reads off the packets (sample_pcaps/README.md says
how each capture was made); conn_state/history are Zeek's meanings. The CLI runs in this process
(conftest's `cli`), except in the last test, which is about the command's exit through os._exit.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import sample, sample_captures


@pytest.fixture
def flows(cli) -> Callable[[str], list[dict[str, str]]]:
    """flows(name): the rows of `--report flows --format csv` over the sample capture `name`."""

    def flows(name: str) -> list[dict[str, str]]:
        result = cli(sample(name), "--report", "flows", "--format", "csv")
        return list(csv.DictReader(io.StringIO(result.stdout)))

    return flows


@pytest.fixture
def only_flow(flows) -> Callable[[str], dict[str, str]]:
    """only_flow(name): the one row of a sample capture that holds one connection."""

    def only_flow(name: str) -> dict[str, str]:
        rows = flows(name)
        assert len(rows) == 1, rows
        return rows[0]

    return only_flow


# (capture, client port, conn_state, history, client_state, server_state, close_initiator, end_reason)
SINGLE_CONNECTION = [
    ("client_close.pcap", "40001", "SF", "ShADadFf", "TIME_WAIT", "CLOSED", "client", "fin"),
    ("server_close.pcap", "40002", "SF", "ShADadfF", "CLOSED", "TIME_WAIT", "server", "fin"),
    ("refused.pcap", "40003", "REJ", "Sr", "CLOSED", "CLOSED", "", "rst"),
    ("half_close.pcap", "40004", "SF", "ShADaFdf", "TIME_WAIT", "CLOSED", "client", "fin"),
    ("simultaneous_close.pcap", "40005", "SF", "ShADadFf", "TIME_WAIT", "TIME_WAIT", "both", "fin"),
    ("rst_abort.pcap", "40006", "RSTO", "ShADadR", "CLOSED", "CLOSED", "", "rst"),
    ("missing_third_ack.pcap", "40007", "S1", "Sh", "SYN_SENT", "SYN_RCVD", "", "capture_end"),
    ("close_wait.pcap", "40008", "S2", "ShADaF", "FIN_WAIT_2", "CLOSE_WAIT", "client", "capture_end"),
]


@pytest.mark.parametrize(
    "capture,port,conn_state,history,client_state,server_state,initiator,end_reason",
    SINGLE_CONNECTION,
    ids=[c[0] for c in SINGLE_CONNECTION],
)
def test_single_connection_captures(
    only_flow, capture, port, conn_state, history, client_state, server_state, initiator, end_reason
):
    row = only_flow(capture)
    assert (row["client_ip"], row["client_port"]) == ("10.99.0.1", port)
    assert row["server_ip"] == "10.99.0.2"
    assert (row["conn_state"], row["history"]) == (conn_state, history)
    assert (row["client_state"], row["server_state"]) == (client_state, server_state)
    assert (row["close_initiator"], row["end_reason"]) == (initiator, end_reason)
    assert row["direction_guessed"] == "false"


def test_missing_third_ack_counts_synack_retransmissions(only_flow):
    row = only_flow("missing_third_ack.pcap")
    assert row["retransmits"] == "2"  # SYN-ACK resent at ~1 s and ~3 s
    assert row["handshake_rtt_ms"] == ""  # never completed
    assert float(row["syn_synack_ms"]) >= 0


def test_completed_handshake_has_rtts_and_byte_counts(only_flow):
    row = only_flow("client_close.pcap")
    assert float(row["handshake_rtt_ms"]) == pytest.approx(float(row["syn_synack_ms"]) + float(row["synack_ack_ms"]))
    assert (row["client_bytes"], row["server_bytes"]) == ("6", "64")
    # per tshark: S A AP A AF A from the client; SA A AP AF from the server
    assert (row["client_packets"], row["server_packets"]) == ("6", "4")
    assert row["start"].endswith("Z") and "T" in row["start"]
    assert float(row["end_epoch"]) >= float(row["start_epoch"])


def test_ipv6_addresses_in_text_form(only_flow):
    row = only_flow("ipv6_client_close.pcap")
    assert (row["client_ip"], row["server_ip"]) == ("fd99::1", "fd99::2")
    assert (row["conn_state"], row["client_state"], row["server_state"]) == ("SF", "TIME_WAIT", "CLOSED")


def test_demo_capture_has_its_mix(flows):
    rows = {row["client_port"]: row for row in flows("demo.pcap")}
    assert len(rows) == 9
    assert rows["40104"]["conn_state"] == "REJ"
    assert rows["40106"]["conn_state"] == "RSTO"
    assert (rows["40107"]["conn_state"], rows["40107"]["server_state"]) == ("S2", "CLOSE_WAIT")
    normal = [r for p, r in rows.items() if p not in ("40104", "40106", "40107")]
    assert all(r["conn_state"] == "SF" for r in normal)
    assert {r["close_initiator"] for r in normal} == {"client", "server"}


def test_port_reuse_during_time_wait_gives_two_connections(flows):
    rows = flows("syn_during_time_wait.pcap")
    assert len(rows) == 2
    assert {r["client_port"] for r in rows} == {"44003"}
    first, second = sorted(rows, key=lambda r: float(r["start_epoch"]))
    assert first["server_state"] == "TIME_WAIT"  # the server closed first
    assert second["conn_state"] == "SF"


def test_json_and_jsonl_have_the_csv_columns(cli, only_flow):
    csv_row = only_flow("client_close.pcap")
    jsonl = cli(sample("client_close.pcap"), "--report", "flows", "--format", "jsonl").stdout
    document = json.loads(cli(sample("client_close.pcap"), "--report", "all", "--json").stdout)
    jsonl_row = json.loads(jsonl.splitlines()[0])
    assert list(jsonl_row) == list(csv_row)
    assert document["flows"][0]["conn_state"] == "SF"
    assert document["summary"]["connections"] == 1
    assert document["summary"]["conn_state"] == {"SF": 1}


def test_default_summary_lists_what_did_not_end_normally(cli):
    out = cli(sample("demo.pcap")).stdout
    assert "connections" in out and "9" in out
    assert "did not end normally" in out
    for port in ("40104", "40106", "40107"):
        assert port in out


def test_python_module_and_library_agree():
    from tcpflow_audit import audit

    result = audit(str(sample("close_wait.pcap")))
    assert list(result.flows["server_state"]) == ["CLOSE_WAIT"]
    assert result.summary["connections"] == 1


def test_the_command_exits_without_teardown_but_with_everything_written(tmp_path: Path, cli_process):
    """`tcpflow-audit` leaves through os._exit once main is done (cli.run): what it wrote to a pipe
    must still be complete (flushed first), and the exit status must be main's."""
    captures = [str(p) for p in sample_captures()]
    piped = cli_process(*captures, "--report", "flows", "--format", "csv")
    cli_process(*captures, "--report", "flows", "--format", "csv", "-o", tmp_path / "flows.csv")
    written = (tmp_path / "flows.csv").read_text()
    assert len(piped.stdout) > 100_000 and piped.stdout == written
    assert cli_process(captures[0], "--format", "xml", status=2).stderr.startswith("Usage")
    failing = cli_process(sample("syn_flood.pcap"), "--fail-on", "warning", status=1)
    assert "syn_flood" in failing.stdout
    not_a_capture = tmp_path / "notes.pcap"
    not_a_capture.write_text("this is a text file, not a capture\n")
    broken = cli_process(not_a_capture, status=3)
    assert broken.stderr.startswith(f"tcpflow-audit: error: {not_a_capture}")
    # an atexit handler (coverage's, say) still runs: then the command exits the normal way
    script = (
        "import atexit, sys; atexit.register(lambda: print('atexit ran', file=sys.stderr)); "
        "sys.argv[0] = 'tcpflow-audit'; from tcpflow_audit.cli import run; run()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, captures[0], "--csv"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "atexit ran" in done.stderr and done.stdout.startswith("start,")
