"""tcpflow-audit: audit TCP connection behaviour in packet captures.

Python use:

    from tcpflow_audit import audit
    result = audit(["capture.pcap"])
    result.flows        # pandas DataFrame, one row per connection (columns as the flows report)
    result.anomalies    # pandas DataFrame, one row per finding
    result.summary      # dict, as the JSON summary
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "BUILD":  # "compiled with mypyc" or "pure Python" (see tcpflow_audit.build)
        from .build import describe

        return describe()
    raise AttributeError(name)


@dataclass(slots=True)
class AuditResult:
    flows: Any  # pandas.DataFrame
    anomalies: Any  # pandas.DataFrame
    summary: dict[str, Any]


def audit(
    captures: str | Iterable[str],
    *,
    verify_checksums: bool = False,
    thresholds: Any = None,
    tunnel_ports: Iterable[tuple[str, int]] = (),
    **engine_settings: Any,
) -> AuditResult:
    """Read captures (paths, directories or globs) and return flows, findings and the summary.

    `tunnel_ports`: (tunnel name, UDP port) pairs read as tunnels beside the usual ports, as
    `--tunnel-port NAME=PORT` (e.g. `[("vxlan", 4790)]`); ValueError for an unknown name or port."""
    import pandas as pd

    from .config import EngineConfig
    from .detectors import ANOMALY_COLUMNS, DetectorSet, finding_row
    from .detectors.thresholds import Thresholds
    from .inputs import expand_inputs
    from .pipeline import Auditor
    from .report import FLOW_COLUMNS, SummaryCollector, flow_row, summary_dict

    if isinstance(captures, str):
        captures = [captures]
    inputs = expand_inputs(list(captures))
    engine = EngineConfig(verify_checksums=verify_checksums, **engine_settings)
    auditor = Auditor(engine)
    for name, port in tunnel_ports:
        auditor.decoder.add_tunnel_port(name, port)
    auditor.stats.passed_over = inputs.passed_over
    detectors = DetectorSet.attach(auditor, thresholds or Thresholds())
    summary = SummaryCollector()
    rows: list[dict[str, Any]] = []
    auditor.add_flow_sink(summary)
    auditor.add_flow_sink(lambda record: rows.append(flow_row(record)))
    stats = auditor.run(inputs.sources)
    findings = detectors.finish()
    flows = pd.DataFrame(rows, columns=list(FLOW_COLUMNS))
    anomalies = pd.DataFrame([finding_row(f) for f in findings], columns=list(ANOMALY_COLUMNS))
    return AuditResult(
        flows=flows, anomalies=anomalies, summary=summary_dict(stats, summary, {"findings": len(findings)})
    )


__all__ = ["AuditResult", "audit", "__version__"]
