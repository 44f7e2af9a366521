#!/usr/bin/env python3
"""Benchmark driver (called by bench/run_bench.sh, the documented entry point).

Builds (or reuses) the generated captures in bench/work/, runs tcpflow-audit,
`tshark -q -z conv,tcp` and `tcptrace -n` on each BENCH_RUNS times under
`/usr/bin/time -f '%e %M'`, and prints / writes one table per capture. The header and the results
name the build of the per-packet modules (mypyc-compiled or pure Python).

Environment:
  BENCH_SIZES   packet counts of the generated captures   (default "500000 2000000 4000000")
  BENCH_FLOOD   SYNs in the SYN-flood capture, 0 = none    (default 1000000)
  BENCH_RUNS    runs per tool and capture (median is kept) (default 3)
  BENCH_SEED    generator seed                             (default 1)
  BENCH_TOOLS   tools to run                               (default "tcpflow-audit tshark tcptrace")
  BENCH_WORK    work directory                             (default bench/work)
  TCPFLOW_AUDIT command to run as tcpflow-audit            (default .venv/bin/tcpflow-audit)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
GEN = BENCH / "gen_capture.py"
TIME = "/usr/bin/time"


def env(name: str, default: str) -> str:
    v = os.environ.get(name, "").strip()
    return v if v else default


def shown(path: Path) -> str:
    """A path as printed: relative to the checkout when inside it (BENCH_WORK may be elsewhere)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def gen_hash() -> str:
    return hashlib.sha256(GEN.read_bytes()).hexdigest()[:16]


def count_packets(path: Path, fallback: int) -> tuple[int, str]:
    if shutil.which("capinfos"):
        p = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True)
        for line in p.stdout.splitlines():
            if "Number of packets" in line:
                return int(line.split(":", 1)[1].strip().replace(",", "")), "capinfos"
    return fallback, "generator"


def ensure_capture(work: Path, name: str, gen_args: list[str], expect: int, meta_key: dict) -> dict:
    """Build the capture unless a file with the same parameters (and generator) exists."""
    pcap = work / f"{name}.pcap"
    meta_path = work / f"{name}.json"
    if pcap.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key") == meta_key and meta.get("bytes") == pcap.stat().st_size:
                print(f"reusing {shown(pcap)} ({meta['packets']} packets)", flush=True)
                return meta
        except (ValueError, KeyError):
            pass
    print(f"generating {shown(pcap)} ...", flush=True)
    t0 = time.perf_counter()
    cmd = [sys.executable, str(GEN), "--out", str(pcap), *gen_args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"generator failed: {shlex.join(cmd)}")
    dt = time.perf_counter() - t0
    for line in p.stdout.splitlines():
        print("    " + line)
    packets, how = count_packets(pcap, expect)
    meta = {
        "key": meta_key,
        "bytes": pcap.stat().st_size,
        "packets": packets,
        "counted_by": how,
        "generate_s": round(dt, 2),
        "generator_output": p.stdout,
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def run_once(cmd: list[str], tmp: Path) -> dict:
    tf = tmp / "time.txt"
    out = tmp / "stdout.txt"
    err = tmp / "stderr.txt"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.perf_counter()
        p = subprocess.run([TIME, "-f", "%e %M", "-o", str(tf), *cmd], stdout=fo, stderr=fe)
        wall = time.perf_counter() - t0
    e, m = None, None
    try:
        parts = tf.read_text().strip().splitlines()[-1].split()
        e, m = float(parts[0]), int(parts[1])
    except (OSError, IndexError, ValueError):
        pass
    res = {"rc": p.returncode, "wall": wall, "time_e": e, "rss_kib": m}
    if p.returncode != 0:
        res["stderr"] = err.read_text(errors="replace")[-800:]
    return res


def tcpflow_cmd(tool: str, pcap: Path, outcsv: Path, variant: int) -> list[str]:
    base = shlex.split(tool)
    if variant == 0:
        # the full nightly job: flows.csv, anomalies.csv and summary.json
        return [*base, str(pcap), "--output-dir", str(outcsv.with_suffix(".d")), "-q"]
    return [*base, str(pcap), "--report", "flows", "--format", "csv", "-o", str(outcsv)]


def probe_tcpflow(tool: str, work: Path, tmp: Path) -> tuple[int | None, str]:
    """Pick the tcpflow-audit command line that works on a small capture."""
    probe = work / "probe.pcap"
    if not probe.exists():
        subprocess.run(
            [sys.executable, str(GEN), "--packets", "3000", "--seed", "99", "--out", str(probe), "--quiet"],
            check=True,
            capture_output=True,
        )
    msgs = []
    for variant in (0, 1):
        cmd = tcpflow_cmd(tool, probe, tmp / "probe.csv", variant)
        r = run_once(cmd, tmp)
        if r["rc"] == 0:
            return variant, shlex.join(cmd)
        msgs.append(f"{shlex.join(cmd)} -> rc {r['rc']}: {r.get('stderr', '').strip()[-300:]}")
    return None, "\n".join(msgs)


def fmt_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w[i]) if i in right else c.ljust(w[i]) for i, c in enumerate(cells))

    sep = "  ".join("-" * x for x in w)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def venv_python() -> str:
    py = ROOT / ".venv" / "bin" / "python"
    return str(py) if py.exists() else sys.executable


def build_info(python: str) -> str:
    """tcpflow_audit.build.describe() as the venv's python sees it: mypyc-compiled or pure Python."""
    try:
        p = subprocess.run(
            [python, "-c", "import tcpflow_audit.build as b; print(b.describe())"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    if p.returncode != 0:
        return "unknown (" + ((p.stderr.strip().splitlines() or ["import failed"])[-1])[:200] + ")"
    return p.stdout.strip()


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    vers = {}
    for name, cmd in (("tshark", ["tshark", "--version"]), ("tcptrace", ["tcptrace", "-v"])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            txt = (p.stdout + p.stderr).strip().splitlines()
            vers[name] = next((line for line in txt if "ersion" in line or line.startswith("TShark")), txt[0])
        except (OSError, IndexError, subprocess.TimeoutExpired):
            vers[name] = "missing"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "tools": vers,
    }


def main() -> int:
    sizes = [int(x) for x in env("BENCH_SIZES", "500000 2000000 4000000").split()]
    flood = int(env("BENCH_FLOOD", "1000000"))
    runs = int(env("BENCH_RUNS", "3"))
    seed = int(env("BENCH_SEED", "1"))
    tools = env("BENCH_TOOLS", "tcpflow-audit tshark tcptrace").split()
    work = Path(env("BENCH_WORK", str(BENCH / "work"))).resolve()
    tool_cmd = env("TCPFLOW_AUDIT", str(ROOT / ".venv" / "bin" / "tcpflow-audit"))
    python = venv_python()
    work.mkdir(parents=True, exist_ok=True)

    mi = machine_info()
    print(
        f"machine: {mi['nproc']} CPUs, {mi['cpu']}, {mi['mem_gib']} GiB RAM, kernel {mi['kernel']}, "
        f"python {mi['python']}"
    )
    print(f"tools: tcpflow-audit = {tool_cmd}; {mi['tools'].get('tshark')}; {mi['tools'].get('tcptrace')}")
    build = build_info(python)
    print(f"tcpflow-audit build: {build} ({python})")
    print(f"runs per measurement: {runs} (median wall time, max peak RSS)\n", flush=True)

    gh = gen_hash()
    caps = []
    for n in sizes:
        key = {"packets": n, "seed": seed, "snaplen": 96, "generator": gh}
        meta = ensure_capture(work, f"traffic-{n}-s{seed}", ["--packets", str(n), "--seed", str(seed)], n, key)
        caps.append((f"traffic {n}", work / f"traffic-{n}-s{seed}.pcap", meta))
    if flood:
        key = {"syn_flood": flood, "seed": seed, "snaplen": 96, "generator": gh}
        meta = ensure_capture(
            work, f"synflood-{flood}-s{seed}", ["--syn-flood", str(flood), "--seed", str(seed)], flood, key
        )
        caps.append((f"SYN flood {flood}", work / f"synflood-{flood}-s{seed}.pcap", meta))
    print(flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="tcpflow-bench-"))
    variant, tcpflow_desc = (None, "")
    if "tcpflow-audit" in tools:
        variant, tcpflow_desc = probe_tcpflow(tool_cmd, work, tmp)
        if variant is None:
            print("WARNING: tcpflow-audit does not run; it is left out:\n" + tcpflow_desc + "\n")
        elif variant == 1:
            print("note: --output-dir not supported; tcpflow-audit runs with --report flows\n")

    results = {
        "machine": mi,
        "build": build,
        "runs": runs,
        "seed": seed,
        "tcpflow_audit": tool_cmd,
        "tcpflow_audit_args": (
            ["--output-dir", "DIR", "-q"] if variant == 0 else ["--report", "flows", "--format", "csv"]
        )
        if variant is not None
        else None,
        "captures": [],
    }
    md = [
        "| capture | tool | packets | median wall s | packets/s | peak RSS MiB | tcpflow-audit speed vs this tool |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, pcap, meta in caps:
        packets = meta["packets"]
        cmds = {}
        for tool in tools:
            if tool == "tcpflow-audit":
                if variant is None:
                    continue
                cmd = tcpflow_cmd(tool_cmd, pcap, tmp / "out.csv", variant)
            elif tool == "tshark":
                cmd = ["tshark", "-q", "-z", "conv,tcp", "-r", str(pcap)]
            elif tool == "tcptrace":
                cmd = ["tcptrace", "-n", str(pcap)]
            else:
                raise SystemExit(f"unknown tool in BENCH_TOOLS: {tool}")
            if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
                print(f"  {tool}: not installed, skipped")
                continue
            cmds[tool] = cmd
        # interleave the tools run by run, so that a noisy spell hits all of them alike
        allruns = {tool: [] for tool in cmds}
        for i in range(runs):
            for tool, cmd in cmds.items():
                rs = allruns[tool]
                if rs and rs[-1]["rc"]:
                    continue
                r = run_once(cmd, tmp)
                rs.append(r)
                print(
                    f"  {label}: {tool} run {i + 1}/{runs}: {r['wall']:.2f} s, "
                    f"{(r['rss_kib'] or 0) / 1024:.0f} MiB"
                    + (f", FAILED rc {r['rc']}: " + r.get("stderr", "").strip()[-200:] if r["rc"] else ""),
                    flush=True,
                )
        rows = {}
        for tool, rs in allruns.items():
            ok = [r for r in rs if r["rc"] == 0]
            row = {"command": shlex.join(cmds[tool]), "runs": rs, "ok": len(ok) == len(rs)}
            if ok and len(ok) == len(rs):
                row["wall_s"] = statistics.median(r["wall"] for r in ok)
                row["pps"] = packets / row["wall_s"]
                row["rss_mib"] = max((r["rss_kib"] or 0) for r in ok) / 1024
            rows[tool] = row
        base = rows.get("tcpflow-audit", {}).get("pps")
        for tool, row in rows.items():
            if base and row.get("pps") and tool != "tcpflow-audit":
                row["tcpflow_ratio"] = base / row["pps"]
        table = []
        for tool, row in rows.items():
            if "pps" not in row:
                table.append([tool, str(packets), "FAILED", "-", "-", "-"])
                continue
            ratio = (
                f"{row['tcpflow_ratio']:.3f}x"
                if "tcpflow_ratio" in row
                else ("1x (reference)" if tool == "tcpflow-audit" else "-")
            )
            table.append(
                [tool, f"{packets:,}", f"{row['wall_s']:.2f}", f"{row['pps']:,.0f}", f"{row['rss_mib']:.0f}", ratio]
            )
            md.append(
                f"| {label} | {tool} | {packets:,} | {row['wall_s']:.2f} | {row['pps']:,.0f} | "
                f"{row['rss_mib']:.0f} | {ratio} |"
            )
        print(f"\n== {label}: {pcap.name}, {packets:,} packets ({meta['bytes'] / 2**20:.0f} MiB)")
        print(
            fmt_table(
                ["tool", "packets", "median wall s", "packets/s", "peak RSS MiB", "tcpflow-audit pkt/s ÷ tool pkt/s"],
                table,
                {1, 2, 3, 4, 5},
            )
        )
        print(flush=True)
        results["captures"].append(
            {"label": label, "file": pcap.name, "packets": packets, "bytes": meta["bytes"], "tools": rows}
        )
    shutil.rmtree(tmp, ignore_errors=True)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    head = (
        f"Machine: {mi['nproc']} CPUs, {mi['cpu']}, Python {mi['python']}; tcpflow-audit build: {build}; "
        f"{runs} runs each, median wall time.\n\n"
    )
    (work / "results.md").write_text(head + "\n".join(md) + "\n")
    print(f"wrote {(work / 'results.json')} and {(work / 'results.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
