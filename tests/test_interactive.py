"""What a person at a terminal (or a job being stopped) sees: Ctrl-C, the progress line, the
streamed JSON report, and SIGTERM.

For Ctrl-C, SIGTERM and the progress line the CLI runs as a child process (`python -m
tcpflow_audit`). For Ctrl-C (and SIGTERM) the test feeds a real capture's packets into the child's
standard input through a pipe, waits until the child has read them all and sits blocked reading
more (its pipe is empty and the kernel shows it waiting in a pipe read), and sends SIGINT
(SIGTERM). The oracle for "the report covers what was read" is a normal run (in process, conftest's
`cli`) over a file holding exactly the packets that were fed. For the progress line the child's
stderr is the slave end of a pseudo-terminal. Every wait is bounded. What needs no real process
(the streamed JSON report, --quiet, where the SIGTERM handler is installed) runs in process.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import platform
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from capture_helpers import Pcap
from conftest import ROOT, cli_command, no_partial_files, sample

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="watches the child through /proc and uses a pseudo-terminal"
)

NORMAL_MIX = sample("normal_mix.pcap")  # LINUX_SLL, 50 connections, 3301 packets (kernel-made)
DEMO = sample("demo.pcap")  # Ethernet, 9 connections
SYN_FLOOD = sample("syn_flood.pcap")
WAIT = 30.0  # seconds: the bound on every wait (normally reached in well under a second)
FED = 1500  # packets of normal_mix.pcap fed before Ctrl-C: some connections finished, some open


# ------------------------------------------------------------------ watching the child
_READ_SYSCALL = {"x86_64": 0, "aarch64": 63, "riscv64": 63, "ppc64le": 3, "s390x": 3}.get(platform.machine())


def _pending_in_pipe(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def _blocked_reading_stdin(pid: int) -> bool:
    """The child sleeps in a read of a pipe (its stdin: it reads no other pipe)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    if stat[stat.rindex(")") + 2] != "S":
        return False
    if "pipe" in wchan:  # pipe_read, pipe_wait, anon_pipe_read depending on the kernel
        return True
    try:  # kernels that hide wchan: the syscall and its first argument (fd 0)
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return _READ_SYSCALL is not None and fields[:2] == [str(_READ_SYSCALL), "0x0"]


def wait_until_input_consumed(proc: subprocess.Popen) -> None:
    """Until the child has taken every byte out of its stdin pipe and waits for more."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the CLI exited early with status {proc.returncode}"
        if _pending_in_pipe(proc.stdin.fileno()) == 0 and _blocked_reading_stdin(proc.pid):
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"the CLI did not consume its input within {WAIT} s")


def start_on_stdin(tmp_path: Path, *args, **popen_options) -> tuple[subprocess.Popen, Path, Path]:
    """The CLI reading '-' from a pipe; stdout and stderr go to files (no pipe to fill up)."""
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            cli_command("-", *args), stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=ROOT, **popen_options
        )
    return proc, out_path, err_path


def feed_all(proc: subprocess.Popen, data: bytes) -> None:
    """Write `data` to the child's standard input and wait until the child has consumed all of it."""
    if data:
        proc.stdin.write(data)
        proc.stdin.flush()
    wait_until_input_consumed(proc)


def reap(proc: subprocess.Popen) -> None:
    """Kill the child if it still runs (a failed test), so that no test leaves a process behind."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=WAIT)


def interrupt(proc: subprocess.Popen, data: bytes, signum: int = signal.SIGINT) -> int:
    """Feed `data`, wait until it is consumed, Ctrl-C (or send `signum`); the exit status."""
    try:
        feed_all(proc, data)
        proc.send_signal(signum)
        return proc.wait(timeout=WAIT)
    finally:
        reap(proc)
        proc.stdin.close()


def fed_capture(tmp_path: Path) -> tuple[bytes, Path]:
    """The first FED packets of normal_mix.pcap, as bytes to feed and as a file for the oracle run."""
    cap = Pcap.load(NORMAL_MIX)
    data = cap.build(cap.records[:FED])
    path = tmp_path / "fed.pcap"
    path.write_bytes(data)
    return data, path


# (signal, exit status, start of the stderr line): how Ctrl-C and SIGTERM end a run
BY_CTRL_C = (signal.SIGINT, 130, "tcpflow-audit: interrupted: ")
BY_SIGTERM = (signal.SIGTERM, 143, "tcpflow-audit: interrupted by SIGTERM: ")  # 128 + SIGTERM


def interrupted_line(stderr: str, prefix: str = BY_CTRL_C[2]) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, stderr
    return lines[0]


# ------------------------------------------------------------------ 1. Ctrl-C and SIGTERM (timeout, systemd, kill)
@pytest.mark.parametrize(
    "fmt, report, signum, status, prefix",
    [
        ("csv", "flows", *BY_CTRL_C),
        ("json", "all", *BY_CTRL_C),
        ("csv", "flows", *BY_SIGTERM),
    ],
    ids=["csv-flows-ctrl-c", "json-all-ctrl-c", "csv-flows-sigterm"],
)
def test_interrupt_reports_the_packets_read_so_far_on_stdout(tmp_path, cli, fmt, report, signum, status, prefix):
    data, fed_file = fed_capture(tmp_path)
    oracle = cli(fed_file, "--report", report, "--format", fmt)

    proc, out_path, err_path = start_on_stdin(tmp_path, "--report", report, "--format", fmt)
    exit_status = interrupt(proc, data, signum)
    stderr = err_path.read_text()
    assert "Traceback" not in stderr, stderr
    assert exit_status == status, stderr
    line = interrupted_line(stderr, prefix)
    assert line.startswith(f"{prefix}read {FED:,} packets ({len(data):,} bytes), "), line
    assert line.endswith("; the report covers the packets read until then"), line
    out = out_path.read_text()
    if fmt == "csv":
        # a complete CSV: exactly the run over the packets fed (connections still open when the
        # signal came are finalised as capture_end, as at the end of a file)
        assert out == oracle.stdout
        rows = list(csv.DictReader(io.StringIO(out)))
        assert 0 < len(rows) < 50
        assert {r["end_reason"] for r in rows} >= {"fin", "capture_end"}
        assert f"{len(rows):,} connections" in line
    else:
        got, want = json.loads(out), json.loads(oracle.stdout)
        assert got["summary"]["interrupted"] is True and want["summary"]["interrupted"] is False
        assert got["summary"]["packets_read"] == FED
        assert got["summary"]["files"] == ["-"]
        for key in ("files", "interrupted"):
            del got["summary"][key], want["summary"][key]
        assert got == want
        assert 0 < len(got["flows"]) < 50


def test_ctrl_c_table_summary_says_interrupted(tmp_path):
    data, _ = fed_capture(tmp_path)
    proc, out_path, err_path = start_on_stdin(tmp_path)
    assert interrupt(proc, data) == 130, err_path.read_text()
    table = out_path.read_text()
    assert "interrupted   yes (Ctrl-C): this report covers the packets read until then" in table
    assert f"packets read  {FED}" in table


@pytest.mark.parametrize("signum, status, prefix", [BY_CTRL_C, BY_SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_leaves_the_previous_output_file_and_no_temporary_file(tmp_path, signum, status, prefix):
    data, _ = fed_capture(tmp_path)
    out = tmp_path / "flows.csv"
    previous = "start,start_epoch\nyesterday,1\n"
    out.write_text(previous)
    proc, stdout_path, err_path = start_on_stdin(tmp_path, "--report", "flows", "--csv", "-o", out, "--quiet")
    exit_status = interrupt(proc, data, signum)
    stderr = err_path.read_text()
    assert "Traceback" not in stderr, stderr
    assert exit_status == status, stderr
    assert stderr.count("\n") == 1, stderr  # the one line, even with --quiet
    line = interrupted_line(stderr, prefix)
    assert line.startswith(f"{prefix}read {FED:,} packets ({len(data):,} bytes), "), line
    assert line.endswith(f"; {out} was not written (an earlier {out}, if any, is left as it was)"), line
    assert out.read_text() == previous
    assert stdout_path.read_text() == ""
    no_partial_files(tmp_path)

    # no previous file: none afterwards, and no temporary file (a JSON report is written as the run goes)
    fresh = tmp_path / "fresh.json"
    proc, _, err_path = start_on_stdin(tmp_path, "--report", "all", "--json", "-o", fresh)
    assert interrupt(proc, data, signum) == status, err_path.read_text()
    interrupted_line(err_path.read_text(), prefix)
    assert not fresh.exists()
    no_partial_files(tmp_path)


@pytest.mark.parametrize("signum, status, prefix", [BY_CTRL_C, BY_SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_leaves_the_previous_output_directory(tmp_path, cli, signum, status, prefix):
    data, fed_file = fed_capture(tmp_path)
    outdir = tmp_path / "report"
    cli(DEMO, "--output-dir", outdir)  # last night's complete set
    before = {p.name: p.read_bytes() for p in outdir.iterdir()}
    assert sorted(before) == ["anomalies.csv", "flows.csv", "summary.json"]

    proc, _, err_path = start_on_stdin(tmp_path, "--output-dir", outdir)
    assert interrupt(proc, data, signum) == status, err_path.read_text()
    stderr = err_path.read_text()
    assert "Traceback" not in stderr, stderr
    assert f"; nothing was written to {outdir} " in interrupted_line(stderr, prefix)
    assert {p.name: p.read_bytes() for p in outdir.iterdir()} == before  # no temporary files either

    # the same capture without Ctrl-C replaces the whole set
    cli(fed_file, "--output-dir", outdir)
    assert json.loads((outdir / "summary.json").read_text())["packets_read"] == FED
    assert (outdir / "flows.csv").read_bytes() != before["flows.csv"]


def test_ctrl_c_before_the_first_byte(tmp_path):
    proc, out_path, err_path = start_on_stdin(tmp_path, "--report", "all", "--json")
    assert interrupt(proc, b"") == 130
    stderr = err_path.read_text()
    assert "Traceback" not in stderr, stderr
    assert interrupted_line(stderr).startswith("tcpflow-audit: interrupted: read 0 packets (0 bytes), 0 connections;")
    report = json.loads(out_path.read_text())
    assert report["flows"] == [] and report["anomalies"] == []
    assert report["summary"]["interrupted"] is True and report["summary"]["packets_read"] == 0


# ------------------------------------------------------------------ 2. progress line
def run_with_terminal(args, *, stdout_to_terminal=False, stdin=subprocess.DEVNULL, feed=None):
    """Run the CLI with stderr (and optionally stdout) on a pseudo-terminal.

    Returns (status, bytes the terminal received, stdout bytes when stdout is a pipe). With `feed`
    (bytes), stdin is a pipe: the bytes are fed, and Ctrl-C follows once they are consumed.
    """
    master, slave = os.openpty()
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every slave descriptor is closed (the child exited)
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    try:
        proc = subprocess.Popen(
            cli_command(*args),
            stdin=subprocess.PIPE if feed is not None else stdin,
            stdout=slave if stdout_to_terminal else subprocess.DEVNULL if feed is not None else subprocess.PIPE,
            stderr=slave,
            cwd=ROOT,
        )
    finally:
        os.close(slave)
    reader.start()
    try:
        if feed is not None:
            status = interrupt(proc, feed)
            stdout = b""
        else:
            stdout, _ = proc.communicate(timeout=120)
            stdout = stdout or b""
            status = proc.returncode
        reader.join(WAIT)
        assert not reader.is_alive(), "the terminal was not closed"
    finally:
        reap(proc)
        os.close(master)
    return status, b"".join(received).decode(), stdout


def test_progress_on_a_terminal_and_not_elsewhere(cli_process):
    args = [NORMAL_MIX, "--report", "flows", "--csv"]
    size = NORMAL_MIX.stat().st_size
    status, terminal, stdout = run_with_terminal(args)
    assert status == 0, terminal
    # the final numbers: all the bytes of the file, every packet and connection, a rate; the line ends
    final = terminal.rstrip("\r\n").split("\r")[-1]
    assert final.startswith(f"{size / 1e6:,.1f} of {size / 1e6:,.1f} MB (100%), 3,301 packets, 50 connections in "), (
        repr(terminal)
    )
    assert final.endswith(" packets/s)\x1b[K"), repr(terminal)
    assert terminal.endswith("\r\n")  # the terminal's rendering of "\n": the display ends its line

    # stderr to a pipe: no progress at all, and the same report on stdout byte for byte
    plain = cli_process(*args, text=False)
    assert plain.stderr == b""
    assert stdout == plain.stdout
    assert len(list(csv.DictReader(io.StringIO(stdout.decode())))) == 50

    # --quiet on a terminal: nothing
    status, terminal, stdout = run_with_terminal([*args, "--quiet"])
    assert status == 0 and terminal == ""
    assert stdout == plain.stdout


def test_progress_shows_bytes_read_from_a_pipe_and_how_far_an_interrupted_run_got(tmp_path):
    data, _ = fed_capture(tmp_path)
    status, terminal, _ = run_with_terminal(
        ["-", "--report", "flows", "--csv", "-o", tmp_path / "flows.csv"], feed=data
    )
    assert status == 130, terminal
    lines = terminal.split("\r\n")
    # the last progress state (no total for a pipe), then the interrupted message on its own line
    progress = lines[-3].split("\r")[-1]
    assert progress.startswith(f"{len(data) / 1e6:,.1f} MB read, {FED:,} packets, "), repr(terminal)
    assert lines[-2].startswith(f"tcpflow-audit: interrupted: read {FED:,} packets"), repr(terminal)
    assert not (tmp_path / "flows.csv").exists()


def test_progress_stays_off_a_terminal_that_shows_the_rows():
    # CSV rows streamed to the terminal as connections finish: no progress line to draw over them
    status, terminal, _ = run_with_terminal([DEMO, "--report", "flows", "--csv"], stdout_to_terminal=True)
    assert status == 0
    lines = terminal.split("\r\n")
    assert lines[0].startswith("start,start_epoch,")
    assert len([line for line in lines if line]) == 1 + 9
    assert "packets/s" not in terminal
    # the table is written after the run: the progress line first, finished, then the report
    status, terminal, _ = run_with_terminal([DEMO], stdout_to_terminal=True)
    assert status == 0
    progress, report = terminal.split("packets/s)\x1b[K\r\n", 1)  # the first line end is the progress line's
    assert "9 connections in " in progress.split("\r")[-1]
    assert "packets/s" not in report
    assert report.startswith("files ") and "Connections that did not end normally" in report


# ------------------------------------------------------------------ 3. streamed JSON
def _as_csv_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_json_report_is_the_same_document_written_as_it_goes(tmp_path, cli):
    sources = [SYN_FLOOD, DEMO]  # 3029 connections and several kinds of finding
    outdir = tmp_path / "dir"
    cli(*sources, "--output-dir", outdir)
    csv_flows = list(csv.DictReader(io.StringIO((outdir / "flows.csv").read_text())))
    csv_findings = list(csv.DictReader(io.StringIO((outdir / "anomalies.csv").read_text())))
    summary = json.loads((outdir / "summary.json").read_text())
    assert len(csv_flows) == 3029 and csv_findings

    documents = {}
    for report in ("flows", "all", "anomalies", "summary"):
        out = tmp_path / f"{report}.json"
        cli(*sources, "--report", report, "--json", "-o", out)
        text = out.read_text()
        document = json.loads(text)
        # exactly what json.dump(document, indent=2) writes
        assert text == json.dumps(document, indent=2) + "\n"
        documents[report] = document
    assert list(documents["flows"]) == ["flows"]
    assert list(documents["all"]) == ["flows", "anomalies", "summary"]  # summary last: known at the end
    assert list(documents["anomalies"]) == ["anomalies"]
    assert list(documents["summary"]) == ["summary", "anomalies"]

    for rows in (documents["flows"]["flows"], documents["all"]["flows"]):
        assert [{k: _as_csv_text(v) for k, v in row.items()} for row in rows] == csv_flows
    for rows in (documents["all"]["anomalies"], documents["anomalies"]["anomalies"], documents["summary"]["anomalies"]):
        assert [{k: _as_csv_text(v) for k, v in row.items()} for row in rows] == csv_findings
    assert documents["all"]["summary"] == summary == documents["summary"]["summary"]

    # no connection at all: still a valid document
    result = cli(DEMO, "--host", "192.0.2.1", "--report", "all", "--json")
    empty = json.loads(result.stdout)
    assert empty["flows"] == [] and empty["summary"]["connections"] == 0
    assert result.stdout == json.dumps(empty, indent=2) + "\n"


# ------------------------------------------------------------------ 4. SIGTERM: whose handler
def test_an_ignored_sigterm_stays_ignored(tmp_path, cli):
    # a parent that ignores SIGTERM for its children (as Python does for SIGINT) is respected
    data, fed_file = fed_capture(tmp_path)
    oracle = cli(fed_file, "--report", "flows", "--csv")
    proc, out_path, err_path = start_on_stdin(
        tmp_path, "--report", "flows", "--csv", preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN)
    )
    try:
        feed_all(proc, data)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert proc.poll() is None, err_path.read_text()
        proc.stdin.close()  # the end of the input ends the run normally
        assert proc.wait(timeout=WAIT) == 0, err_path.read_text()
    finally:
        reap(proc)
    assert err_path.read_text() == ""
    assert out_path.read_text() == oracle.stdout


def test_the_sigterm_handler_is_the_cli_s_alone(monkeypatch, cli):
    """Installed for the CLI's run only (and only in the main thread); the library leaves SIGTERM alone."""
    import tcpflow_audit
    from tcpflow_audit.pipeline import Auditor

    seen = []
    real_run = Auditor.run

    def run(self, sources):
        seen.append(signal.getsignal(signal.SIGTERM))
        return real_run(self, sources)

    monkeypatch.setattr(Auditor, "run", run)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    cli(DEMO, "--csv", "--report", "flows")
    assert callable(seen[-1]), seen  # the CLI's handler while reading
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored afterwards

    tcpflow_audit.audit([str(DEMO)])
    assert seen[-1] == signal.SIG_DFL  # the library call installs nothing
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    # a handler of the program that calls main() is left in place
    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        cli(DEMO)
        assert seen[-1] is own and signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)

    # outside the main thread no handler can be installed: the CLI runs without one (exit status 0,
    # checked by `cli` in the thread: a failure there leaves `results` empty)
    results = []
    worker = threading.Thread(target=lambda: results.append(cli(DEMO)))
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive() and len(results) == 1
    assert seen[-1] == signal.SIG_DFL and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ------------------------------------------------------------------ 5. --quiet in a job's log
def test_quiet_hides_warnings_but_not_the_reason_for_exit_3(tmp_path, cli):
    cap = Pcap.load(NORMAL_MIX)
    raw = NORMAL_MIX.read_bytes()
    offset = cap.records[1200][0]
    corrupt = bytearray(raw)
    corrupt[offset + 8 : offset + 12] = b"\xff\xff\xff\xff"  # captured length 4294967295
    corrupt_path = tmp_path / "corrupt.pcap"
    corrupt_path.write_bytes(bytes(corrupt))
    truncated = tmp_path / "truncated.pcap"
    truncated.write_bytes(raw[: offset + 16 + 10])  # cut inside the last record's data
    out = tmp_path / "flows.csv"

    # an input error: the one line (file and byte offset) even with -q, and exit 3
    for quiet in ("-q", "--quiet"):
        result = cli(corrupt_path, DEMO, "--report", "flows", "--csv", "-o", out, quiet, status=3)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"tcpflow-audit: error: {corrupt_path} at byte {offset}: "), lines
        assert "4294967295" in lines[0], lines
        assert result.stdout == ""

    # a capture cut short mid-record is a warning: -q prints nothing, and the run is clean (exit 0)
    loud = cli(truncated, "--report", "flows", "--csv", "-o", out)
    assert [line.split(" at byte ")[0] for line in loud.stderr.splitlines()] == [
        f"tcpflow-audit: warning: {truncated}"
    ], loud.stderr
    quiet = cli(truncated, "--report", "flows", "--csv", "-o", out, "-q")
    assert (quiet.exit_code, quiet.stderr, quiet.stdout) == (0, "", "")
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) > 0

    # with --strict it is an input error (exit 3), so -q shows it, as an error
    strict = cli(truncated, "--report", "flows", "--csv", "-o", out, "-q", "--strict", status=3)
    assert strict.stderr.splitlines() == [loud.stderr.splitlines()[0].replace(": warning: ", ": error: ", 1)]


def test_an_interrupted_run_that_writes_nothing_does_not_finalise_the_live_connections():
    """Ctrl-C on a big capture must stop at once when its report would not be written (to a file):
    finalising a million live connections of a SYN flood took tens of seconds. A report on
    standard output still gets them, since it covers everything read."""
    from tcpflow_audit.pipeline import Auditor

    capture = str(sample("close_wait_leak.pcap"))  # 44 connections
    outcome = {}
    for finalise in (True, False):
        auditor = Auditor()
        auditor.finalise_when_interrupted = finalise
        records = []

        def ctrl_c_at_the_fifth_connection(record, records=records):
            records.append(record)
            if len(records) == 5:
                raise KeyboardInterrupt

        auditor.add_flow_sink(ctrl_c_at_the_fifth_connection)
        stats = auditor.run([capture])
        assert stats.interrupted and 0 < stats.packets_read < 410
        assert stats.connections == auditor.tracker.connections_seen > 5
        outcome[finalise] = (len(records), len(auditor.tracker.live), stats.packets_read)
    assert outcome[False][0] == 5 and outcome[False][1] > 5 and outcome[False][2] == outcome[True][2]
    assert outcome[True][0] == 5 + outcome[False][1] and outcome[True][1] == 0  # the live ones were finalised
