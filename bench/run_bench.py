#!/usr/bin/env python3
"""Benchmark driver (called by bench/run_bench.sh, the documented entry point).

The main capture is made by the Linux kernel (bench/make_kernel_capture.py: short connections closed
by either side, paced bulk transfers with loss, full-size frames; built when missing and running as
root, reused otherwise); beside it, the generated captures in bench/work/ (bench/gen_capture.py:
sizes and the SYN flood). On each it runs tcpflow-audit, `tshark -q -z conv,tcp` (on the kernel
capture: on its first BENCH_TSHARK_SLICE packets, tshark being ~50x slower) and `tcptrace -n`
BENCH_RUNS times under `/usr/bin/time -f '%e %M %U %S'`, and prints / writes one table per capture,
with the CPU time tcpflow-audit spends per connection. The header and the results
name the build of the per-packet modules (mypyc-compiled or pure Python).

Environment:
  BENCH_KERNEL  the kernel-made capture, 0 = none          (default bench/work/kernel.pcap)
  BENCH_TSHARK_SLICE  packets of the kernel capture tshark reads (default 300000)
  BENCH_SIZES   packet counts of the generated captures, 0 = none (default "500000 2000000 4000000")
  BENCH_FLOOD   SYNs in the SYN-flood capture, 0 = none    (default 1000000)
  BENCH_FLOOD_RATE  the flood's SYNs a second               (default 50000)
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
KERNEL = BENCH / "make_kernel_capture.py"
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
        p = subprocess.run([TIME, "-f", "%e %M %U %S", "-o", str(tf), *cmd], stdout=fo, stderr=fe)
        wall = time.perf_counter() - t0
    e, m, cpu = None, None, None
    try:
        parts = tf.read_text().strip().splitlines()[-1].split()
        e, m, cpu = float(parts[0]), int(parts[1]), float(parts[2]) + float(parts[3])
    except (OSError, IndexError, ValueError):
        pass
    res = {"rc": p.returncode, "wall": wall, "time_e": e, "rss_kib": m, "cpu_s": cpu}
    if p.returncode != 0:
        res["stderr"] = err.read_text(errors="replace")[-800:]
    return res


def kernel_capture(path: Path) -> dict | None:
    """The kernel-made capture's description (made by make_kernel_capture.py, built here when missing)."""
    meta_path = path.with_suffix(".json")
    if not (path.exists() and meta_path.exists()):
        if os.geteuid() != 0:
            print(f"no kernel capture at {shown(path)}: run as root `python3 {shown(KERNEL)} --out {path}`\n")
            return None
        print(f"building {shown(path)} from the kernel's TCP stack (a few minutes) ...", flush=True)
        p = subprocess.run([sys.executable, str(KERNEL), "--out", str(path)])
        if p.returncode != 0:
            raise SystemExit(f"{shown(KERNEL)} failed (rc {p.returncode})")
    meta = json.loads(meta_path.read_text())
    seen = meta["capture"]
    mib = seen["bytes"] / 2**20
    print(
        f"kernel capture {shown(path)}: {seen['packets']:,} packets, {mib:.0f} MiB, "
        f"{seen['connections']:,} connections (kernel {meta['kernel']})",
        flush=True,
    )
    return {"packets": seen["packets"], "bytes": path.stat().st_size, "kernel": meta}


def tshark_slice(pcap: Path, packets: int, work: Path) -> tuple[Path, int]:
    """The capture's first `packets` packets (editcap), for tshark; the capture itself if it is smaller."""
    out = work / f"{pcap.stem}-first{packets}.pcap"
    if not out.exists() or out.stat().st_mtime < pcap.stat().st_mtime:
        subprocess.run(["editcap", "-r", str(pcap), str(out), f"1-{packets}"], check=True)
    n, _ = count_packets(out, packets)
    return out, n


def connections_of(out_dir: Path) -> int | None:
    try:
        return int(json.loads((out_dir / "summary.json").read_text())["connections"])
    except (OSError, ValueError, KeyError):
        return None


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
    sizes = [n for n in (int(x) for x in env("BENCH_SIZES", "500000 2000000 4000000").split()) if n]  # 0: none
    flood = int(env("BENCH_FLOOD", "1000000"))
    flood_rate = int(env("BENCH_FLOOD_RATE", "50000"))
    runs = int(env("BENCH_RUNS", "3"))
    seed = int(env("BENCH_SEED", "1"))
    tools = env("BENCH_TOOLS", "tcpflow-audit tshark tcptrace").split()
    work = Path(env("BENCH_WORK", str(BENCH / "work"))).resolve()
    tool_cmd = env("TCPFLOW_AUDIT", str(ROOT / ".venv" / "bin" / "tcpflow-audit"))
    kernel_path = env("BENCH_KERNEL", str(BENCH / "work" / "kernel.pcap"))
    slice_packets = int(env("BENCH_TSHARK_SLICE", "300000"))
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
    if kernel_path != "0":
        kpath = Path(kernel_path).resolve()
        kmeta = kernel_capture(kpath)
        if kmeta is not None:
            caps.append(("kernel-made", kpath, kmeta))
    for n in sizes:
        key = {"packets": n, "seed": seed, "snaplen": 96, "generator": gh}
        meta = ensure_capture(work, f"traffic-{n}-s{seed}", ["--packets", str(n), "--seed", str(seed)], n, key)
        caps.append((f"traffic {n}", work / f"traffic-{n}-s{seed}.pcap", meta))
    if flood:
        # 50,000 SYNs a second under Zeek's 5 s attempt timer: about 250,000 unanswered at once
        key = {"syn_flood": flood, "rate": flood_rate, "seed": seed, "snaplen": 96, "generator": gh}
        name = f"synflood-{flood}-r{flood_rate}-s{seed}"
        args = ["--syn-flood", str(flood), "--flood-rate", str(flood_rate), "--seed", str(seed)]
        meta = ensure_capture(work, name, args, flood, key)
        caps.append((f"SYN flood {flood} at {flood_rate}/s", work / f"{name}.pcap", meta))
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
    notes: list[str] = []  # lines under the table
    for label, pcap, meta in caps:
        packets = meta["packets"]
        cmds = {}
        tool_packets = dict.fromkeys(tools, packets)
        for tool in tools:
            if tool == "tcpflow-audit":
                if variant is None:
                    continue
                cmd = tcpflow_cmd(tool_cmd, pcap, tmp / "out.csv", variant)
            elif tool == "tshark":
                tshark_input = pcap
                if "kernel" in meta and packets > slice_packets:
                    tshark_input, tool_packets[tool] = tshark_slice(pcap, slice_packets, work)
                cmd = ["tshark", "-q", "-z", "conv,tcp", "-r", str(tshark_input)]
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
                row["packets"] = tool_packets[tool]
                row["wall_s"] = statistics.median(r["wall"] for r in ok)
                row["pps"] = tool_packets[tool] / row["wall_s"]
                row["rss_mib"] = max((r["rss_kib"] or 0) for r in ok) / 1024
                if all(r["cpu_s"] is not None for r in ok):
                    row["cpu_s"] = statistics.median(r["cpu_s"] for r in ok)
            rows[tool] = row
        conns = connections_of((tmp / "out.csv").with_suffix(".d")) if variant == 0 else None
        per_conn = ""
        if conns and "cpu_s" in rows.get("tcpflow-audit", {}):
            row = rows["tcpflow-audit"]
            row["connections"] = conns
            row["cpu_us_per_connection"] = row["cpu_s"] / conns * 1e6
            row["cpu_us_per_packet"] = row["cpu_s"] / packets * 1e6
            per_conn = (
                f"tcpflow-audit: {conns:,} connections; {row['cpu_s']:.2f} s CPU (median) = "
                f"{row['cpu_us_per_connection']:.1f} us per connection, {row['cpu_us_per_packet']:.2f} us per packet "
                "(all stages, start-up included)"
            )
        base = rows.get("tcpflow-audit", {}).get("pps")
        for tool, row in rows.items():
            if base and row.get("pps") and tool != "tcpflow-audit":
                row["tcpflow_ratio"] = base / row["pps"]
        table = []
        for tool, row in rows.items():
            if "pps" not in row:
                table.append([tool, str(packets), "FAILED", "-", "-", "-"])
                continue
            shown_packets = f"{row['packets']:,}" + (" (slice)" if row["packets"] != packets else "")
            ratio = (
                f"{row['tcpflow_ratio']:.3f}x"
                if "tcpflow_ratio" in row
                else ("1x (reference)" if tool == "tcpflow-audit" else "-")
            )
            table.append(
                [tool, shown_packets, f"{row['wall_s']:.2f}", f"{row['pps']:,.0f}", f"{row['rss_mib']:.0f}", ratio]
            )
            md.append(
                f"| {label} | {tool} | {shown_packets} | {row['wall_s']:.2f} | {row['pps']:,.0f} | "
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
        if per_conn:
            print(per_conn)
            notes.append(f"{label}: {per_conn}.")
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
    tail = "".join(f"\n{note}\n" for note in notes)
    if slice_packets and any("kernel" in meta for _, _, meta in caps):
        tail += f"\ntshark reads the kernel-made capture's first {slice_packets:,} packets (`editcap -r`).\n"
    (work / "results.md").write_text(head + "\n".join(md) + "\n" + tail)
    print(f"wrote {(work / 'results.json')} and {(work / 'results.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
