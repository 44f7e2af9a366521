"""The HTML report (`--html FILE`, `report.html` in `--output-dir`): one self-contained file with what
was read, the findings with the connections they are about, and plots.

It opens offline: Plotly's JavaScript is embedded, from the plotly package itself (plotly is an
optional dependency, `pip install 'tcpflow-audit[html]'`; `require()` says so when it is missing).
Plotly rather than Vega-Altair: the Python package carries the JavaScript a file needs to draw
offline, and its charts zoom, pan and show values on hover; an offline Altair chart needs the Vega
bundles from another package (vl-convert) or a CDN.

`HtmlReport` is a flow sink gathering what the plots need in bounded memory: a `sockets.Timeline`
whose buckets widen as the capture goes on (at most MAX_POINTS per series, whatever the capture's
length), the conn_state of connections per bucket, a histogram of handshake RTTs with fixed
logarithmic bins, and for each finding's kind and server a few of the connections it is about.
The file stays small: Plotly's JavaScript (about 4.8 MB) and a few hundred points per series.

The page marks itself when it is drawn: `#report-status` holds `{"drawn": N, "plots": M, "errors":
[...], "height": pixels}` (the JavaScript errors caught while loading), which the browser test reads.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
from collections.abc import Iterable
from typing import IO, Any, Final

from .connection import FlowRecord
from .decode import format_ip
from .pipeline import Auditor
from .report import flow_row, iso_utc, summary_facts
from .sockets import STATE_COLUMNS, WIDTHS, Timeline, coarsen

MAX_POINTS: Final = 600  # buckets per series at most: the timeline's bucket doubles beyond
TOP: Final = 6  # hosts and services plotted
MIN_CONNECTIONS: Final = 10  # a host with fewer (and fewer than 1% of the busiest one's) is not plotted
EXAMPLES_PER_FINDING: Final = 10
EXAMPLES_IN_ALL: Final = 2000  # connection rows kept for the findings' tables, at most
RTT_BINS_PER_DECADE: Final = 10
RTT_LOW_MS: Final = 0.001  # the histogram's bins: 1 us .. 100 s, logarithmic
RTT_DECADES: Final = 8
CONN_STATES: Final = ("SF", "S0", "S1", "S2", "S3", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
STATE_COLORS: Final = {
    "ESTABLISHED": "#2ca02c",
    "SYN_SENT": "#9edae5",
    "SYN_RECV": "#d62728",
    "FIN_WAIT_1": "#c5b0d5",
    "FIN_WAIT_2": "#9467bd",
    "TIME_WAIT": "#1f77b4",
    "CLOSE_WAIT": "#ff7f0e",
    "LAST_ACK": "#8c564b",
    "CLOSING": "#e377c2",
    "LISTEN": "#7f7f7f",
    "UNKNOWN": "#bcbd22",
}
SEVERITY_ORDER: Final = ("critical", "warning", "info")
_EVENTS: Final = (
    ("syn", "SYN", "#1f77b4"),
    ("synack", "SYN-ACK", "#ff7f0e"),
    ("handshakes", "completed handshakes", "#2ca02c"),
    ("rst", "RST", "#d62728"),
)

# the connections a finding of a kind no connection is tagged with is about
_AGGREGATE_KINDS: Final = {
    "excess_time_wait": lambda r: r.client_time_wait_until is not None or r.server_time_wait_until is not None,
}


class HtmlMissing(Exception):
    """plotly is not installed."""


def require() -> Any:
    """The plotly.offline module, or HtmlMissing saying how to install it."""
    try:
        import plotly.offline
    except ImportError:
        raise HtmlMissing("the HTML report needs plotly: pip install 'tcpflow-audit[html]'") from None
    return plotly.offline


class HtmlReport:
    """A flow sink: what the HTML report shows, in bounded memory; `write` makes the page at the end."""

    @classmethod
    def attach(cls, auditor: Auditor) -> HtmlReport:
        """A report fed by `auditor` (after the detectors: it reads their tags)."""
        report = cls(auditor.config.time_wait)
        auditor.tracker.record_state_changes = True
        auditor.add_flow_sink(report)
        return report

    def __init__(self, time_wait_s: float) -> None:
        self.timeline = Timeline(time_wait_s, WIDTHS[0], TOP, max_buckets=MAX_POINTS)
        self.timeline.coarsened.append(self._coarsen)
        self.conn_states: dict[int, list[int]] = {}  # bucket of the start -> connections by CONN_STATES
        self.rtt_bins = [0] * (RTT_BINS_PER_DECADE * RTT_DECADES + 2)  # below, the bins, above
        self.rtt_count = 0
        self.examples: dict[tuple[str, str, int | None], list[dict[str, Any]]] = {}
        self.examples_kept = 0
        self.connections = 0

    def _coarsen(self, factor: int) -> None:
        self.conn_states = coarsen(self.conn_states, factor)

    def __call__(self, record: FlowRecord) -> None:
        self.timeline(record)
        self.connections += 1
        bucket = self.timeline.bucket(record.start)
        counts = self.conn_states.get(bucket)
        if counts is None:
            counts = self.conn_states[bucket] = [0] * len(CONN_STATES)
        state = record.conn_state
        counts[CONN_STATES.index(state) if state in CONN_STATES else len(CONN_STATES) - 1] += 1
        if record.syn_synack_ms is not None and record.synack_ack_ms is not None:
            self._rtt(record.syn_synack_ms + record.synack_ack_ms)
        kinds = list(record.facts.anomalies)
        kinds += [kind for kind, about in _AGGREGATE_KINDS.items() if about(record)]
        for kind in kinds:
            self._example(kind, record)

    def _rtt(self, ms: float) -> None:
        if not math.isfinite(ms):
            return
        self.rtt_count += 1
        if ms < RTT_LOW_MS:
            self.rtt_bins[0] += 1
            return
        index = 1 + math.floor(math.log10(ms / RTT_LOW_MS) * RTT_BINS_PER_DECADE)
        self.rtt_bins[min(index, len(self.rtt_bins) - 1)] += 1

    def _example(self, kind: str, record: FlowRecord) -> None:
        key = (kind, format_ip(record.server_ip), record.server_port)
        kept = self.examples.get(key)
        if kept is None:
            if self.examples_kept >= EXAMPLES_IN_ALL:
                return
            kept = self.examples[key] = []
        if len(kept) < EXAMPLES_PER_FINDING and self.examples_kept < EXAMPLES_IN_ALL:
            kept.append(flow_row(record))
            self.examples_kept += 1

    # ------------------------------------------------------------------ the page
    def write(
        self,
        stream: IO[str],
        summary: dict[str, Any],
        findings: list[dict[str, Any]],
        first: float | None,
        end: float | None,
    ) -> None:
        """The page: `summary` is the summary report's dict, `findings` the anomalies rows."""
        offline = require()
        figures = self._figures(first, end)
        stream.write(_HEAD)
        stream.write(_plotly_script(offline.get_plotlyjs()))
        stream.write("<main>\n<h1>tcpflow-audit report</h1>\n")
        stream.write(_what_was_read(summary))
        stream.write(self._findings(findings))
        stream.write('<h2 id="plots">Plots</h2>\n')
        for figure in figures:
            stream.write(
                f'<section class="plot-block"><h3>{html.escape(figure["title"])}</h3>'
                f'<p class="note">{html.escape(figure["note"])}</p>'
                f'<div class="plot" id="{figure["id"]}"></div></section>\n'
            )
        if not figures:
            stream.write("<p>No connections: nothing to plot.</p>\n")
        stream.write('<pre id="report-status" hidden></pre>\n</main>\n')
        data = [{"id": f["id"], "data": f["data"], "layout": f["layout"]} for f in figures]
        stream.write(
            "<script>const FIGURES = "
            + json.dumps(data, separators=(",", ":"))
            + ";\n"
            + _DRAW
            + "</script>\n</body>\n</html>\n"
        )

    def _figures(self, first: float | None, end: float | None) -> list[dict[str, Any]]:
        if first is None or end is None or not self.connections:
            return []
        timeline = self.timeline
        width = timeline.bucket_s
        rows = list(timeline.rows(first, end))
        figures: list[dict[str, Any]] = []
        # the hosts that took part in at least MIN_CONNECTIONS connections or 1% of the busiest one's
        activity = {format_ip(ip): n for ip, n in timeline.hosts.activity.items()}
        busiest = max(activity.values(), default=0)
        hosts = [
            ip
            for ip in dict.fromkeys(row["host"] for row in rows if row["port"] is None)
            if activity.get(ip, 0) >= min(MIN_CONNECTIONS, busiest / 100)
        ]
        services = list(dict.fromkeys((row["host"], row["port"]) for row in rows if row["port"] is not None))
        # socket states per host, stacked
        for host in hosts:
            series = [row for row in rows if row["host"] == host and row["port"] is None]
            times = [_bucket_end(row["time_epoch"], width) for row in series]
            traces = [
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": state,
                    "x": times,
                    "y": [row[state] for row in series],
                    "stackgroup": "states",
                    "line": {"shape": "hv", "width": 0.5, "color": STATE_COLORS[state]},
                }
                for state in STATE_COLUMNS
                if state != "LISTEN" and any(row[state] for row in series)
            ]
            if traces:
                figures.append(
                    _figure(
                        f"Sockets of {host} by state",
                        traces,
                        "sockets",
                        f"At each bucket's end ({_seconds(width)} buckets), stacked; LISTEN left out.",
                    )
                )
        # handshakes per second per service
        for host, port in services:
            series = [row for row in rows if row["host"] == host and row["port"] == port]
            times = [_bucket_mid(row["time_epoch"], width) for row in series]
            traces = [
                {
                    "type": "bar",
                    "name": label,
                    "x": times,
                    "marker": {"color": color},
                    "y": [round(row[event] / width, 3) for row in series],
                }
                for event, label, color in _EVENTS
                if any(row[event] for row in series)
            ]
            if traces:
                figures.append(
                    _figure(
                        f"Handshakes of {_endpoint(host, port)} per second",
                        traces,
                        "per second",
                        f"Connections whose first SYN, first SYN-ACK, completed handshake or RST "
                        f"fell in each {_seconds(width)} bucket, divided by its length.",
                        barmode="group",
                    )
                )
        # TIME_WAIT and CLOSE_WAIT per host
        traces = []
        for host in hosts:
            series = [row for row in rows if row["host"] == host and row["port"] is None]
            times = [_bucket_end(row["time_epoch"], width) for row in series]
            for state, dash in (("TIME_WAIT", "solid"), ("CLOSE_WAIT", "dash")):
                if any(row[state] for row in series):
                    traces.append(
                        {
                            "type": "scatter",
                            "mode": "lines",
                            "name": f"{host} {state}",
                            "x": times,
                            "y": [row[state] for row in series],
                            "line": {"shape": "hv", "dash": dash},
                        }
                    )
        if traces:
            figures.append(
                _figure("TIME_WAIT and CLOSE_WAIT per host", traces, "sockets", "Solid: TIME_WAIT; dashed: CLOSE_WAIT.")
            )
        # handshake RTT
        if self.rtt_count:
            labels, counts = self._rtt_bars()
            figures.append(
                _figure(
                    "Handshake RTT",
                    [{"type": "bar", "x": labels, "y": counts, "name": "connections"}],
                    "connections",
                    f"SYN to SYN-ACK to ACK of {self.rtt_count:,} completed "
                    "handshakes, in logarithmic bins (milliseconds).",
                    xaxis_type="category",
                )
            )
        # connections by conn_state
        traces = []
        buckets = sorted(self.conn_states)
        times = [_bucket_mid(bucket * width, width) for bucket in buckets]
        for i, state in enumerate(CONN_STATES):
            ys = [self.conn_states[b][i] for b in buckets]
            if any(ys):
                traces.append({"type": "bar", "name": state, "x": times, "y": ys})
        if traces:
            figures.append(
                _figure(
                    "Connections by conn_state",
                    traces,
                    "connections",
                    f"By the {_seconds(width)} bucket each connection began in (Zeek's conn_state).",
                    barmode="stack",
                )
            )
        for n, figure in enumerate(figures):
            figure["id"] = f"plot-{n}"
        return figures

    def _rtt_bars(self) -> tuple[list[str], list[int]]:
        bins = self.rtt_bins
        used = [i for i, n in enumerate(bins) if n]
        labels, counts = [], []
        for i in range(used[0], used[-1] + 1):
            if i == 0:
                label = f"< {RTT_LOW_MS:g}"
            elif i == len(bins) - 1:
                label = f">= {RTT_LOW_MS * 10**RTT_DECADES:g}"
            else:
                label = f"{RTT_LOW_MS * 10 ** ((i - 1) / RTT_BINS_PER_DECADE):.3g}"
            labels.append(label)
            counts.append(bins[i])
        return labels, counts

    def _findings(self, findings: list[dict[str, Any]]) -> str:
        ordered = sorted(
            findings,
            key=lambda f: (
                SEVERITY_ORDER.index(f["severity"]) if f["severity"] in SEVERITY_ORDER else len(SEVERITY_ORDER)
            ),
        )
        parts = [f'<h2 id="findings">Findings: {len(findings)}</h2>\n']
        if not findings:
            parts.append("<p>None.</p>\n")
            return "".join(parts)
        parts.append(
            "<table><thead><tr><th>severity</th><th>kind</th><th>server</th><th>client</th><th>count</th>"
            "<th>first seen</th><th>last seen</th><th>detail</th></tr></thead><tbody>\n"
        )
        for n, f in enumerate(ordered):
            parts.append(
                f'<tr class="{_e(f["severity"])}"><td>{_e(f["severity"])}</td>'
                f'<td><a href="#finding-{n}">{_e(f["kind"])}</a></td>'
                f"<td>{_e(_endpoint(f['server_ip'], f['server_port']))}</td>"
                f"<td>{_e(_endpoint(f['client_ip'], f['client_port']))}</td><td>{_e(f['count'])}</td>"
                f"<td>{_e(f['first_seen'])}</td><td>{_e(f['last_seen'])}</td><td>{_e(f['detail'])}</td></tr>\n"
            )
        parts.append("</tbody></table>\n")
        for n, f in enumerate(ordered):
            rows = self.examples.get((f["kind"], f["server_ip"], f["server_port"]), [])
            parts.append(
                f'<section class="finding" id="finding-{n}"><h3>{_e(f["severity"])}: {_e(f["kind"])} on '
                f"{_e(_endpoint(f['server_ip'], f['server_port']))}</h3><p>{_e(f['detail'])}</p>\n"
            )
            if rows:
                shown = f"the first {len(rows)}" if len(rows) >= EXAMPLES_PER_FINDING else f"{len(rows)}"
                parts.append(f"<p>Connections it is about ({shown}; --report flows lists all):</p>\n")
                parts.append(_connections_table(rows))
            else:
                parts.append(
                    "<p>No single connection carries this finding: it is about the service as a whole "
                    "(see the plots).</p>\n"
                )
            parts.append('<p><a href="#findings">back to the findings</a></p></section>\n')
        return "".join(parts)


_CONNECTION_COLUMNS: Final = (
    "start",
    "client",
    "server",
    "conn_state",
    "history",
    "client_state",
    "server_state",
    "end_reason",
    "duration_s",
    "anomalies",
)


def _connections_table(rows: Iterable[dict[str, Any]]) -> str:
    parts = [
        '<table class="connections"><thead><tr>'
        + "".join(f"<th>{c}</th>" for c in _CONNECTION_COLUMNS)
        + "</tr></thead><tbody>\n"
    ]
    for row in rows:
        duration = row["duration_s"]
        cells = dict(
            row,
            client=_endpoint(row["client_ip"], row["client_port"]),
            server=_endpoint(row["server_ip"], row["server_port"]),
            duration_s="" if duration is None or not math.isfinite(duration) else f"{duration:.6f}",
        )
        parts.append("<tr>" + "".join(f"<td>{_e(cells[c])}</td>" for c in _CONNECTION_COLUMNS) + "</tr>\n")
    parts.append("</tbody></table>\n")
    return "".join(parts)


def _what_was_read(summary: dict[str, Any]) -> str:
    lines: list[tuple[str, Any]] = []
    for label, value in summary_facts(summary):
        if label == "input problems":  # (the page has room for the problems themselves)
            value = "; ".join(summary["input_problems"])
        elif label == "connections":
            value = f"{value:,} (at most {summary['peak_live_connections']:,} at once)"
        lines.append((label, f"{value:,}" if isinstance(value, int) else value))
    if not summary["input_problems"]:
        lines.append(("input problems", "none"))
    lines.append(("not ended normally", f"{summary['not_ended_normally']:,} (conn_state other than SF)"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>\n" for k, v in lines)
    return f'<h2 id="read">What was read</h2>\n<table class="summary">\n{body}</table>\n'


def _plotly_script(javascript: str) -> str:
    """Plotly's JavaScript, gzip-compressed and base64-encoded (a third of its 4.8 MB), with the few lines
    that decompress it in the browser (DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 and later)
    and run it; the figures are drawn once it has run (`_DRAW` waits for PLOTLY_READY)."""
    packed = base64.b64encode(gzip.compress(javascript.encode(), compresslevel=9, mtime=0)).decode("ascii")
    return (
        "<script>window.PLOTLY_READY = (function () {\n"
        '  if (typeof DecompressionStream === "undefined") {\n'
        '    return Promise.reject(new Error("this browser cannot decompress the embedded plotting library"));\n'
        "  }\n"
        f'  var packed = "{packed}";\n'
        "  var bytes = Uint8Array.from(atob(packed), function (c) { return c.charCodeAt(0); });\n"
        '  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));\n'
        "  return new Response(stream).text().then(function (code) {\n"
        '    var script = document.createElement("script");\n'
        "    script.textContent = code;\n"
        "    document.head.appendChild(script);\n"
        "  });\n"
        "})();</script>\n"
    )


def _figure(
    title: str,
    traces: list[dict[str, Any]],
    y_title: str,
    note: str,
    barmode: str | None = None,
    xaxis_type: str | None = None,
) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "height": 340,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 40},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.2},
        # Plotly hides the legend of a one-trace plot, which leaves its only state unnamed
        "showlegend": True,
        "hovermode": "x unified",
    }
    if barmode:
        layout["barmode"] = barmode
    if xaxis_type:
        layout["xaxis"] = {"type": xaxis_type, "title": {"text": "milliseconds"}}
    return {"title": title, "note": note, "data": traces, "layout": layout}


def _bucket_end(start: float, width: float) -> str:
    return iso_utc(start + width)


def _bucket_mid(start: float, width: float) -> str:
    return iso_utc(start + width / 2)


def _seconds(width: float) -> str:
    return f"{width:g} s"


def _endpoint(ip: Any, port: Any) -> str:
    if not ip:
        return ""
    text = str(ip)
    if port is None or port == "":
        return text
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _e(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


_HEAD: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tcpflow-audit report</title>
<script>window.REPORT_ERRORS = []; window.addEventListener("error", function (e) {
  window.REPORT_ERRORS.push(String(e.message || e)); });</script>
<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 1em 2em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; background: white; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
table.summary th { background: #f0f0f0; }
tr.critical td:first-child { color: white; background: #c62828; }
tr.warning td:first-child { background: #ffb300; }
tr.info td:first-child { background: #e3f2fd; }
.plot-block { background: white; border: 1px solid #ddd; margin: 1em 0; padding: 0.5em 1em; }
.note { color: #666; font-size: 0.85em; margin: 0; }
.finding { margin: 1em 0; }
</style>
</head>
<body>
"""

_DRAW: Final = """(function () {
  var config = {displaylogo: false, responsive: true};
  var drawn = 0;
  var done = window.PLOTLY_READY.then(function () {
    return Promise.all(FIGURES.map(function (f) {
      return Plotly.newPlot(f.id, f.data, f.layout, config).then(function () { drawn += 1; });
    }));
  });
  function mark() {
    var status = document.getElementById("report-status");
    status.textContent = JSON.stringify({drawn: drawn, plots: FIGURES.length, errors: window.REPORT_ERRORS,
                                         height: document.documentElement.scrollHeight});
    document.body.setAttribute("data-drawn", String(drawn));
  }
  done.then(mark, function (e) { window.REPORT_ERRORS.push(String(e)); mark(); });
})();
"""
