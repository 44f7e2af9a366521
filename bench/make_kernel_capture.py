#!/usr/bin/env python3
"""Build the benchmark's main capture from the Linux kernel's own TCP stack.

Run as root:  python bench/make_kernel_capture.py [--out bench/work/kernel.pcap] [--connections 105000]

Two fresh network namespaces joined by a veth pair, set up by sample_pcaps/make_samples.py's ``Lab``
(the same addresses, static neighbours, offloads off with ethtool so every captured frame is a
wire-size frame of at most 1514 bytes), carry this mix, all of it made by the kernel:

* short request/response connections (a 80-600 byte request, a response of 100 bytes to 100 KB,
  most of them small), about half closed by the client and half by the server; the client's
  namespace has ``net.ipv4.tcp_tw_reuse=1`` and a narrow ephemeral port range, so its 4-tuples come
  back while the previous connection on them is still in TIME_WAIT (on the client for
  client-closed connections, on the server for server-closed ones);
* paced bulk downloads (``SO_MAX_PACING_RATE``) with random loss on their port in both directions
  (nftables ``numgen random``, in the client's namespace: this kernel has no sch_netem), closed by
  either side.

TCP timestamps, SACK, window scaling and delayed ACKs are the kernel's defaults. tcpdump captures on
the server's veth end with a full snap length and a large buffer (``-B``); if it reports any packet
"dropped by kernel" the run is repeated with less traffic at once (--attempts). The traffic comes
from several client processes (asyncio) against two server processes (SO_REUSEPORT): this file
re-executed with ``--worker`` under ``ip netns exec``. Everything is bounded (--max-seconds), and the
namespaces and processes are removed in ``finally`` blocks even on error.

Beside the capture, FILE.json (--meta) describes the mix: packets and bytes read back from the
capture, connections by who closed first (counted from the capture and by the clients), the SYNs
that reused a 4-tuple, packets out of timestamp order, the loss rule, the kernel version, tcpdump's
counters, and the kernel's own counters at the end (``nstat`` and ``ss -tan`` in each namespace), so
the capture can be checked against the kernel: e.g. distinct SYNs in the capture = TcpActiveOpens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "sample_pcaps"))
import make_samples as lab_mod  # noqa: E402  (sample_pcaps/ is not a package: its Lab sets up the namespaces)

PORT = 8080  # short request/response connections
BULK_PORT = 8090  # paced bulk transfers (the lossy port)
SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)
BODY = b"r" * 200_000


# ---------------------------------------------------------------------------
# Workers: run inside a namespace via "ip netns exec NS python THIS --worker ROLE JSON"
# ---------------------------------------------------------------------------


async def _finish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, closer: bytes) -> None:
    """Close as the request says: at once ("s": this side sends the first FIN) or after the peer's FIN."""
    await writer.drain()
    if closer != b"s":
        while await reader.read(65536):
            pass
    writer.close()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        parts = (await reader.readline()).split()
        if len(parts) < 3:
            writer.close()
            return
        kind, size, closer = parts[0], int(parts[1]), parts[2]
        if kind == b"B":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, int(parts[3]))
            left = size
            while left > 0:
                n = min(left, 131072)
                writer.write(BODY[:n])
                left -= n
                await writer.drain()
        else:
            writer.write(BODY[:size])
        await _finish(reader, writer, closer)
    except (OSError, ValueError, asyncio.IncompleteReadError):
        writer.close()


async def worker_server(cfg: dict) -> None:
    servers = [
        await asyncio.start_server(_serve, cfg["host"], port, reuse_port=True, backlog=4096)
        for port in (PORT, BULK_PORT)
    ]
    print("READY", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def response_size(rng: random.Random) -> int:
    """Mostly small answers, some of a few segments, a few of many (a web server's typical spread)."""
    x = rng.random()
    if x < 0.70:
        return rng.randint(100, 1400)
    if x < 0.93:
        return rng.randint(1500, 12_000)
    return rng.randint(12_000, 100_000)


async def worker_client(cfg: dict) -> None:
    """cfg: host, count, concurrency, seed, deadline (wall clock); prints one JSON line of counts."""
    rng = random.Random(cfg["seed"])
    counts: Counter[str] = Counter()
    left = [cfg["count"]]

    async def one() -> None:
        size = response_size(rng)
        closer = b"c" if rng.random() < 0.5 else b"s"  # who sends the first FIN
        pad = b"q" * rng.randint(60, 580)
        reader, writer = await asyncio.open_connection(cfg["host"], PORT)
        writer.write(b"S %d %s %s\n" % (size, b"s" if closer == b"s" else b"c", pad))
        await reader.readexactly(size)
        if closer == b"s":
            while await reader.read(65536):
                pass
        writer.close()
        counts["server_closed" if closer == b"s" else "client_closed"] += 1

    async def loop() -> None:
        while left[0] > 0 and time.time() < cfg["deadline"]:
            left[0] -= 1
            try:
                await asyncio.wait_for(one(), 30)
            except (TimeoutError, asyncio.IncompleteReadError) as exc:  # (TimeoutError is an OSError)
                counts["failed_" + type(exc).__name__] += 1
            except OSError as exc:
                # every port of the narrow range is in a TIME_WAIT too young to reuse: wait a little
                counts["errno_%s" % (exc.errno or type(exc).__name__)] += 1
                left[0] += 1
                await asyncio.sleep(0.05)

    await asyncio.gather(*(loop() for _ in range(cfg["concurrency"])))
    print(json.dumps(dict(counts)), flush=True)


async def worker_bulk(cfg: dict) -> None:
    """cfg: host, transfers, mib, rate (bytes/s), parallel, seed, deadline; prints one JSON line."""
    rng = random.Random(cfg["seed"])
    counts: Counter[str] = Counter()
    queue = list(range(cfg["transfers"]))

    async def one(i: int) -> None:
        size = cfg["mib"] << 20
        closer = b"c" if i % 2 == 0 else b"s"
        reader, writer = await asyncio.open_connection(cfg["host"], BULK_PORT)
        writer.write(b"B %d %s %d\n" % (size, closer, cfg["rate"]))
        got = 0
        while got < size:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        if closer == b"s":
            while await reader.read(65536):
                pass
        writer.close()
        counts["bytes"] += got
        counts["server_closed" if closer == b"s" else "client_closed"] += 1

    async def loop() -> None:
        while queue and time.time() < cfg["deadline"]:
            i = queue.pop()
            await asyncio.sleep(rng.random())
            try:
                await asyncio.wait_for(one(i), max(1.0, cfg["deadline"] - time.time()))
            except OSError as exc:  # (TimeoutError included)
                counts["failed_" + type(exc).__name__] += 1

    await asyncio.gather(*(loop() for _ in range(cfg["parallel"])))
    print(json.dumps(dict(counts)), flush=True)


WORKERS = {"server": worker_server, "client": worker_client, "bulk": worker_bulk}


async def run_worker(role: str, cfg: dict) -> None:
    # a peer's reset is part of the traffic, not news; and the stderr pipe must never fill up
    asyncio.get_running_loop().set_exception_handler(lambda _loop, _context: None)
    await WORKERS[role](cfg)


# ---------------------------------------------------------------------------
# Reading the capture back: what it holds, counted without any tool under test
# ---------------------------------------------------------------------------


def census(path: Path) -> dict:
    """Packets, bytes, frame sizes, SYNs, who sent the first FIN, reused 4-tuples, timestamp order."""
    c: Counter[str] = Counter()
    first_fin: dict[tuple, int] = {}  # 4-tuple -> 1 when its current connection saw a FIN already
    syns: set[tuple] = set()
    tuples_seen: set[tuple] = set()
    last_ts = 0
    biggest = 0
    with open(path, "rb") as f:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        nano = magic == 0xA1B23C4D
        rec = struct.Struct("<IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            sec, frac, incl, _orig = rec.unpack(h)
            frame = f.read(incl)
            c["packets"] += 1
            c["bytes"] += incl
            biggest = max(biggest, incl)
            ts = sec * 1_000_000_000 + (frac if nano else frac * 1000)
            if ts < last_ts:
                c["out_of_timestamp_order"] += 1
            last_ts = max(last_ts, ts)
            if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 15) * 4
            t = 14 + ihl
            src, dst = frame[26:30], frame[30:34]
            sport, dport = struct.unpack_from("!HH", frame, t)
            flags = frame[t + 13]
            if (flags & 0x12) == 0x02:  # SYN without ACK: a connection attempt (or its retransmission)
                key = (src, sport, dst, dport)
                isn = frame[t + 4 : t + 8]
                if (key, isn) not in syns:
                    syns.add((key, isn))
                    c["connections"] += 1
                    if key in tuples_seen:
                        c["syn_on_reused_4tuple"] += 1
                    tuples_seen.add(key)
                    first_fin[key] = 0
            if flags & 0x01:
                fwd = (src, sport, dst, dport)
                if fwd in first_fin:
                    if not first_fin[fwd]:
                        c["client_sent_first_fin"] += 1
                        first_fin[fwd] = 1
                else:
                    back = (dst, dport, src, sport)
                    if back in first_fin and not first_fin[back]:
                        c["server_sent_first_fin"] += 1
                        first_fin[back] = 1
            if flags & 0x04:
                c["rst"] += 1
    c["largest_frame"] = biggest
    return dict(c)


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------


def kernel_counters(ns: str) -> dict:
    """nstat (absolute: the namespace is fresh, so its counters began at zero) and ss -tan by state."""
    p = lab_mod.nsx(ns, "nstat", "-asz", "--json", check=False, quiet=True)
    try:
        nstat = json.loads(p.stdout).get("kernel", {})
    except ValueError:
        nstat = {}
    keep = (
        "TcpActiveOpens",
        "TcpPassiveOpens",
        "TcpAttemptFails",
        "TcpEstabResets",
        "TcpOutSegs",
        "TcpInSegs",
        "TcpRetransSegs",
        "TcpOutRsts",
        "TcpExtTW",
        "TcpExtTWRecycled",
        "TcpExtTCPTimeWaitOverflow",
        "TcpExtTCPSackRecovery",
        "TcpExtTCPLostRetransmit",
        "TcpExtTCPFastRetrans",
        "TcpExtTCPTimeouts",
        "TcpExtDelayedACKs",
        "TcpExtTCPSACKReorder",
        "TcpExtListenOverflows",
        "TcpExtListenDrops",
    )
    ss = lab_mod.nsx(ns, "ss", "-tanH", check=False, quiet=True).stdout.splitlines()
    states = Counter(line.split()[0] for line in ss if line.strip())
    return {"nstat": {k: nstat.get(k, 0) for k in keep}, "ss_tan_states": dict(states)}


def against_the_kernel(seen: dict, counters: dict) -> dict:
    """The capture's counts beside the kernel's: connections = the client's TcpActiveOpens; packets =
    segments sent by both sides (TcpOutSegs, retransmissions apart in TcpRetransSegs) less the bulk
    port's packets dropped before the capture point (the client's output rule)."""
    cli, srv = counters["client"]["nstat"], counters["server"]["nstat"]
    sent = sum(n["TcpOutSegs"] + n["TcpRetransSegs"] for n in (cli, srv))
    return {
        "connections_in_capture": seen.get("connections", 0),
        "client_TcpActiveOpens": cli["TcpActiveOpens"],
        "server_TcpPassiveOpens": srv["TcpPassiveOpens"],
        "packets_in_capture": seen.get("packets", 0),
        "segments_sent_by_both": sent,
        "time_wait_client_TcpExtTW": cli["TcpExtTW"],
        "time_wait_server_TcpExtTW": srv["TcpExtTW"],
        "time_wait_reused_by_connect_TcpExtTWRecycled": cli["TcpExtTWRecycled"],
    }


def start_tcpdump(lab: lab_mod.Lab, path: Path, buffer_kib: int) -> subprocess.Popen:
    if path.exists():
        path.unlink()
    cmd = ["tcpdump", "-i", lab_mod.DEV_SRV, "-n", "-s", "0", "-B", str(buffer_kib), "-Z", "root"]
    p = lab.start(lab_mod.NS_SRV, [*cmd, "-w", str(path), "tcp"])
    line = p.stderr.readline() if p.stderr else ""
    if "listening on" not in line:
        raise RuntimeError("tcpdump did not start: %s" % line)
    time.sleep(0.3)
    return p


def stop_tcpdump(p: subprocess.Popen) -> dict:
    """SIGINT, wait for the file to be complete, and parse the counters tcpdump prints on exit."""
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    stats = {}
    for key, pattern in (
        ("captured", r"(\d+) packets? captured"),
        ("received_by_filter", r"(\d+) packets? received by filter"),
        ("dropped_by_kernel", r"(\d+) packets? dropped by kernel"),
    ):
        m = re.search(pattern, err)
        stats[key] = int(m.group(1)) if m else None
    return stats


def run_once(args: argparse.Namespace, scale: float) -> dict:
    """One capture in fresh namespaces; `scale` < 1 slows the traffic (fewer at once, slower bulk)."""
    lab = lab_mod.Lab()
    started = time.time()
    deadline = started + args.max_seconds
    try:
        lab.up()
        cli, srv = lab_mod.NS_CLI, lab_mod.NS_SRV
        lab_mod.nsx(cli, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")
        lab_mod.nsx(cli, "sysctl", "-qw", "net.ipv4.ip_local_port_range=%s" % args.port_range)
        for ns in (cli, srv):
            lab_mod.nsx(ns, "sysctl", "-qw", "net.core.somaxconn=4096")
            lab_mod.nsx(ns, "sysctl", "-qw", "net.ipv4.tcp_max_syn_backlog=8192")
        loss = "numgen random mod 10000 < %d drop" % round(args.loss * 100)
        if args.loss > 0:
            lab.fw(cli, "input", "tcp sport %d %s" % (BULK_PORT, loss))
            lab.fw(cli, "output", "tcp dport %d %s" % (BULK_PORT, loss))
        td = start_tcpdump(lab, args.out, args.buffer_kib)
        me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
        host = lab_mod.SRV4
        servers = [lab.start(srv, [*me, "server", json.dumps({"host": host})]) for _ in range(2)]
        for s in servers:
            line = s.stdout.readline() if s.stdout else ""
            if line.strip() != "READY":
                raise RuntimeError("server did not start: %r" % line)
        work_deadline = deadline - 30
        per = args.connections // args.clients
        clients = [
            lab.start(
                cli,
                [
                    *me,
                    "client",
                    json.dumps(
                        {
                            "host": host,
                            "count": per + (args.connections % args.clients if i == 0 else 0),
                            "concurrency": max(1, round(args.concurrency * scale)),
                            "seed": args.seed * 100 + i,
                            "deadline": work_deadline,
                        }
                    ),
                ],
            )
            for i in range(args.clients)
        ]
        bulk = lab.start(
            cli,
            [
                *me,
                "bulk",
                json.dumps(
                    {
                        "host": host,
                        "transfers": args.bulk,
                        "mib": args.bulk_mib,
                        "rate": int(args.bulk_rate * scale * 1e6),
                        "parallel": args.bulk_parallel,
                        "seed": args.seed,
                        "deadline": work_deadline,
                    }
                ),
            ],
        )
        results = []
        for p in [*clients, bulk]:
            out, err = p.communicate(timeout=max(5.0, deadline - time.time()))
            if p.returncode != 0 or not out.strip():
                raise RuntimeError("traffic worker failed (rc %s): %s" % (p.returncode, err[-500:]))
            results.append(json.loads(out.strip().splitlines()[-1]))
        time.sleep(1.5)  # the last FINs and ACKs
        counters = {"client": kernel_counters(cli), "server": kernel_counters(srv)}
        tcpdump = stop_tcpdump(td)
        traffic: Counter[str] = Counter()
        for r in results[:-1]:
            traffic.update(r)
        return {
            "seconds": round(time.time() - started, 1),
            "scale": scale,
            "short": dict(traffic),
            "bulk": results[-1],
            "kernel_counters": counters,
            "tcpdump": tcpdump,
            "loss_rule": (
                "client namespace, input tcp sport %d and output tcp dport %d: %s" % (BULK_PORT, BULK_PORT, loss)
            )
            if args.loss > 0
            else None,
        }
    finally:
        lab.down()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "work" / "kernel.pcap", help="capture to write")
    ap.add_argument("--meta", type=Path, help="description of the mix (default: the capture's path with .json)")
    ap.add_argument("--connections", type=int, default=105_000, help="short request/response connections")
    ap.add_argument("--clients", type=int, default=3, help="client processes for the short connections")
    ap.add_argument("--concurrency", type=int, default=24, help="connections at once per client process")
    ap.add_argument("--bulk", type=int, default=12, help="bulk transfers")
    ap.add_argument("--bulk-mib", type=int, default=64, help="MiB per bulk transfer")
    ap.add_argument("--bulk-parallel", type=int, default=4, help="bulk transfers at once")
    ap.add_argument("--bulk-rate", type=float, default=8.0, help="pacing of each bulk transfer, MB/s")
    ap.add_argument("--loss", type=float, default=0.5, help="percent of the bulk port's packets dropped")
    ap.add_argument("--port-range", default="40000 44999", help="the client's ephemeral ports (narrow: reuse)")
    ap.add_argument("--buffer-kib", type=int, default=262144, help="tcpdump -B")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=600, help="bound on one attempt")
    ap.add_argument("--attempts", type=int, default=3, help="tries while tcpdump drops packets")
    ap.add_argument("--netns-prefix", default="tfakb", help="namespaces PREFIX-cli and PREFIX-srv")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        asyncio.run(run_worker(args.worker[0], json.loads(args.worker[1])))
        return 0
    if os.geteuid() != 0:
        print("run as root (network namespaces, tcpdump, nft)", file=sys.stderr)
        return 1
    for tool in ("ip", "tcpdump", "nft", "nstat", "ss"):
        if not shutil.which(tool):
            print("missing %s (apt-get install -y iproute2 tcpdump nftables)" % tool, file=sys.stderr)
            return 1
    if not shutil.which("ethtool"):
        print("missing ethtool: without it the capture holds 64 KB GSO frames, not wire frames", file=sys.stderr)
        return 1
    lab_mod.NS_CLI, lab_mod.NS_SRV = args.netns_prefix + "-cli", args.netns_prefix + "-srv"
    args.out = args.out.resolve()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta_path = args.meta or args.out.with_suffix(".json")
    scale = 1.0
    tries = []
    for attempt in range(1, args.attempts + 1):
        print(
            "attempt %d: %d connections, %d x %d MiB bulk, scale %.2f"
            % (attempt, args.connections, args.bulk, args.bulk_mib, scale),
            flush=True,
        )
        run = run_once(args, scale)
        print("  %.0f s; tcpdump: %s" % (run["seconds"], run["tcpdump"]), flush=True)
        tries.append(run)
        if run["tcpdump"]["dropped_by_kernel"] == 0:
            break
        scale /= 2
    else:
        print("tcpdump dropped packets on every attempt: %s" % [t["tcpdump"] for t in tries], file=sys.stderr)
        return 1
    print("reading the capture back ...", flush=True)
    seen = census(args.out)
    meta = {
        "file": str(args.out),
        "made_by": "bench/make_kernel_capture.py",
        "command": " ".join(sys.argv),
        "kernel": platform.release(),
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "capture": seen,
        "mix": {
            "short_connections": args.connections,
            "response_sizes": "70% 100-1400 B, 23% 1.5-12 KB, 7% 12-100 KB; requests 80-600 B",
            "closers": "short: each closed first by client or server at random (1/2 each); bulk: alternately",
            "bulk_transfers": args.bulk,
            "bulk_mib_each": args.bulk_mib,
            "bulk_pacing_mb_s": args.bulk_rate * run["scale"],
            "loss_percent": args.loss,
            "client_sysctls": {"net.ipv4.tcp_tw_reuse": 1, "net.ipv4.ip_local_port_range": args.port_range},
            "mtu": 1500,
            "offloads": "tx/rx checksum, TSO, GSO, GRO off (ethtool) on both veth ends",
            "tcp_options": "kernel defaults: timestamps, SACK, window scaling; delayed ACKs",
        },
        "against_the_kernel": against_the_kernel(seen, run["kernel_counters"]),
        "attempts": tries,
    }
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    active = run["kernel_counters"]["client"]["nstat"]["TcpActiveOpens"]
    print(
        "wrote %s: %d packets, %.0f MiB, %d connections (TcpActiveOpens %d), first FIN: client %d, server %d; "
        "SYNs on a reused 4-tuple %d; out of timestamp order %d; largest frame %d"
        % (
            args.out,
            seen.get("packets", 0),
            seen.get("bytes", 0) / 2**20,
            seen.get("connections", 0),
            active,
            seen.get("client_sent_first_fin", 0),
            seen.get("server_sent_first_fin", 0),
            seen.get("syn_on_reused_4tuple", 0),
            seen.get("out_of_timestamp_order", 0),
            seen.get("largest_frame", 0),
        )
    )
    print("wrote %s" % meta_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
