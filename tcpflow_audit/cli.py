"""The command line: a thin click shell over the library (`pipeline`, `detectors`, `report`).

Exit status (documented in the README): 0 clean; 1 a finding at or above --fail-on; 2 usage
error; 3 input errors (a file that could not be read to its end; a cut-short file only with
--strict); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM). Input problems are reported on
stderr as one line each, naming the file and byte offset (input errors also with --quiet, which
hides only warnings and the progress line); everything read before a problem is kept and reported.

Ctrl-C: the run stops, the connections read so far are finalised (end_reason capture_end) and a
report to standard output covers them; files named by -o/--output-dir are not replaced (the
previous ones, if any, stay as they were), since a file of a partial run would look complete.
SIGTERM (timeout, systemd, kill) does the same: for the CLI's run a handler turns it into
`Terminated`, a KeyboardInterrupt, so the same code paths handle it (temporary files included).
"""

from __future__ import annotations

import atexit
import dataclasses
import ipaddress
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import click

from . import __version__
from .build import describe as describe_build
from .build import stale_modules
from .config import EngineConfig
from .detectors import ANOMALY_COLUMNS, SEVERITIES, DetectorSet, finding_row
from .detectors.thresholds import Thresholds
from .inputs import expand_inputs
from .pipeline import Auditor, PacketFilter, RunStats
from .report import (FLOW_COLUMNS, FLOW_TABLE_COLUMNS, JsonObject, RowWriter, SummaryCollector, atomic_output,
                     iso_utc, render_summary, render_table, summary_dict)

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130   # 130 = 128 + SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM   # 143
REPORTS = ("summary", "flows", "anomalies", "all")
FORMATS = ("table", "csv", "json", "jsonl")


class Terminated(KeyboardInterrupt):
    """SIGTERM during the CLI's run, raised as a KeyboardInterrupt so that it stops the run as Ctrl-C does."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


class TerminationHandler:
    """The SIGTERM handler; `signum` says whether the run received SIGTERM (Auditor.run swallows the exception)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        raise Terminated(signum)   # also a second time: it stops the writing of a report, like Ctrl-C


@contextmanager
def sigterm_as_interrupt(handler: TerminationHandler) -> Iterator[None]:
    """For the duration of the block, SIGTERM calls `handler`, which raises `Terminated` (a KeyboardInterrupt).

    Only in the main thread (the only one Python delivers signals to) and only when SIGTERM has its
    default disposition, as Python does for SIGINT: an ignored SIGTERM stays ignored and a handler
    of the program calling `main()` stays in place. The previous handler is restored afterwards.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL):
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_time(value: str | None, option: str) -> float | None:
    """ISO 8601 (naive means UTC) or epoch seconds."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither ISO 8601 nor epoch seconds", param_hint=option)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def build_filter(since: str | None, until: str | None, hosts: tuple[str, ...], ports: tuple[int, ...],
                 nets: tuple[str, ...]) -> PacketFilter:
    try:
        host_bytes = frozenset(ipaddress.ip_address(h).packed for h in hosts)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--host")
    try:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in nets)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--net")
    return PacketFilter(since=parse_time(since, "--since"), until=parse_time(until, "--until"),
                        hosts=host_bytes, ports=frozenset(ports), nets=networks)


class Progress:
    """A one-line progress display on stderr, rewritten in place (only used when stderr is a terminal).

    The pipeline calls it when reading starts and every 16384 packets; it redraws at most twice a
    second. `done()` draws the final numbers and ends the line, so even a small capture shows them.
    """

    def __init__(self, auditor: Auditor, stream=None) -> None:
        self.auditor = auditor
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.last = float("-inf")
        self.readers: list = []
        self.packets = 0
        self.finished = False

    def __call__(self, readers: list, packets: int) -> None:
        self.readers = readers
        self.packets = packets
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self._draw(now)

    def line(self, now: float) -> str:
        read = sum(r.bytes_read for r in self.readers)
        sizes = [r.size for r in self.readers]
        if sizes and None not in sizes:
            total = sum(sizes)
            share = 100.0 * read / total if total else 100.0
            where = f"{read / 1e6:,.1f} of {total / 1e6:,.1f} MB ({share:.0f}%)"
        else:
            where = f"{read / 1e6:,.1f} MB read"
        elapsed = max(now - self.started, 1e-6)
        connections = self.auditor.tracker.connections_seen
        return (f"{where}, {self.packets:,} packets, {connections:,} connections in {elapsed:,.1f} s "
                f"({self.packets / elapsed:,.0f} packets/s)")

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\033[K")
        self.stream.flush()

    def done(self) -> None:
        """Draw the final numbers (the whole run, or how far it got) and end the line; once."""
        if self.finished:
            return
        self.finished = True
        self.packets = max(self.packets, self.auditor.stats.packets_read)
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()


def threshold_options(function):
    """One --option per detector threshold, generated from the Thresholds dataclass."""
    for name, default in reversed(list(Thresholds().as_dict().items())):
        option = "--" + name.replace("_", "-")
        function = click.option(option, name, type=type(default), default=None, show_default=False,
                                help=f"detector threshold (default {default}; see README)")(function)
    return function


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("pcaps", nargs=-1)
@click.option("--report", "report", type=click.Choice(REPORTS), default="summary", show_default=True,
              help="summary: counts and connections that did not end normally (plus findings); flows: one row "
                   "per connection; anomalies: one row per finding; all: everything")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="output format (default table)")
@click.option("--csv", "fmt", flag_value="csv", help="same as --format csv")
@click.option("--json", "fmt", flag_value="json", help="same as --format json")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="same as --format jsonl")
@click.option("--table", "fmt", flag_value="table", help="same as --format table")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="write the report to FILE (atomically: complete or not at all)")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="write flows.csv, anomalies.csv and summary.json into DIR (atomically)")
@click.option("--excel", is_flag=True, help="CSV with a UTF-8 byte-order mark, for spreadsheet programs")
@click.option("--verify-checksums", is_flag=True,
              help="validate IP/TCP checksums like Zeek without -C (off: captures from a sending host carry "
                   "offloaded, 'bad' checksums)")
@click.option("--since", default=None, help="ignore packets before this time (ISO 8601 or epoch)")
@click.option("--until", default=None, help="ignore packets at or after this time (ISO 8601 or epoch)")
@click.option("--host", "hosts", multiple=True, help="only packets to or from this IP (repeatable)")
@click.option("--port", "ports", multiple=True, type=click.IntRange(0, 65535), help="only this TCP port (repeatable)")
@click.option("--net", "nets", multiple=True, help="only packets to or from this CIDR (repeatable)")
@click.option("--inactivity-timeout", type=float, default=None, help="seconds (default 300, Zeek's)")
@click.option("--attempt-timeout", type=float, default=None, help="seconds a SYN waits for a reply (default 5)")
@click.option("--close-delay", type=float, default=None, help="seconds a closed connection is kept (default 5)")
@click.option("--msl", type=float, default=None, help="maximum segment lifetime, TIME_WAIT = 2*MSL (default 30)")
@click.option("--max-connections", type=click.IntRange(1), default=None,
              help="cap on tracked connections; the oldest is evicted beyond it (default 1000000)")
@threshold_options
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TOML file of detector thresholds and engine settings")
@click.option("--show-config", is_flag=True, help="print the effective settings and exit")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="exit 1 when a finding of this severity or worse exists")
@click.option("--strict", is_flag=True, help="a capture cut short mid-record is an input error (exit 3)")
@click.option("-q", "--quiet", is_flag=True,
              help="no progress display and no warnings on stderr (input errors are still reported)")
@click.version_option(__version__, prog_name="tcpflow-audit", message=f"%(prog)s %(version)s ({describe_build()})")
def main(pcaps: tuple[str, ...], report: str, fmt: str | None, output: str | None, output_dir: str | None,
         excel: bool, verify_checksums: bool, since: str | None, until: str | None, hosts: tuple[str, ...],
         ports: tuple[int, ...], nets: tuple[str, ...], inactivity_timeout: float | None,
         attempt_timeout: float | None, close_delay: float | None, msl: float | None,
         max_connections: int | None, config_file: str | None, show_config: bool, fail_on: str | None,
         strict: bool, quiet: bool, **threshold_values: Any) -> None:
    """Audit the TCP connections in PCAP files (pcap or pcapng, plain or gzip/bzip2/xz; '-' for stdin;
    directories and glob patterns are expanded, and rotated files form one timeline)."""
    engine = EngineConfig(verify_checksums=verify_checksums)
    thresholds = Thresholds()
    if config_file:
        try:
            thresholds, engine_settings = Thresholds.from_toml(config_file, engine_fields=engine_field_names())
        except (ValueError, OSError) as error:
            raise click.UsageError(f"{config_file}: {error}")
        for name, value in engine_settings.items():
            setattr(engine, name, value)
    for name, value in (("inactivity_timeout", inactivity_timeout), ("attempt_timeout", attempt_timeout),
                        ("close_delay", close_delay), ("msl", msl), ("max_connections", max_connections)):
        if value is not None:
            setattr(engine, name, value)
    for name, value in threshold_values.items():
        if value is not None:
            setattr(thresholds, name, value)

    if show_config:
        click.echo(json.dumps({"engine": engine_settings_dict(engine), "thresholds": thresholds.as_dict()}, indent=2))
        return
    if not pcaps:
        raise click.UsageError("give at least one capture file, directory, glob pattern or '-'")
    fmt = fmt or "table"
    if output_dir is None and report == "all" and fmt in ("csv", "jsonl"):
        raise click.UsageError("--report all holds several tables: use --format table or json, or --output-dir DIR")
    packet_filter = build_filter(since, until, hosts, ports, nets)

    inputs = expand_inputs(list(pcaps))
    sources, notes = inputs.sources, inputs.notes
    stale = stale_modules()
    if stale:   # a development checkout whose compiled modules are older than their source
        click.echo(f"tcpflow-audit: warning: compiled modules older than their source ({', '.join(stale)}): "
                   "the old code runs; rebuild with `make venv`", err=True)
    if not quiet:
        for note in notes:
            click.echo(f"tcpflow-audit: {note}", err=True)
    if not sources:
        raise click.UsageError("no capture files found in the arguments given")

    auditor = Auditor(engine, packet_filter)
    auditor.stats.passed_over = inputs.passed_over
    detectors = DetectorSet(thresholds, clock=lambda: auditor.tracker.now)   # capture time, for open connections
    summary = SummaryCollector()
    auditor.add_flow_sink(detectors.on_flow)   # tags record.facts.anomalies before the row is written
    auditor.add_flow_sink(summary)
    to_stdout = output_dir is None and output in (None, "-")
    # rows streamed to the terminal while the run goes would be drawn over by the progress line
    streams_to_terminal = to_stdout and fmt != "table" and report in ("flows", "all") and sys.stdout.isatty()
    progress = None
    if not quiet and not streams_to_terminal and sys.stderr.isatty():
        progress = auditor.progress = Progress(auditor)

    stats = auditor.stats
    interrupted = completed = False
    termination = TerminationHandler()
    try:
        with sigterm_as_interrupt(termination):
            try:
                if output_dir is not None:
                    findings = run_to_directory(auditor, sources, progress, detectors, summary, output_dir, excel,
                                                engine, thresholds)
                else:
                    findings = run_to_stream(auditor, sources, progress, detectors, summary, report, fmt, output,
                                             excel, engine, thresholds)
                completed = True
                interrupted = stats.interrupted
            finally:
                if progress is not None:
                    progress.done()
    except KeyboardInterrupt:   # Ctrl-C or SIGTERM: before or after reading (during it, Auditor.run catches
        interrupted = True      # it), or re-raised by run_to_* so that an interrupted run replaces no file
        findings = []
    except OSError as error:
        raise click.ClickException(f"cannot write output: {error}")

    status = EXIT_OK
    if fail_on is not None:
        floor = SEVERITIES.index(fail_on)
        if any(SEVERITIES.index(f.severity) >= floor for f in findings):
            status = EXIT_FINDINGS
    for problem in stats.problems:
        is_error = problem.fatal or strict   # --strict: a cut-short capture is an input error too
        if is_error:
            status = EXIT_INPUT
        if is_error or not quiet:   # --quiet hides warnings, never the reason for exit status 3
            click.echo(f"tcpflow-audit: {'error' if is_error else 'warning'}: {problem}", err=True)
    if interrupted:
        if output_dir is not None:
            outcome = (f"nothing was written to {output_dir} (files of an earlier run, if any, are left as "
                       f"they were)")
        elif not to_stdout:
            outcome = f"{output} was not written (an earlier {output}, if any, is left as it was)"
        elif completed:
            outcome = "the report covers the packets read until then"
        else:
            outcome = "the report was not finished"
        if termination.signum is None:
            click.echo(f"tcpflow-audit: interrupted: {how_far(stats, auditor)}; {outcome}", err=True)
            status = EXIT_INTERRUPTED
        else:
            name = signal.Signals(termination.signum).name
            click.echo(f"tcpflow-audit: interrupted by {name}: {how_far(stats, auditor)}; {outcome}", err=True)
            status = EXIT_TERMINATED
    sys.exit(status)


def run() -> None:
    """The `tcpflow-audit` command (and `python -m tcpflow_audit`): `main`, then leave at once.

    Python's own shutdown frees the whole heap object by object: after a 2M-packet capture that
    was 0.1 s (5% of the run), after a SYN flood seconds, spent on objects about to vanish with the
    process. By the time `main` exits, every report is complete and renamed into place; what is
    left to do is flushing standard output and error, done here. When something else would run
    at a normal exit (an atexit handler, e.g. coverage's; a thread Python would wait for), or for
    an exception that is not an exit (a bug: traceback included), Python's normal way is taken.
    """
    try:
        main()   # (click's standalone mode: always ends with SystemExit)
    except SystemExit as done:
        if not _quick_exit_is_safe():
            raise
        status = done.code
        if status is None:
            status = 0
        elif not isinstance(status, int):   # (as Python does with a message for an exit status)
            print(status, file=sys.stderr)
            status = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:   # (a closed pipe, a full disk: Python's normal exit reports it)
            raise SystemExit(status) from None
        os._exit(status)


def _quick_exit_is_safe() -> bool:
    """Nothing else would run at a normal exit: no atexit handler, no thread that is not a daemon."""
    handlers = getattr(atexit, "_ncallbacks", None)   # (CPython's count of atexit handlers)
    if handlers is None or handlers():
        return False
    return all(thread.daemon or thread is threading.main_thread() for thread in threading.enumerate())


def how_far(stats: RunStats, auditor: Auditor) -> str:
    """How far an interrupted run got, for its stderr message."""
    text = (f"read {stats.packets_read:,} packets ({stats.bytes_read:,} bytes), "
            f"{auditor.tracker.connections_seen:,} connections")
    if stats.last_ts is not None:
        text += f", up to capture time {iso_utc(stats.last_ts)}"
    return text


def engine_field_names() -> set[str]:
    return set(engine_settings_dict(EngineConfig()))


def engine_settings_dict(engine: EngineConfig) -> dict[str, Any]:
    return {field.name: getattr(engine, field.name) for field in dataclasses.fields(EngineConfig)}


def effective_settings(engine: EngineConfig, thresholds: Thresholds) -> dict[str, Any]:
    return {"engine": engine_settings_dict(engine), "thresholds": thresholds.as_dict()}


def run_audit(auditor: Auditor, sources: list[str], progress: Progress | None) -> RunStats:
    """Read the inputs; the progress line ends before any report is written."""
    try:
        return auditor.run(sources)
    finally:
        if progress is not None:
            progress.done()


def run_to_stream(auditor: Auditor, sources: list[str], progress: Progress | None, detectors: DetectorSet,
                  summary: SummaryCollector, report: str, fmt: str, output: str | None, excel: bool,
                  engine: EngineConfig, thresholds: Thresholds):
    """One report to stdout or to the file `output` (atomically). Every format but the table is written
    as connections finish; JSON documents end with the members only known at the end (findings, summary)."""
    to_file = output not in (None, "-")
    with atomic_output(output, bom=excel and fmt == "csv") as stream:
        document = JsonObject(stream) if fmt == "json" and report in ("flows", "all") else None
        flows = None
        if report in ("flows", "all"):
            if fmt == "table":
                flows = RowWriter(None, fmt, FLOW_TABLE_COLUMNS)   # tabulate needs every row for column widths
            else:
                flows = RowWriter(document.array("flows") if document else stream, fmt, FLOW_COLUMNS)
            auditor.add_flow_sink(flows.write_flow)
        auditor.finalise_when_interrupted = not to_file   # to a file, an interrupted run writes nothing
        stats = run_audit(auditor, sources, progress)
        if stats.interrupted and to_file:
            raise KeyboardInterrupt   # leave the previous file: a partial report would look complete
        findings = detectors.finish()
        finding_rows = [finding_row(f) for f in findings]
        summary_data = summary_dict(stats, summary, {"findings": len(findings),
                                                     "settings": effective_settings(engine, thresholds)})
        streaming = fmt in ("csv", "jsonl")
        if report == "anomalies" and streaming:
            writer = RowWriter(stream, fmt, ANOMALY_COLUMNS)
            for row in finding_rows:
                writer.write(row)
        elif report == "summary" and streaming:
            writer = RowWriter(stream, fmt, FLOW_COLUMNS)
            for row in summary.abnormal:
                writer.write(row)
        elif fmt == "json":
            if document is None:
                document = JsonObject(stream)
                if report == "summary":
                    document.member("summary", summary_data)
            if report != "flows":
                anomalies = document.array("anomalies")
                for row in finding_rows:
                    anomalies.write(row)
            if report == "all":
                document.member("summary", summary_data)
            document.close()
        elif fmt == "table":
            parts = []
            if report in ("summary", "all"):
                parts.append(render_summary(summary_data))
            if report == "summary":
                title = f"Connections that did not end normally (conn_state other than SF): {summary.abnormal_total}"
                if summary.abnormal_total > len(summary.abnormal):
                    title += f", first {len(summary.abnormal)} shown; --report flows lists all"
                parts.append(title + "\n" + render_table(summary.abnormal, FLOW_TABLE_COLUMNS))
            if report in ("flows", "all"):
                parts.append(f"Connections: {flows.count}\n" + render_table(flows.rows, FLOW_TABLE_COLUMNS))
            if report in ("anomalies", "summary", "all"):
                parts.append(f"Findings: {len(finding_rows)}\n" + render_table(finding_rows, ANOMALY_COLUMNS))
            stream.write("\n\n".join(parts) + "\n")
    return findings


def run_to_directory(auditor: Auditor, sources: list[str], progress: Progress | None, detectors: DetectorSet,
                     summary: SummaryCollector, directory: str, excel: bool, engine: EngineConfig,
                     thresholds: Thresholds):
    """flows.csv, anomalies.csv and summary.json: all three are renamed into place once all are complete
    (summary.json last), so an interrupted or failed run leaves the previous set, whole."""
    os.makedirs(directory, exist_ok=True)
    with atomic_output(os.path.join(directory, "summary.json")) as summary_stream, \
            atomic_output(os.path.join(directory, "anomalies.csv"), bom=excel) as anomalies_stream, \
            atomic_output(os.path.join(directory, "flows.csv"), bom=excel) as flows_stream:
        flows = RowWriter(flows_stream, "csv", FLOW_COLUMNS)
        auditor.add_flow_sink(flows.write_flow)
        auditor.finalise_when_interrupted = False   # an interrupted run writes nothing: stop at once
        stats = run_audit(auditor, sources, progress)
        if stats.interrupted:
            raise KeyboardInterrupt   # a partial set would look complete: leave the previous one
        findings = detectors.finish()
        writer = RowWriter(anomalies_stream, "csv", ANOMALY_COLUMNS)
        for finding in findings:
            writer.write(finding_row(finding))
        json.dump(summary_dict(stats, summary, {"findings": len(findings),
                                                "settings": effective_settings(engine, thresholds)}),
                  summary_stream, indent=2)
        summary_stream.write("\n")
    return findings


if __name__ == "__main__":
    main()
