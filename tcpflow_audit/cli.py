"""The command line: a thin click shell over the library (`pipeline`, `detectors`, `report`, `outputs`).

Exit status (documented in docs/cli.md): 0 clean; 1 a finding at or above --fail-on; 2 usage
error; 3 input errors (a file that could not be read to its end; a cut-short file, or a damaged
record read on past, only with --strict); 75 the output is locked by another run for longer than
--lock-timeout (EX_TEMPFAIL: try again later); 130 interrupted (Ctrl-C); 141 the reader of standard
output left (as SIGPIPE would end a program); 143 terminated (SIGTERM). Input problems are reported on
stderr as one line each, naming the file and byte offset (input errors also with --quiet, which
hides only warnings and the progress line); everything read before a problem is kept and reported.

Ctrl-C: the run stops, the connections read so far are finalised (end_reason capture_end) and a
report to standard output covers them; files named by -o/--output-dir are not replaced (the
previous ones, if any, stay as they were), since a file of a partial run would look complete.
SIGTERM (timeout, systemd, kill) does the same: a handler turns it into `Terminated`, a
KeyboardInterrupt, so the same code paths handle it (temporary files included); see `process`.
An interrupt that comes after the output was switched into place leaves it there, and the stderr
line says so: which of the two happened is read from the file system (`outputs`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import IO, Any

import click

from . import __version__, columnar, html_report
from .build import describe as describe_build
from .build import stale_modules
from .config import EngineConfig
from .decode import TUNNEL_NAMES
from .detectors import ANOMALY_COLUMNS, SEVERITIES, DetectorSet, finding_row
from .detectors.thresholds import Thresholds
from .html_report import HtmlReport
from .inputs import expand_inputs
from .names import shown
from .outputs import OutputBusy, OutputFile, OutputRefused, OutputSet, standard_output
from .pipeline import Auditor, PacketFilter, RunStats
from .process import discard_stdout, sigterm_as_interrupt, termination_handler
from .process import run as run  # (the command's entry point, also under its earlier name `tcpflow_audit.cli:run`)
from .report import FLOW_COLUMNS, JsonObject, RowWriter, SummaryCollector, flow_row, iso_utc, summary_dict
from .sockets import SOCKET_COLUMNS, TIMELINE_COLUMNS, SocketTable, Timeline, parse_duration, render_sockets
from .tables import (
    FLOW_TABLE_COLUMNS,
    MIN_WIDTH,
    TableStyle,
    render_connections,
    render_findings,
    render_summary,
    write_blocks,
)

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130  # 130 = 128 + SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141, as the shell reports a program that SIGPIPE ended
EXIT_BUSY = 75  # EX_TEMPFAIL (sysexits.h): the output is another run's for now; cron and systemd users retry
LOCK_TIMEOUT = 300.0  # seconds a run waits for another run writing the same output
REPORTS = ("summary", "flows", "anomalies", "all", "sockets", "timeline")
FORMATS = ("table", "csv", "json", "jsonl", "parquet")
PARQUET_REPORTS = ("flows", "anomalies", "sockets", "timeline")  # one table each
PLAIN_TABLE = TableStyle()  # no width limit, no colour


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
        raise click.BadParameter(f"{value!r} is neither ISO 8601 nor epoch seconds", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def build_filter(
    since: str | None, until: str | None, hosts: tuple[str, ...], ports: tuple[int, ...], nets: tuple[str, ...]
) -> PacketFilter:
    try:
        host_bytes = frozenset(ipaddress.ip_address(h).packed for h in hosts)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--host") from None
    try:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in nets)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--net") from None
    return PacketFilter(
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        hosts=host_bytes,
        ports=frozenset(ports),
        nets=networks,
    )


def parse_tunnel_port(value: str) -> tuple[str, int]:
    """--tunnel-port NAME=PORT: (name, port), or a usage error saying what is wrong."""
    name, equals, port = value.partition("=")
    name = name.strip().lower()
    if not equals or name not in TUNNEL_NAMES or not port.strip().isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(
            f"{value!r}: expected NAME=PORT, NAME one of {', '.join(sorted(TUNNEL_NAMES))}, PORT 1 to 65535",
            param_hint="--tunnel-port",
        )
    return name, int(port)


def table_style(width: int | None, color: bool | None, to_stdout: bool) -> TableStyle:
    """The table's width and colours: --width N (0: no limit), else, for a report on standard output,
    $COLUMNS or the terminal's width, else no limit (a file or a pipe gets whole rows); colour as
    --color/--no-color say, else on a terminal unless NO_COLOR is set (https://no-color.org)."""
    terminal = to_stdout and sys.stdout.isatty()
    if width is None and to_stdout:
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            width = int(columns)
        elif terminal:
            try:
                width = os.get_terminal_size(sys.stdout.fileno()).columns or None  # (0: a size nobody set)
            except (OSError, ValueError):
                width = None
    if color is None:
        color = terminal and not os.environ.get("NO_COLOR")
    return TableStyle(width=max(width, MIN_WIDTH) if width else None, color=color)


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
        return (
            f"{where}, {self.packets:,} packets, {connections:,} connections in {elapsed:,.1f} s "
            f"({self.packets / elapsed:,.0f} packets/s)"
        )

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


class ThresholdSetting(click.ParamType):
    """A detector threshold from the command line: `NAME=VALUE` (--threshold), or the VALUE of the
    one threshold a per-threshold option sets; checked as the --config file's values are."""

    name = "NAME=VALUE"

    def __init__(self, threshold: str | None = None) -> None:
        self.threshold = threshold

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, Any]:
        if isinstance(value, tuple):
            return value
        try:
            if self.threshold is None:
                return Thresholds.parse_setting(value)
            return Thresholds.parse_setting(f"{self.threshold}={value}")
        except ValueError as error:
            self.fail(str(error), param, ctx)


_HELP_HEADINGS: dict[str, str] = {}  # option name -> the heading --help lists it under (`option_group`)


def option_group(heading: str, *options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply the click.option decorators `options`; --help lists their options under `heading`."""

    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        for param in function.__click_params__[-len(options) :]:  # (click appends each option it adds)
            _HELP_HEADINGS[param.name] = heading
        return function

    return decorate


class SectionedCommand(click.Command):
    """A command whose --help lists its options under the headings of `option_group`, in the order they
    are declared, and the rest under 'Other', last; the help texts of all sections in one column."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                sections.setdefault(_HELP_HEADINGS.get(param.name or "", "Other"), []).append(record)
        sections["Other"] = sections.pop("Other", [])
        column = max((len(term) for records in sections.values() for term, _ in records if len(term) <= 30), default=0)
        for heading, records in sections.items():
            with formatter.section(heading):  # (a term padded to the column aligns every section alike)
                formatter.write_dl([(term.ljust(column), text) for term, text in records])


def threshold_options(function):
    """One hidden --<name> VALUE option per detector threshold (--threshold NAME=VALUE is the one --help shows)."""
    for name in reversed(Thresholds().as_dict()):
        option = "--" + name.replace("_", "-")
        function = click.option(
            option,
            name,
            type=ThresholdSetting(name),
            default=None,
            hidden=True,
            help=f"same as --threshold {name}=VALUE",
        )(function)
    return function


@click.command(cls=SectionedCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("pcaps", nargs=-1, metavar="PCAP...")
@option_group(
    "Input",
    click.option("--strict", is_flag=True, help="input warnings (cut short, damaged record) are errors (exit 3)"),
    click.option(
        "--verify-checksums",
        is_flag=True,
        help="validate IP/TCP checksums, as Zeek without -C (off by default)",
    ),
    click.option(
        "--tunnel-port",
        "tunnel_ports",
        multiple=True,
        metavar="NAME=PORT",
        callback=lambda _ctx, _param, values: [parse_tunnel_port(value) for value in values],
        help="UDP PORT carries tunnel NAME too, e.g. vxlan=4790 (repeatable)",
    ),
)
@option_group(
    "Output",
    click.option(
        "--report",
        "report",
        type=click.Choice(REPORTS),
        default="summary",
        metavar="REPORT",
        help="summary (default), flows (a row per connection), anomalies (a row per finding), all (those "
        "three), sockets (each host's ss -tan) or timeline (socket states over time)",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        metavar="FORMAT",
        help="table (default), csv, json, jsonl or parquet (or --csv, --json...)",
    ),
    click.option("--csv", "fmt", flag_value="csv", hidden=True),
    click.option("--json", "fmt", flag_value="json", hidden=True),
    click.option("--jsonl", "fmt", flag_value="jsonl", hidden=True),
    click.option("--table", "fmt", flag_value="table", hidden=True),
    click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="FILE",
        help="write the report to FILE (atomically: complete or not at all)",
    ),
    click.option(
        "--output-dir",
        type=click.Path(file_okay=False),
        default=None,
        metavar="DIR",
        help="write every report's file into DIR (atomically, as one set)",
    ),
    click.option("--parquet", is_flag=True, help="--output-dir: Parquet files too, beside the CSV files"),
    click.option(
        "--sockets",
        "with_sockets",
        is_flag=True,
        help="--output-dir: sockets.csv, timeline.csv, report.html too (slower)",
    ),
    click.option(
        "--html",
        "html_file",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="FILE",
        help="also write the HTML report (findings, plots) to FILE",
    ),
    click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=LOCK_TIMEOUT,
        metavar="SECONDS",
        help=f"wait this long for another run writing the same -o FILE or --output-dir DIR, then give "
        f"up with exit status {EXIT_BUSY} (default {LOCK_TIMEOUT:g}; 0: do not wait)",
    ),
    click.option("--excel", is_flag=True, help="CSV with a UTF-8 byte-order mark, for spreadsheet programs"),
    click.option(
        "--width",
        type=click.IntRange(0),
        default=None,
        metavar="N",
        help="fit the table to N characters (default: $COLUMNS or the terminal; 0: no limit)",
    ),
    click.option(
        "--color/--no-color",
        "color",
        default=None,
        help="colour severities in the table (default: on a terminal, unless NO_COLOR is set)",
    ),
    click.option("--at", default=None, metavar="TIME", help="sockets: at TIME (ISO 8601 or epoch; default: the end)"),
    click.option("--bucket", default="1s", metavar="DURATION", help="timeline: bucket width (default 1s; 10s, 1m...)"),
    click.option(
        "--top",
        type=click.IntRange(1),
        default=10,
        metavar="N",
        help="timeline: the N busiest hosts, services (default 10)",
    ),
)
@option_group(
    "Filters",
    click.option("--since", default=None, metavar="TIME", help="ignore packets before TIME (ISO 8601 or epoch)"),
    click.option("--until", default=None, metavar="TIME", help="ignore packets at or after TIME"),
    click.option("--host", "hosts", multiple=True, metavar="IP", help="only packets to or from IP (repeatable)"),
    click.option(
        "--port",
        "ports",
        multiple=True,
        type=click.IntRange(0, 65535),
        metavar="N",
        help="only TCP port N (repeatable)",
    ),
    click.option("--net", "nets", multiple=True, metavar="CIDR", help="only packets to or from CIDR (repeatable)"),
)
@option_group(
    "Engine",
    click.option(
        "--inactivity-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="idle connections are finalised after this (default 300, Zeek's)",
    ),
    click.option(
        "--attempt-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a SYN waits this long for a reply (default 5)",
    ),
    click.option(
        "--close-delay",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a closed connection is kept this long (default 5)",
    ),
    click.option(
        "--msl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="maximum segment lifetime, TIME_WAIT = 2*MSL (default 30)",
    ),
    click.option(
        "--max-connections",
        type=click.IntRange(1),
        default=None,
        metavar="N",
        help="tracked connections; the oldest is evicted beyond N (default 1000000)",
    ),
)
@option_group(
    "Findings",
    click.option(
        "--threshold",
        "threshold_settings",
        type=ThresholdSetting(),
        multiple=True,
        help="set a detector threshold (repeatable); --show-config lists them with their values",
    ),
    click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        metavar="FILE",
        help="TOML file of detector thresholds and engine settings",
    ),
    click.option("--show-config", is_flag=True, help="print the effective settings (JSON) and exit"),
    click.option(
        "--fail-on",
        type=click.Choice(SEVERITIES),
        default=None,
        metavar="SEVERITY",
        help="exit 1 when a finding this severe or worse exists: info, warning or critical",
    ),
)
@threshold_options
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="no progress display and no warnings on stderr (input errors are still reported)",
)
@click.version_option(__version__, prog_name="tcpflow-audit", message=f"%(prog)s %(version)s ({describe_build()})")
def main(
    pcaps: tuple[str, ...],
    report: str,
    fmt: str | None,
    output: str | None,
    output_dir: str | None,
    lock_timeout: float,
    excel: bool,
    width: int | None,
    color: bool | None,
    verify_checksums: bool,
    tunnel_ports: list[tuple[str, int]],
    since: str | None,
    until: str | None,
    hosts: tuple[str, ...],
    ports: tuple[int, ...],
    nets: tuple[str, ...],
    inactivity_timeout: float | None,
    attempt_timeout: float | None,
    close_delay: float | None,
    msl: float | None,
    max_connections: int | None,
    threshold_settings: tuple[tuple[str, Any], ...],
    config_file: str | None,
    show_config: bool,
    fail_on: str | None,
    strict: bool,
    quiet: bool,
    at: str | None,
    bucket: str,
    top: int,
    parquet: bool,
    with_sockets: bool,
    html_file: str | None,
    **threshold_options: tuple[str, Any] | None,
) -> None:
    """Audit the TCP connections in PCAP files (pcap or pcapng, plain or gzip/bzip2/xz; '-' for stdin;
    directories and glob patterns are expanded, and rotated files form one timeline)."""
    engine = EngineConfig(verify_checksums=verify_checksums)
    thresholds = Thresholds()
    if config_file:
        try:
            thresholds, engine_settings = Thresholds.from_toml(config_file, engine_fields=engine_field_names())
            for name, value in engine_settings.items():
                engine.apply(name, value)
        except (ValueError, OSError) as error:
            raise click.UsageError(f"{shown(config_file)}: {error}") from None
    for name, value in (
        ("inactivity_timeout", inactivity_timeout),
        ("attempt_timeout", attempt_timeout),
        ("close_delay", close_delay),
        ("msl", msl),
        ("max_connections", max_connections),
    ):
        if value is not None:
            try:
                engine.apply(name, value)
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint="--" + name.replace("_", "-")) from None
    # the per-threshold options first, then --threshold in the order given: the last one given wins
    settings = [setting for setting in threshold_options.values() if setting is not None]
    thresholds = thresholds.updated(dict([*settings, *threshold_settings]))

    if show_config:
        click.echo(json.dumps({"engine": engine_settings_dict(engine), "thresholds": thresholds.as_dict()}, indent=2))
        return
    if not pcaps:
        raise click.UsageError("give at least one capture file, directory, glob pattern or '-'")
    fmt = fmt or "table"
    if output_dir is None and report == "all" and fmt in ("csv", "jsonl"):
        raise click.UsageError("--report all holds several tables: use --format table or json, or --output-dir DIR")
    if fmt == "parquet" and output_dir is not None:
        parquet = True  # (the set's Parquet files)
    elif fmt == "parquet":
        if report not in PARQUET_REPORTS:
            raise click.UsageError(f"--format parquet holds one table: --report {', '.join(PARQUET_REPORTS)}")
        if output in (None, "-"):
            raise click.UsageError("--format parquet writes a file: give -o FILE (or --output-dir DIR --parquet)")
    if fmt == "parquet" or parquet:
        try:
            columnar.require()
        except columnar.ParquetMissing as missing:
            raise click.UsageError(str(missing)) from None
    # the HTML report: --html FILE, and report.html in a set with the socket tables (its plots are made
    # of the same state changes)
    set_sockets = output_dir is not None and (with_sockets or report in ("sockets", "timeline"))
    html_wanted = html_file is not None or set_sockets
    if html_wanted:
        try:
            html_report.require()
        except html_report.HtmlMissing as missing:
            if html_file is not None:
                raise click.UsageError(str(missing)) from None
            html_wanted = False
            if not quiet:
                click.echo(
                    f"tcpflow-audit: warning: {missing}; {shown(output_dir or '')} gets no report.html", err=True
                )
    packet_filter = build_filter(since, until, hosts, ports, nets)
    sockets = SocketOptions(at=parse_time(at, "--at"), bucket_s=parse_bucket(bucket), top=top)

    inputs = expand_inputs(list(pcaps))
    sources, notes = inputs.sources, inputs.notes
    stale = stale_modules()
    if stale:  # a development checkout whose compiled modules are older than their source
        click.echo(
            f"tcpflow-audit: warning: compiled modules older than their source ({', '.join(stale)}): "
            "the old code runs; rebuild with `make venv`",
            err=True,
        )
    if not quiet:
        for note in notes:
            click.echo(f"tcpflow-audit: {note}", err=True)
    if not sources:
        raise click.UsageError("no capture files found in the arguments given")

    auditor = Auditor(engine, packet_filter)
    for name, port in tunnel_ports:
        auditor.decoder.add_tunnel_port(name, port)
    auditor.stats.passed_over = inputs.passed_over
    detectors = DetectorSet.attach(auditor, thresholds)  # first sink: it tags records before rows are written
    summary = SummaryCollector()
    auditor.add_flow_sink(summary)
    html_sink = HtmlReport.attach(auditor) if html_wanted else None
    html_target = OutputFile(html_file) if html_file is not None else None
    target: OutputSet | OutputFile | None = None
    if output_dir is not None:
        target = OutputSet(output_dir)
    elif output not in (None, "-"):
        target = OutputFile(output)
    to_stdout = target is None
    # rows streamed to the terminal while the run goes would be drawn over by the progress line
    streams_to_terminal = to_stdout and fmt != "table" and report in ("flows", "all") and sys.stdout.isatty()
    progress = None
    if not quiet and not streams_to_terminal and sys.stderr.isatty():
        progress = auditor.progress = Progress(auditor)

    def waiting(holder: str) -> None:  # (once, when another run holds the output's lock)
        if not quiet and target is not None:
            click.echo(
                f"tcpflow-audit: {shown(target.path)} is being written by another run ({holder}): "
                f"waiting for it, up to {lock_timeout:g} s (--lock-timeout)",
                err=True,
            )

    stats = auditor.stats
    interrupted = completed = False
    termination = termination_handler()
    try:
        with sigterm_as_interrupt(termination):
            try:
                if target is not None:  # the output's lock: from before reading until the outcome is printed
                    click.get_current_context().with_resource(target.locked(lock_timeout, waiting))
                if html_target is not None:
                    click.get_current_context().with_resource(html_target.locked(lock_timeout, waiting))
                if isinstance(target, OutputSet):
                    findings = run_to_directory(
                        auditor,
                        sources,
                        progress,
                        detectors,
                        summary,
                        target,
                        excel,
                        engine,
                        thresholds,
                        sockets,
                        parquet,
                        with_sockets or report in ("sockets", "timeline"),
                        html_sink if html_file is None else None,
                    )
                elif fmt == "parquet":
                    assert isinstance(target, OutputFile)
                    findings = run_to_parquet(auditor, sources, progress, detectors, report, target, sockets)
                elif report in ("sockets", "timeline"):
                    findings = run_sockets_report(
                        auditor,
                        sources,
                        progress,
                        detectors,
                        report,
                        fmt,
                        target,
                        excel,
                        sockets,
                        table_style(width, color, to_stdout),
                        quiet,
                    )
                else:
                    findings = run_to_stream(
                        auditor,
                        sources,
                        progress,
                        detectors,
                        summary,
                        report,
                        fmt,
                        target,
                        excel,
                        engine,
                        thresholds,
                        table_style(width, color, to_stdout),
                    )
                if html_target is not None and html_sink is not None and not stats.interrupted:
                    with html_target.writing() as stream:
                        write_html(stream, html_sink, auditor, summary, findings, engine, thresholds)
                completed = True
                interrupted = stats.interrupted
            finally:
                if progress is not None:
                    progress.done()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: before or after reading (during it, Auditor.run catches
        interrupted = True  # it), or re-raised by run_to_* so that an interrupted run replaces no file
        findings = []
    except OutputBusy as busy:
        click.echo(
            f"tcpflow-audit: error: {busy}; gave up after waiting {busy.waited:g} s (--lock-timeout): "
            f"nothing was written",
            err=True,
        )
        sys.exit(EXIT_BUSY)
    except OutputRefused as refused:
        raise click.BadParameter(str(refused), param_hint="--output-dir") from None
    except BrokenPipeError:  # the reader of standard output left (`| head`): end as a program killed by SIGPIPE
        discard_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as error:
        raise click.ClickException(f"cannot write output: {error}") from error
    interrupted = interrupted or termination.signum is not None  # (one that came as the run ended)

    status = EXIT_OK
    if fail_on is not None:
        floor = SEVERITIES.index(fail_on)
        if any(SEVERITIES.index(f.severity) >= floor for f in findings):
            status = EXIT_FINDINGS
    for problem in stats.problems:
        is_error = problem.fatal or strict  # --strict: input warnings (cut short, damaged record) are errors too
        if is_error:
            status = EXIT_INPUT
        if is_error or not quiet:  # --quiet hides warnings, never the reason for exit status 3
            click.echo(f"tcpflow-audit: {'error' if is_error else 'warning'}: {problem}", err=True)
    if target is not None and not quiet:
        for kept in target.kept:
            click.echo(f"tcpflow-audit: warning: could not remove {kept}", err=True)
    if interrupted:
        if isinstance(target, OutputSet):
            outcome = (
                f"{shown(target.path)} holds this run's complete set (it was switched into place before the interrupt)"
                if target.replaced
                else f"nothing was written to {shown(target.path)} (files of an earlier run, if any, are left as "
                f"they were)"
            )
        elif target is not None:
            outcome = (
                f"{shown(target.path)} holds this run's complete report (it was renamed into place before the "
                f"interrupt)"
                if target.replaced
                else f"{shown(target.path)} was not written (an earlier {shown(target.path)}, if any, is left as "
                f"it was)"
            )
        elif completed:
            outcome = "the report covers the packets read until then"
        else:
            outcome = "the report was not finished"
        if termination.signum in (None, signal.SIGINT):
            click.echo(f"tcpflow-audit: interrupted: {how_far(stats, auditor)}; {outcome}", err=True)
            status = EXIT_INTERRUPTED
        else:
            name = signal.Signals(termination.signum).name
            click.echo(f"tcpflow-audit: interrupted by {name}: {how_far(stats, auditor)}; {outcome}", err=True)
            status = EXIT_TERMINATED
    sys.exit(status)


def how_far(stats: RunStats, auditor: Auditor) -> str:
    """How far an interrupted run got, for its stderr message."""
    text = (
        f"read {stats.packets_read:,} packets ({stats.bytes_read:,} bytes), "
        f"{auditor.tracker.connections_seen:,} connections"
    )
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


def run_to_stream(
    auditor: Auditor,
    sources: list[str],
    progress: Progress | None,
    detectors: DetectorSet,
    summary: SummaryCollector,
    report: str,
    fmt: str,
    output: OutputFile | None,
    excel: bool,
    engine: EngineConfig,
    thresholds: Thresholds,
    style: TableStyle = PLAIN_TABLE,
):
    """One report to stdout or to the file `output` (atomically). Every format but the table is written
    as connections finish; JSON documents end with the members only known at the end (findings, summary).
    `style`: the table format's width and colours."""
    to_file = output is not None
    bom = excel and fmt == "csv"
    with output.writing(bom=bom) if output is not None else standard_output() as stream:
        document = JsonObject(stream) if fmt == "json" and report in ("flows", "all") else None
        flows: RowWriter | None = None
        if report in ("flows", "all"):
            if fmt == "table":
                flows = RowWriter(None, fmt, FLOW_TABLE_COLUMNS)  # column widths need every row
            else:
                flows = RowWriter(document.array("flows") if document else stream, fmt, FLOW_COLUMNS)
            auditor.add_flow_sink(flows.write_flow)
        auditor.finalise_when_interrupted = not to_file  # to a file, an interrupted run writes nothing
        stats = run_audit(auditor, sources, progress)
        if stats.interrupted and to_file:
            raise KeyboardInterrupt  # leave the previous file: a partial report would look complete
        findings = detectors.finish()
        finding_rows = [finding_row(f) for f in findings]
        summary_data = summary_dict(
            stats, summary, {"findings": len(findings), "settings": effective_settings(engine, thresholds)}
        )
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
            blocks: list[Iterable[str]] = []
            if report in ("summary", "all"):
                blocks.append(render_summary(summary_data, style))
            if report == "summary":
                title = f"Connections that did not end normally (conn_state other than SF): {summary.abnormal_total}"
                if summary.abnormal_total > len(summary.abnormal):
                    title += f", first {len(summary.abnormal)} shown; --report flows lists all"
                blocks.append(render_connections(title, summary.abnormal, style))
            if flows is not None:  # (--report flows or all)
                blocks.append(render_connections(f"Connections: {flows.count}", flows.rows, style))
            if report in ("anomalies", "summary", "all"):
                blocks.append(render_findings(finding_rows, style))
            write_blocks(stream, blocks)
    return findings


def run_to_directory(
    auditor: Auditor,
    sources: list[str],
    progress: Progress | None,
    detectors: DetectorSet,
    summary: SummaryCollector,
    output_set: OutputSet,
    excel: bool,
    engine: EngineConfig,
    thresholds: Thresholds,
    sockets: SocketOptions | None = None,
    parquet: bool = False,
    with_sockets: bool = True,
    html_sink: HtmlReport | None = None,
):
    """flows.csv, anomalies.csv, summary.json, with `with_sockets` sockets.csv and timeline.csv (and with
    `parquet` those tables as Parquet files too; with `html_sink` report.html), written into a new set that
    replaces the current one in one step once all are complete, so an interrupted or failed run leaves
    the previous set, whole.
    The socket tables are asked for: keeping every endpoint's state changes costs the engine about as
    much again as the rest of the job."""
    sockets = sockets or SocketOptions()
    with output_set.writing():
        flows_stream = output_set.open("flows.csv", bom=excel)
        anomalies_stream = output_set.open("anomalies.csv", bom=excel)
        summary_stream = output_set.open("summary.json")
        flows = RowWriter(flows_stream, "csv", FLOW_COLUMNS)
        auditor.add_flow_sink(flows.write_flow)
        flows_parquet = columnar.ParquetRows(output_set.open_binary("flows.parquet"), "flows") if parquet else None
        if flows_parquet is not None:
            auditor.add_flow_sink(lambda record: flows_parquet.write(flow_row(record)))
        socket_table = SocketTable.attach(auditor, sockets.at) if with_sockets else None
        timeline = Timeline.attach(auditor, sockets.bucket_s, sockets.top) if with_sockets else None
        auditor.finalise_when_interrupted = False  # an interrupted run writes nothing: stop at once
        stats = run_audit(auditor, sources, progress)
        if stats.interrupted:
            raise KeyboardInterrupt  # a partial set would look complete: leave the previous one
        findings = detectors.finish()
        finding_rows = [finding_row(finding) for finding in findings]
        writer = RowWriter(anomalies_stream, "csv", ANOMALY_COLUMNS)
        for row in finding_rows:
            writer.write(row)
        json.dump(
            summary_dict(
                stats, summary, {"findings": len(findings), "settings": effective_settings(engine, thresholds)}
            ),
            summary_stream,
            indent=2,
        )
        summary_stream.write("\n")
        end = capture_end(auditor)
        tables: dict[str, list[dict[str, Any]]] = {"anomalies": finding_rows}
        if socket_table is not None and timeline is not None:
            tables["sockets"] = socket_table.rows(end)
            tables["timeline"] = list(timeline.rows(stats.first_ts, end))
        for name in ("sockets", "timeline") if with_sockets else ():
            writer = RowWriter(output_set.open(f"{name}.csv", bom=excel), "csv", columnar.SCHEMAS[name][0])
            for row in tables[name]:
                writer.write(row)
        if html_sink is not None:
            write_html(output_set.open("report.html"), html_sink, auditor, summary, findings, engine, thresholds)
        if flows_parquet is not None:
            flows_parquet.close()
            for name, rows in tables.items():
                table_writer = columnar.ParquetRows(output_set.open_binary(f"{name}.parquet"), name)
                for row in rows:
                    table_writer.write(row)
                table_writer.close()
    return findings


# ---------------------------------------------------------------------- HTML
def write_html(
    stream: IO[str],
    report: HtmlReport,
    auditor: Auditor,
    summary: SummaryCollector,
    findings: list,
    engine: EngineConfig,
    thresholds: Thresholds,
) -> None:
    """The HTML report of a finished run."""
    stats = auditor.stats
    data = summary_dict(stats, summary, {"findings": len(findings), "settings": effective_settings(engine, thresholds)})
    report.write(stream, data, [finding_row(f) for f in findings], stats.first_ts, capture_end(auditor))


# ---------------------------------------------------------------------- Parquet
def run_to_parquet(
    auditor: Auditor,
    sources: list[str],
    progress: Progress | None,
    detectors: DetectorSet,
    report: str,
    output: OutputFile,
    sockets: SocketOptions,
):
    """One table as a Parquet file (-o FILE, atomically): flows as connections finish, the others at the end."""
    socket_table = SocketTable.attach(auditor, sockets.at) if report == "sockets" else None
    timeline = Timeline.attach(auditor, sockets.bucket_s, sockets.top) if report == "timeline" else None
    auditor.finalise_when_interrupted = False  # an interrupted run writes nothing
    with output.writing(binary=True) as stream:
        writer = columnar.ParquetRows(stream, report)
        if report == "flows":
            auditor.add_flow_sink(lambda record: writer.write(flow_row(record)))
        stats = run_audit(auditor, sources, progress)
        if stats.interrupted:
            raise KeyboardInterrupt  # leave the previous file: a partial report would look complete
        findings = detectors.finish()
        end = capture_end(auditor)
        rows: Iterable[dict[str, Any]] = []
        if report == "anomalies":
            rows = [finding_row(f) for f in findings]
        elif socket_table is not None:
            rows = socket_table.rows(end)
        elif timeline is not None:
            rows = timeline.rows(stats.first_ts, end)
        for row in rows:
            writer.write(row)
        writer.close()
    return findings


# ---------------------------------------------------------------------- sockets and timeline
@dataclasses.dataclass(frozen=True)
class SocketOptions:
    """--at, --bucket and --top: the instant of the socket table, the timeline's bucket and how many shown."""

    at: float | None = None
    bucket_s: float = 1.0
    top: int = 10


def parse_bucket(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--bucket") from None


def capture_end(auditor: Auditor) -> float | None:
    """The capture's end, as the socket table and timeline take it: the last packet read (or --until)."""
    last, until = auditor.stats.last_ts, auditor.packet_filter.until
    return until if last is not None and until is not None and until < last else last


def run_sockets_report(
    auditor: Auditor,
    sources: list[str],
    progress: Progress | None,
    detectors: DetectorSet,
    report: str,
    fmt: str,
    output: OutputFile | None,
    excel: bool,
    options: SocketOptions,
    style: TableStyle,
    quiet: bool,
):
    """--report sockets or timeline, to stdout or to `output`: the rows are known only at the end."""
    sink: SocketTable | Timeline
    if report == "sockets":
        sink = SocketTable.attach(auditor, options.at)
    else:
        sink = Timeline.attach(auditor, options.bucket_s, options.top)
    to_file = output is not None
    auditor.finalise_when_interrupted = not to_file
    columns: tuple[str, ...]
    with output.writing(bom=excel and fmt == "csv") if output is not None else standard_output() as stream:
        stats = run_audit(auditor, sources, progress)
        if stats.interrupted and to_file:
            raise KeyboardInterrupt
        findings = detectors.finish()
        end = capture_end(auditor)
        if isinstance(sink, SocketTable):
            instant = options.at if options.at is not None else end
            rows = sink.rows(end)
            title = f"Sockets at {iso_utc(instant)}" + (" (the capture's last packet)" if options.at is None else "")
            columns, name, head = SOCKET_COLUMNS, "sockets", {"at": iso_utc(instant), "at_epoch": instant}
        else:
            rows = list(sink.rows(stats.first_ts, end))
            title = f"Socket states per {options.bucket_s:g} s bucket, the {options.top} most active hosts and services"
            columns, name, head = TIMELINE_COLUMNS, "timeline", {"bucket_s": options.bucket_s}
            incomplete = sink.incomplete()
            if not quiet and incomplete:
                names = ", ".join(incomplete[:3]) + (f" and {len(incomplete) - 3} more" if len(incomplete) > 3 else "")
                click.echo(
                    f"tcpflow-audit: warning: the timeline of {names} misses their first connections (too many "
                    f"hosts to follow them all from the start)",
                    err=True,
                )
        if fmt == "table":
            write_blocks(stream, [render_sockets(title, columns, rows, style)])
        elif fmt == "json":
            document = JsonObject(stream)
            for key, value in head.items():
                document.member(key, value)
            array = document.array(name)
            for row in rows:
                array.write(row)
            document.close()
        else:
            writer = RowWriter(stream, fmt, columns)
            for row in rows:
                writer.write(row)
    return findings


if __name__ == "__main__":
    main()
