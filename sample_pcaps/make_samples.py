#!/usr/bin/env python3
"""Regenerate the kernel-made sample captures in sample_pcaps/.

Run as root:  python sample_pcaps/make_samples.py [--only NAME[,NAME...]] [--list]

Every scenario gets two fresh network namespaces, ``tfa-cli`` (10.99.0.1,
fd99::1) and ``tfa-srv`` (10.99.0.2, fd99::2), joined by a veth pair
(tfa-c0 <-> tfa-s0) that is created *inside* the namespaces, so nothing is
added to the host's own network stack.  tcpdump runs inside the server
namespace on tfa-s0 (``-U -w FILE tcp``; one scenario captures in the client
namespace instead), and the traffic comes from the Linux kernel's own TCP
stack, driven by small socket programs: this very file re-executed with
``--worker`` under ``ip netns exec``.  Firewall rules (nftables) live only in
those namespaces.  Every scenario is bounded in time, and namespaces,
processes and rules are removed in ``finally`` blocks even on error.

Requirements: iproute2, tcpdump, nftables (``nft``); ethtool is optional
(``apt-get install -y nftables ethtool``).  Checksum/segmentation offloads
are switched off on both veth ends with ethtool so that captured checksums are
real; without ethtool the packets the server sends would show offloaded
(partial) checksums in the capture.  The kernel here has no sch_netem, so
the simultaneous close is produced by timing (both sides spin to an agreed
wall-clock instant, then close), verified with tshark and retried.

The crafted captures (syn_flood, bad_handshake_ack, ...) come from
make_crafted.py (no root needed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = HERE  # where the captures go (--out)

# namespace names: TFA_NS_PREFIX=xyz gives xyz-cli / xyz-srv (two runs at once on one host must differ)
NS_PREFIX = os.environ.get("TFA_NS_PREFIX", "tfa")
NS_CLI = NS_PREFIX + "-cli"
NS_SRV = NS_PREFIX + "-srv"
DEV_CLI = "tfa-c0"
DEV_SRV = "tfa-s0"
CLI4, SRV4 = "10.99.0.1", "10.99.0.2"
CLI6, SRV6 = "fd99::1", "fd99::2"
MAC_CLI, MAC_SRV = "02:00:0a:63:00:01", "02:00:0a:63:00:02"
PORT = 8080  # server port used by every scenario
CLOSED_PORT = 8081  # nothing ever listens here

# ---------------------------------------------------------------------------
# Workers: run inside a namespace via "ip netns exec NS python THIS --worker"
# ---------------------------------------------------------------------------


def _recv_line(s: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def _recv_exact(s: socket.socket, n: int) -> int:
    got = 0
    while got < n:
        chunk = s.recv(min(65536, n - got))
        if not chunk:
            break
        got += len(chunk)
    return got


def _drain_to_eof(s: socket.socket) -> None:
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            return
        if not chunk:
            return


def _spin_until(t: float) -> None:
    while time.time() < t - 0.002:
        time.sleep(0.0005)
    while time.time() < t:
        pass


HELD = []  # sockets the server keeps open on purpose (CLOSE_WAIT, ...)


def _serve_conn(conn: socket.socket) -> None:
    try:
        line = _recv_line(conn).decode().split()
        if not line:
            conn.close()
            return
        mode, args = line[0], line[1:]
        size = int(args[0]) if args else 64
        body = (b"R" * (size - 1) + b"\n") if size > 0 else b""
        if mode == "CC":  # client closes first
            conn.sendall(body)
            _drain_to_eof(conn)
            conn.close()
        elif mode == "FR":  # client closes first, server closes 0.3 s later
            conn.sendall(body)
            _drain_to_eof(conn)
            time.sleep(0.3)
            conn.close()
        elif mode == "SC":  # server closes first
            conn.sendall(body)
            conn.close()
        elif mode == "HC":  # client half-closes; server keeps sending
            _drain_to_eof(conn)
            for i in range(5):
                conn.sendall(b"D%d" % i + b"d" * 200 + b"\n")
                time.sleep(0.12)
            conn.close()
        elif mode == "HCL":  # client half-closes; server keeps sending, slowly, until it is stopped
            _drain_to_eof(conn)
            for i in range(150):
                conn.sendall(b"L%d" % i + b"l" * 100 + b"\n")
                time.sleep(0.2)
            HELD.append(conn)
        elif mode == "CW":  # server never closes -> CLOSE_WAIT
            _drain_to_eof(conn)
            HELD.append(conn)
        elif mode == "CWR":  # server answers, then never closes -> CLOSE_WAIT once the client closes
            conn.sendall(body)
            _drain_to_eof(conn)
            HELD.append(conn)
        elif mode == "KAOK":  # answers, stays idle while the client's keepalives probe, closes after it
            conn.sendall(body)
            _drain_to_eof(conn)
            conn.close()
        elif mode == "UP":  # reads an upload of `size` bytes, answers "ok", closes after the client
            _recv_exact(conn, size)
            conn.sendall(b"ok\n")
            _drain_to_eof(conn)
            conn.close()
        elif mode == "RST":  # client aborts with RST
            conn.sendall(body)
            _drain_to_eof(conn)
            conn.close()
        elif mode == "SIM":  # both close at wall-clock instant args[1]
            conn.sendall(body)
            _spin_until(float(args[1]))
            conn.close()
        elif mode in ("ZW", "HOLD", "KA"):  # never read / stay idle
            if mode == "KA":
                conn.sendall(body)
            HELD.append(conn)
        else:
            conn.close()
    except OSError:
        try:
            conn.close()
        except OSError:
            pass


def worker_server(cfg: dict) -> None:
    fam = socket.AF_INET6 if ":" in cfg["host"] else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if cfg.get("rcvbuf"):
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, cfg["rcvbuf"])
    ls.bind((cfg["host"], cfg["port"]))
    ls.listen(512)
    print("READY", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=_serve_conn, args=(conn,), daemon=True).start()


def _client_one(c: dict) -> str:
    fam = socket.AF_INET6 if ":" in c["dst"] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    mode = c["mode"]
    if mode in ("KA", "KAOK"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, c.get("kacnt", 3))
    if c.get("sndbuf"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, c["sndbuf"])
    if c.get("sport") is not None:
        s.bind((c["src"], c["sport"]))
    s.settimeout(c.get("timeout", 10))
    try:
        s.connect((c["dst"], c["dport"]))
    except OSError as e:
        s.close()
        return "connect:%s" % e.__class__.__name__
    size = c.get("size", 64)
    if mode == "SILENT":  # server-speaks-first; nobody speaks
        time.sleep(c.get("hold", 30))
        s.close()
        return "silent"
    if mode == "TRICKLE":  # 100 bytes every 0.1 s for `duration` s to a server that reads (and never closes)
        s.sendall(b"CW 0\n")
        end = time.time() + c.get("duration", 10.0)
        s.setblocking(False)
        while time.time() < end:
            try:
                s.send(b"t" * 99 + b"\n")
            except OSError:
                pass
            time.sleep(0.1)
        HELD.append(s)
        return "trickle"
    if mode == "SIM":
        s.sendall(b"SIM %d %.6f\n" % (size, c["at"]))
    elif mode == "UP":
        s.sendall(b"UP %d\n" % size + b"u" * size)
    else:
        s.sendall(b"%s %d\n" % (mode.encode(), size))
    if mode in ("CC", "FR"):
        _recv_exact(s, size)
        s.close()
    elif mode == "SC":
        _recv_exact(s, size)
        _drain_to_eof(s)
        s.close()
    elif mode == "HC":
        s.shutdown(socket.SHUT_WR)
        _drain_to_eof(s)
        s.close()
    elif mode == "HCL":  # half close; the server's data keeps coming while the capture runs
        s.shutdown(socket.SHUT_WR)
        HELD.append(s)
        threading.Thread(target=_drain_to_eof, args=(s,), daemon=True).start()
    elif mode == "CW":
        s.close()
    elif mode == "CWR":
        _recv_exact(s, size)
        s.close()
    elif mode == "KAOK":
        _recv_exact(s, size)
        time.sleep(c.get("hold", 3.5))  # idle: the keepalives probe, the live server answers them
        s.close()
    elif mode == "UP":
        _recv_exact(s, 3)
        s.close()
    elif mode == "RST":
        _recv_exact(s, size)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    elif mode == "SIM":
        _recv_exact(s, size)
        _spin_until(c["at"])
        s.close()
    elif mode == "KA":
        _recv_exact(s, size)
        s.settimeout(None)
        try:
            r = s.recv(1)
            return "ka:recv %r" % r
        except OSError as e:
            return "ka:%s" % e
        finally:
            s.close()
    elif mode == "ZW":
        s.setblocking(False)
        end = time.time() + c.get("duration", 3.0)
        sent = 0
        chunk = b"z" * 1000
        while time.time() < end:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        HELD.append(s)
        return "zw:sent %d" % sent
    return "ok"


def worker_scan(cfg: dict) -> None:
    """One SYN to each [ip, port] of cfg["targets"] (a non-blocking connect, abandoned after `gap` s: a
    refused port answers with a RST meanwhile, a filtered one not at all; closing a socket still in
    SYN_SENT sends nothing)."""
    for ip, port in cfg["targets"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.setblocking(False)
        s.connect_ex((ip, port))
        time.sleep(cfg.get("gap", 0.01))
        s.close()
    print("ALLDONE", flush=True)


def worker_client(cfg: dict) -> None:
    for c in cfg["conns"] * cfg.get("repeat", 1):  # (repeat: many connections in a short argv)
        if c.get("at_rel") is not None:
            c["at"] = time.time() + c["at_rel"]
        r = _client_one(c)
        print("DONE %s %s %s" % (c.get("sport"), c["mode"], r), flush=True)
        if c.get("pause"):
            time.sleep(c["pause"])
    print("ALLDONE", flush=True)
    if cfg.get("linger_after"):
        time.sleep(cfg["linger_after"])


# ---------------------------------------------------------------------------
# Orchestration (root namespace side)
# ---------------------------------------------------------------------------


def sh(*cmd: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    p = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr))
    if not quiet and p.returncode != 0:
        print("  (ignored failure: %s: %s)" % (" ".join(cmd), p.stderr.strip()))
    return p


def nsx(ns: str, *cmd: str, check: bool = True, quiet: bool = False):
    return sh("ip", "netns", "exec", ns, *cmd, check=check, quiet=quiet)


class Lab:
    """Two namespaces joined by a veth pair; processes started inside them."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.tmp = tempfile.mkdtemp(prefix="tfa-samples-")

    # -- namespaces ---------------------------------------------------------
    def up(self) -> None:
        self.down_namespaces()
        sh("ip", "netns", "add", NS_CLI)
        sh("ip", "netns", "add", NS_SRV)
        nsx(
            NS_CLI,
            "ip",
            "link",
            "add",
            "name",
            DEV_CLI,
            "address",
            MAC_CLI,
            "type",
            "veth",
            "peer",
            "name",
            DEV_SRV,
            "address",
            MAC_SRV,
            "netns",
            NS_SRV,
        )
        for ns, dev, a4, a6 in ((NS_CLI, DEV_CLI, CLI4, CLI6), (NS_SRV, DEV_SRV, SRV4, SRV6)):
            nsx(ns, "ip", "link", "set", "lo", "up")
            nsx(ns, "sysctl", "-qw", "net.ipv6.conf.%s.accept_ra=0" % dev, check=False, quiet=True)
            nsx(ns, "ip", "addr", "add", a4 + "/24", "dev", dev)
            nsx(ns, "ip", "-6", "addr", "add", a6 + "/64", "dev", dev, "nodad")
            if shutil.which("ethtool"):
                nsx(
                    ns,
                    "ethtool",
                    "-K",
                    dev,
                    "tx",
                    "off",
                    "rx",
                    "off",
                    "tso",
                    "off",
                    "gso",
                    "off",
                    "gro",
                    "off",
                    check=False,
                    quiet=True,
                )
            nsx(ns, "ip", "link", "set", dev, "up")
        # static neighbours: no ARP/ND wait before the first SYN
        nsx(NS_CLI, "ip", "neigh", "replace", SRV4, "lladdr", MAC_SRV, "dev", DEV_CLI, "nud", "permanent")
        nsx(NS_SRV, "ip", "neigh", "replace", CLI4, "lladdr", MAC_CLI, "dev", DEV_SRV, "nud", "permanent")
        nsx(NS_CLI, "ip", "-6", "neigh", "replace", SRV6, "lladdr", MAC_SRV, "dev", DEV_CLI, "nud", "permanent")
        nsx(NS_SRV, "ip", "-6", "neigh", "replace", CLI6, "lladdr", MAC_CLI, "dev", DEV_SRV, "nud", "permanent")
        time.sleep(0.2)

    def down_namespaces(self) -> None:
        for ns in (NS_CLI, NS_SRV):
            if os.path.exists("/run/netns/" + ns):
                sh("ip", "netns", "del", ns, check=False, quiet=True)

    # -- firewall (nftables, inside a namespace) ----------------------------
    def fw(self, ns: str, hook: str, rule: str) -> None:
        nsx(ns, "nft", "add", "table", "inet", "tfa")
        nsx(ns, "nft", "add", "chain", "inet", "tfa", hook, "{ type filter hook %s priority 0; policy accept; }" % hook)
        nsx(ns, "nft", "add", "rule", "inet", "tfa", hook, *rule.split())

    def fw_flush(self, ns: str) -> None:
        nsx(ns, "nft", "delete", "table", "inet", "tfa", check=False, quiet=True)
        nsx(ns, "nft", "delete", "table", "inet", "tfa_once", check=False, quiet=True)

    # -- processes ----------------------------------------------------------
    def start(self, ns: str, cmd: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def worker(self, ns: str, role: str, cfg: dict) -> subprocess.Popen:
        return self.start(ns, [sys.executable, os.path.abspath(__file__), "--worker", role, json.dumps(cfg)])

    def server(self, host: str = SRV4, **kw) -> subprocess.Popen:
        p = self.worker(NS_SRV, "server", dict(host=host, port=PORT, **kw))
        line = p.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError("server did not start: %r %s" % (line, p.stderr.read()))
        return p

    def client(self, conns: list[dict], wait: bool = True, timeout: float = 30, **kw) -> subprocess.Popen:
        for c in conns:
            c.setdefault("src", CLI6 if ":" in c.get("dst", SRV4) else CLI4)
            c.setdefault("dst", SRV4)
            c.setdefault("dport", PORT)
        p = self.worker(NS_CLI, "client", dict(conns=conns, **kw))
        if wait:
            out, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError("client failed: %s" % err)
            p.result = out  # type: ignore[attr-defined]
        return p

    def tcpdump(
        self,
        path: str,
        ns: str | None = None,
        dev: str = DEV_SRV,
        snaplen: int | None = None,
        count: int | None = None,
        bpf: str = "tcp",
    ) -> subprocess.Popen:
        ns = NS_SRV if ns is None else ns
        if os.path.exists(path):
            os.unlink(path)
        cmd = ["tcpdump", "-i", dev, "-U", "--immediate-mode", "-n", "-Z", "root", "-w", path]
        if snaplen:
            cmd += ["-s", str(snaplen)]
        if count:
            cmd += ["-c", str(count)]
        cmd.append(bpf)
        errf = open(os.path.join(self.tmp, "tcpdump.err"), "w+")
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, *cmd], stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True
        )
        self.procs.append(p)
        deadline = time.time() + 5
        while time.time() < deadline:
            errf.seek(0)
            if "listening on" in errf.read():
                time.sleep(0.2)
                return p
            time.sleep(0.05)
        raise RuntimeError("tcpdump did not start")

    def stop(self, p: subprocess.Popen, sig: int = signal.SIGINT) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def down(self) -> None:
        for p in reversed(self.procs):
            try:
                self.stop(p, signal.SIGTERM)
            except Exception:
                pass
        self.procs.clear()
        for ns in (NS_CLI, NS_SRV):
            if os.path.exists("/run/netns/" + ns):
                self.fw_flush(ns)
        self.down_namespaces()
        shutil.rmtree(self.tmp, ignore_errors=True)


def out(name: str) -> str:
    return os.path.join(OUT_DIR, name)


# ---------------------------------------------------------------------------
# Scenarios. Each gets a fresh Lab (namespaces) and must finish in seconds.
# Client ports are fixed by bind() so the README and tests can rely on them.
# ---------------------------------------------------------------------------


def simple(lab: Lab, name: str, conns: list[dict], host: str = SRV4, settle: float = 0.5) -> None:
    lab.server(host=host)
    td = lab.tcpdump(out(name))
    lab.client(conns)
    time.sleep(settle)
    lab.stop(td)


def sc_client_close(lab: Lab) -> None:
    simple(lab, "client_close.pcap", [dict(mode="CC", sport=40001)])


def sc_server_close(lab: Lab) -> None:
    simple(lab, "server_close.pcap", [dict(mode="SC", sport=40002)])


def sc_refused(lab: Lab) -> None:
    td = lab.tcpdump(out("refused.pcap"))
    lab.client([dict(mode="CC", sport=40003, dport=CLOSED_PORT)])
    time.sleep(0.3)
    lab.stop(td)


def sc_half_close(lab: Lab) -> None:
    simple(lab, "half_close.pcap", [dict(mode="HC", sport=40004)])


def _fins_cross(path: str) -> bool:
    """True when neither side's first FIN acknowledges the other side's FIN."""
    p = sh(
        "tshark",
        "-r",
        path,
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "tcp.flags.fin",
        "-e",
        "tcp.seq_raw",
        "-e",
        "tcp.ack_raw",
        "-e",
        "tcp.len",
        check=False,
    )
    fins = {}
    for ln in p.stdout.splitlines():
        src, fin, seq, ack, ln_ = ln.split("\t")
        if fin in ("1", "True") and src not in fins:
            fins[src] = (int(seq) + int(ln_), int(ack))  # (FIN's own seq number, ack)
    if len(fins) != 2:
        return False
    (a_fin, a_ack), (b_fin, b_ack) = fins.values()
    return a_ack <= b_fin and b_ack <= a_fin


def sc_simultaneous_close(lab: Lab) -> None:
    path = out("simultaneous_close.pcap")
    for attempt in range(1, 41):
        lab.server()
        td = lab.tcpdump(path)
        lab.client([dict(mode="SIM", sport=40005, at_rel=0.3)])
        time.sleep(0.5)
        lab.stop(td)
        if _fins_cross(path):
            print("  simultaneous close: FINs crossed on attempt %d" % attempt)
            return
        # fresh namespaces for the next try (no TIME_WAIT left behind)
        lab.down()
        lab.__init__()
        lab.up()
    raise RuntimeError("could not make the FINs cross")


def sc_rst_abort(lab: Lab) -> None:
    simple(lab, "rst_abort.pcap", [dict(mode="RST", sport=40006, size=300)])


def sc_missing_third_ack(lab: Lab) -> None:
    # drop the client's pure ACKs towards the server port (client namespace, output)
    lab.fw(NS_CLI, "output", "tcp dport %d tcp flags & (fin|syn|rst|psh|ack|urg) == ack drop" % PORT)
    lab.server()
    td = lab.tcpdump(out("missing_third_ack.pcap"))
    lab.client([dict(mode="SILENT", sport=40007, hold=30)], wait=False)
    time.sleep(4.0)
    lab.stop(td)  # stop the capture before anything else can happen


def sc_close_wait(lab: Lab) -> None:
    lab.server()
    td = lab.tcpdump(out("close_wait.pcap"))
    lab.client([dict(mode="CW", sport=40008)])
    time.sleep(3.0)
    lab.stop(td)  # server process still holds the socket in CLOSE_WAIT


def sc_demo(lab: Lab) -> None:
    lab.server()
    td = lab.tcpdump(out("demo.pcap"))
    conns = [
        dict(mode="CC", sport=40101, pause=0.3),
        dict(mode="SC", sport=40102, size=1200, pause=0.3),
        dict(mode="CC", sport=40103, size=3000, pause=0.3),
        dict(mode="CC", sport=40104, dport=CLOSED_PORT, pause=0.3),
        dict(mode="SC", sport=40105, pause=0.3),
        dict(mode="RST", sport=40106, size=500, pause=0.3),
        dict(mode="CW", sport=40107, pause=0.3),
        dict(mode="CC", sport=40108, pause=0.3),
        dict(mode="SC", sport=40109, size=2000, pause=0.3),
    ]
    lab.client(conns)
    time.sleep(0.4)
    lab.stop(td)


def sc_ipv6_client_close(lab: Lab) -> None:
    simple(lab, "ipv6_client_close.pcap", [dict(mode="CC", sport=40010, dst=SRV6)], host=SRV6)


# -- anomaly samples ---------------------------------------------------------


def sc_time_wait_churn(lab: Lab) -> None:
    simple(lab, "time_wait_churn.pcap", [dict(mode="SC", sport=41000 + i, pause=0.005) for i in range(200)])


def sc_client_churn(lab: Lab) -> None:
    simple(lab, "client_churn.pcap", [dict(mode="CC", sport=42000 + i, pause=0.005) for i in range(200)])


def sc_refused_storm(lab: Lab) -> None:
    td = lab.tcpdump(out("refused_storm.pcap"))
    lab.client([dict(mode="CC", sport=43000 + i, dport=CLOSED_PORT, pause=0.008) for i in range(100)])
    time.sleep(0.3)
    lab.stop(td)


def sc_syn_timeout(lab: Lab) -> None:
    # Linux >= 6.7 retransmits the first SYNs at linear 1 s intervals
    # (net.ipv4.tcp_syn_linear_timeouts=4); set it to 0 (where it exists) for
    # the classic exponential backoff: SYN at 0 s, 1 s, 3 s.
    nsx(NS_CLI, "sysctl", "-qw", "net.ipv4.tcp_syn_linear_timeouts=0", check=False)
    lab.fw(NS_SRV, "input", "tcp dport %d tcp flags & (syn|ack) == syn drop" % PORT)
    lab.server()
    td = lab.tcpdump(out("syn_timeout.pcap"))
    lab.client([dict(mode="CC", sport=44001, timeout=30)], wait=False)
    time.sleep(4.0)
    lab.stop(td)


def sc_fin_retransmit(lab: Lab) -> None:
    # Client closes first (mode FR = CC, but the server waits 0.3 s after the
    # client's FIN before closing).  Between the two FINs we make the client
    # namespace drop its own pure ACKs to the server port for ~1 s, so the
    # ACK of the server's FIN is lost and the server (LAST_ACK) retransmits
    # its FIN until the rule is gone.
    lab.server()
    td = lab.tcpdump(out("fin_retransmit.pcap"))
    p = lab.client([dict(mode="FR", sport=44002, size=64)], wait=False)
    line = p.stdout.readline()
    if not line.startswith("DONE"):
        raise RuntimeError("client: %r" % line)
    lab.fw(NS_CLI, "output", "tcp dport %d tcp flags & (fin|syn|rst|psh|ack|urg) == ack drop" % PORT)
    time.sleep(1.0)
    lab.fw_flush(NS_CLI)
    time.sleep(2.0)
    lab.stop(td)


def sc_syn_during_time_wait(lab: Lab) -> None:
    simple(
        lab,
        "syn_during_time_wait.pcap",
        [
            dict(mode="SC", sport=44003, pause=0.5),
            dict(mode="CC", sport=44003),
        ],
    )


def sc_keepalive_dead_peer(lab: Lab) -> None:
    lab.server()
    td = lab.tcpdump(out("keepalive_dead_peer.pcap"), ns=NS_CLI, dev=DEV_CLI)
    p = lab.client([dict(mode="KA", sport=44004, size=64)], wait=False)
    time.sleep(0.3)
    lab.fw(NS_SRV, "input", "ip saddr %s drop" % CLI4)
    lab.fw(NS_SRV, "output", "ip daddr %s drop" % CLI4)
    try:
        p.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(0.3)
    lab.stop(td)


RCVBUF_ZW = int(os.environ.get("TFA_RCVBUF_ZW", "16384"))


def sc_zero_window(lab: Lab) -> None:
    lab.server(rcvbuf=RCVBUF_ZW)
    td = lab.tcpdump(out("zero_window.pcap"), snaplen=128, count=3000)
    lab.client([dict(mode="ZW", sport=44005, duration=3.0, sndbuf=65536)], wait=False)
    time.sleep(3.3)
    lab.stop(td)


def sc_normal_mix(lab: Lab) -> None:
    lab.server()
    td = lab.tcpdump(out("normal_mix.pcap"), snaplen=96)
    conns = []
    for i in range(50):
        mode = "CC" if i % 2 == 0 else "SC"
        size = 1_000_000 if i in (10, 25, 40) else 64 + 37 * i
        conns.append(dict(mode=mode, sport=45000 + i, size=size, pause=0.05))
    lab.client(conns)
    time.sleep(0.4)
    lab.stop(td)


# -- findings that hold on real hosts (issue 12) --------------------------------


def sc_close_wait_short(lab: Lab) -> None:
    # Five clients send a request, read the answer and close; the server application never calls
    # close(): 5 sockets in CLOSE_WAIT (clients in FIN_WAIT_2). A last, ordinary connection 10 s
    # later marks how long the capture ran (a pcap records no end of capture).
    lab.server()
    td = lab.tcpdump(out("close_wait_short.pcap"))
    conns = [dict(mode="CWR", sport=46000 + i, pause=0.2) for i in range(5)]
    conns[-1]["pause"] = 10.0 - 0.2 * 4
    conns.append(dict(mode="CC", sport=46005))
    lab.client(conns, timeout=60)
    time.sleep(0.3)
    lab.stop(td)


def sc_close_wait_baseline(lab: Lab) -> None:
    # 120 connections the server closes as soon as the client has (its usual pace), then 3 whose
    # server never closes, then an ordinary connection 3 s later (the end of the capture).
    lab.server()
    td = lab.tcpdump(out("close_wait_baseline.pcap"), snaplen=96)
    conns = [dict(mode="CC", sport=46100 + i, pause=0.005) for i in range(120)]
    conns += [dict(mode="CWR", sport=46220 + i, pause=0.1) for i in range(3)]
    conns[-1]["pause"] = 3.0
    conns.append(dict(mode="CC", sport=46223))
    lab.client(conns, timeout=60)
    time.sleep(0.3)
    lab.stop(td)


def sc_keepalive_answered(lab: Lab) -> None:
    # Keepalive (idle 1 s, interval 1 s, 3 probes) on a live connection: the server answers every
    # probe; the client closes after 3.5 s idle. Normal: no finding.
    lab.server()
    td = lab.tcpdump(out("keepalive_answered.pcap"))
    lab.client([dict(mode="KAOK", sport=44010, size=64, hold=3.5)], timeout=30)
    time.sleep(0.3)
    lab.stop(td)


def sc_keepalive_unanswered(lab: Lab) -> None:
    # As keepalive_dead_peer, but with 9 probes allowed: the capture (client side) ends after the
    # third unanswered probe, before the kernel gives up.
    lab.server()
    td = lab.tcpdump(out("keepalive_unanswered.pcap"), ns=NS_CLI, dev=DEV_CLI)
    lab.client([dict(mode="KA", sport=44011, size=64, kacnt=9)], wait=False)
    time.sleep(0.3)
    lab.fw(NS_SRV, "input", "ip saddr %s drop" % CLI4)
    lab.fw(NS_SRV, "output", "ip daddr %s drop" % CLI4)
    time.sleep(3.6)
    lab.stop(td)


def sc_syn_timeout_split(lab: Lab) -> None:
    # Three clients whose SYNs the server's host drops, retransmitting (1, 2, 4, 8 s backoff) for 16 s:
    # Zeek's 5 s attempt timer splits each attempt into three connections. A fourth client's first SYN
    # only is dropped (a separate rule, removed after 0.5 s): its retransmission gets through.
    nsx(NS_CLI, "sysctl", "-qw", "net.ipv4.tcp_syn_linear_timeouts=0", check=False)
    lab.fw(NS_SRV, "input", "tcp sport 44101-44103 tcp dport %d tcp flags & (syn|ack) == syn drop" % PORT)
    nsx(NS_SRV, "nft", "add", "table", "inet", "tfa_once")
    nsx(
        NS_SRV,
        "nft",
        "add",
        "chain",
        "inet",
        "tfa_once",
        "input",
        "{ type filter hook input priority 0; policy accept; }",
    )
    nsx(
        NS_SRV,
        "nft",
        "add",
        "rule",
        "inet",
        "tfa_once",
        "input",
        *("tcp sport 44104 tcp dport %d tcp flags & (syn|ack) == syn drop" % PORT).split(),
    )
    lab.server()
    td = lab.tcpdump(out("syn_timeout_split.pcap"))
    for port in (44101, 44102, 44103, 44104):
        lab.client([dict(mode="CC", sport=port, timeout=60)], wait=False)
        time.sleep(0.05)
    time.sleep(0.5)
    nsx(NS_SRV, "nft", "delete", "table", "inet", "tfa_once")
    time.sleep(16.0)
    lab.stop(td)


# -- what a TCP expert sees (issue 13) ------------------------------------------------------------
# This kernel has no sch_netem: loss is made by nftables rules (`numgen random mod 100 < N drop`) in the
# server's input hook, which runs after the capture point (tcpdump sees each packet first), so the
# captures show the original segment, the receiver's duplicate ACKs and the retransmission.


def _random_loss(lab: Lab, percent: float) -> None:
    """Drop this share of the client's data segments on arrival at the server (after the capture point)."""
    per_mille = int(percent * 10)
    lab.fw(NS_SRV, "input", "tcp dport %d meta length > 200 numgen random mod 1000 < %d drop" % (PORT, per_mille))


def sc_data_loss(lab: Lab) -> None:
    # Two uploads: 1.5 MB through 5% random loss of the client's data segments (SACK / fast retransmit
    # recovery), then 300 kB during which every data segment is dropped for 1.5 s (a black-out: the
    # client's retransmission timer fires, backing off 0.2, 0.4, 0.8 s, before the path comes back).
    lab.server()
    td = lab.tcpdump(out("data_loss.pcap"), snaplen=96)
    _random_loss(lab, 5)
    lab.client([dict(mode="UP", sport=44030, size=1_500_000)], timeout=60)
    lab.fw_flush(NS_SRV)
    p = lab.client([dict(mode="UP", sport=44031, size=300_000, sndbuf=65536)], wait=False)
    time.sleep(0.05)
    lab.fw(NS_SRV, "input", "tcp dport %d meta length > 200 drop" % PORT)
    time.sleep(1.5)
    lab.fw_flush(NS_SRV)
    p.communicate(timeout=30)
    time.sleep(0.3)
    lab.stop(td)


def sc_bulk_little_loss(lab: Lab) -> None:
    # A long healthy transfer: 8 MB upload with SACK through 0.2% random loss (background loss): normal.
    lab.server()
    td = lab.tcpdump(out("bulk_little_loss.pcap"), snaplen=96)
    _random_loss(lab, 0.2)
    lab.client([dict(mode="UP", sport=44032, size=8_000_000)], timeout=60)
    time.sleep(0.3)
    lab.stop(td)


def sc_rto_dead_peer(lab: Lab) -> None:
    # A client trickling 100 bytes every 0.1 s to a server that reads; the capture starts mid-stream,
    # then the server's host drops everything from the client (a dead peer, seen from the client's side):
    # the client re-sends its first unacknowledged segment as its retransmission timer backs off.
    lab.server()
    lab.client([dict(mode="TRICKLE", sport=44033, duration=12.0)], wait=False)
    time.sleep(1.0)
    td = lab.tcpdump(out("rto_dead_peer.pcap"), ns=NS_CLI, dev=DEV_CLI)
    time.sleep(0.5)
    lab.fw(NS_SRV, "input", "ip saddr %s drop" % CLI4)
    time.sleep(7.0)
    lab.stop(td)


def sc_capture_gap(lab: Lab) -> None:
    # Ordinary transfers (the network delivers every segment) captured through a BPF filter that leaves out
    # the data segments whose IP ID ends in the 5 bits 00011 (1 in 32: the ID counts the sender's packets):
    # the capture, not the network, is missing them; the receiver acknowledges them all.
    lab.server()
    td = lab.tcpdump(out("capture_gap.pcap"), snaplen=96, bpf="tcp and not (ip[5] & 0x1f = 3 and len > 200)")
    lab.client([dict(mode="UP", sport=44034 + i, size=400_000, pause=0.05) for i in range(3)], timeout=60)
    time.sleep(0.3)
    lab.stop(td)


def sc_port_scan(lab: Lab) -> None:
    # One source tries 120 ports of the server (nothing listens: each refused by a RST), 60 ports of a
    # filtered host (10.99.0.3: its SYNs dropped, never answered), and port 22 of 30 hosts (10.99.0.10-39,
    # all refusing): a vertical scan of each host and a horizontal one of port 22.
    for i in [3, *range(10, 40)]:
        nsx(NS_SRV, "ip", "addr", "add", "10.99.0.%d/24" % i, "dev", DEV_SRV)
    nsx(NS_CLI, "ip", "neigh", "replace", "10.99.0.3", "lladdr", MAC_SRV, "dev", DEV_CLI, "nud", "permanent")
    for i in range(10, 40):
        nsx(NS_CLI, "ip", "neigh", "replace", "10.99.0.%d" % i, "lladdr", MAC_SRV, "dev", DEV_CLI, "nud", "permanent")
    lab.fw(NS_SRV, "input", "ip daddr 10.99.0.3 drop")
    td = lab.tcpdump(out("port_scan.pcap"))
    targets = [[SRV4, 9000 + i] for i in range(120)]
    targets += [["10.99.0.3", 9000 + i] for i in range(60)]
    targets += [["10.99.0.%d" % i, 22] for i in range(10, 40)]
    p = lab.worker(NS_CLI, "scan", dict(targets=targets, gap=0.01))
    p.communicate(timeout=60)
    time.sleep(0.3)
    lab.stop(td)


def sc_challenge_ack(lab: Lab) -> None:
    # The client aborts a connection from port 44040, but its RST never leaves its host (an nftables rule
    # drops it): the server still holds the connection ESTABLISHED. The client then connects again from the
    # same port: Linux answers the new SYN with a challenge ACK for the old connection (RFC 5961 4.2), the
    # client answers that with a RST carrying the acknowledged number, which resets the old connection, and
    # its SYN retransmission (1 s later) opens the new one.
    lab.server()
    td = lab.tcpdump(out("challenge_ack.pcap"))
    lab.fw(NS_CLI, "output", "tcp sport 44040 tcp flags & (rst|fin) != 0 drop")
    lab.client([dict(mode="RST", sport=44040, size=64)])
    time.sleep(0.3)
    lab.fw_flush(NS_CLI)
    lab.client([dict(mode="CC", sport=44040, size=64)], timeout=30)
    time.sleep(0.3)
    lab.stop(td)


def sc_data_retransmit(lab: Lab) -> None:
    # An upload of 20000 bytes whose 8th packet from the client (conntrack's count) is dropped once by the
    # server's host, after the capture point (tcpdump sees a packet before nftables' input hook; the client
    # side's output hook sees unsegmented GSO packets, not one per segment): the kernel retransmits it.
    nsx(NS_SRV, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1")  # (conntrack counts packets)
    lab.fw(NS_SRV, "input", "tcp dport %d ct original packets 8 drop" % PORT)
    lab.server()
    td = lab.tcpdump(out("data_retransmit.pcap"), snaplen=96)
    lab.client([dict(mode="UP", sport=44020, size=20000)], timeout=30)
    time.sleep(0.5)
    lab.stop(td)


# -- socket tables (issue 16): captures with the kernel's own `ss -tan` at the capture's end ---------


def _ss_now() -> dict:
    """`ss -tan` in both namespaces now, and when (epoch seconds, the capture's clock: between the two)."""
    before = time.time()
    client, server = nsx(NS_CLI, "ss", "-tan").stdout, nsx(NS_SRV, "ss", "-tan").stdout
    return {"at": round((before + time.time()) / 2, 6), "client": client, "server": server}


def _ss_snapshots(lab: Lab, td: subprocess.Popen, name: str, during: list[dict]) -> None:
    """Stop the capture, then at once take `ss -tan` in both namespaces: what each kernel held when the
    capture ended ("at": null), after the snapshots taken `during` it; written beside the capture as
    NAME.ss.json with each side's address (the raw ss text, parsed by the tests)."""
    lab.stop(td)
    end = _ss_now()
    end["at"] = None
    snapshot = {
        "capture": name + ".pcap",
        "captured_in": "server",
        "addresses": {"client": CLI4, "server": SRV4},
        "snapshots": [*during, end],
    }
    with open(out(name + ".ss.json"), "w") as f:
        json.dump(snapshot, f, indent=2)
        f.write("\n")


def sc_sockets_mix(lab: Lab) -> None:
    """Sockets left in most states at once; `ss -tan` in both namespaces when the capture stops."""
    lab.server()
    td = lab.tcpdump(out("sockets_mix.pcap"))
    # simultaneous close: every FIN is dropped on arrival in both namespaces (after the capture point)
    # until both sides have closed, so the FINs cross; their retransmissions (200 ms) end the close
    lab.fw(NS_SRV, "input", "tcp flags & fin == fin drop")
    lab.fw(NS_CLI, "input", "tcp flags & fin == fin drop")
    lab.client([dict(mode="SIM", sport=40301, at_rel=0.3)])
    time.sleep(0.1)
    lab.fw_flush(NS_SRV)
    lab.fw_flush(NS_CLI)
    time.sleep(1.5)
    during = [_ss_now()]  # quiet: both sides of the simultaneous close in TIME_WAIT
    time.sleep(0.5)
    # a SYN the server never sees (dropped after the capture point): the client stays SYN_SENT
    lab.fw(NS_SRV, "input", "tcp sport 40302 tcp flags & (syn|ack) == syn drop")
    lab.client([dict(mode="CC", sport=40302, timeout=60)], wait=False)
    # a third ACK that never leaves the client: the server holds SYN_RECV, the client is ESTABLISHED
    lab.fw(NS_CLI, "output", "tcp sport 40303 tcp flags & (fin|syn|rst|psh|ack|urg) == ack drop")
    lab.client([dict(mode="SILENT", sport=40303, hold=60)], wait=False)
    # a half close in progress: the client's FIN is in, the server keeps sending (client FIN_WAIT_2,
    # server CLOSE_WAIT); the client process stays to read
    lab.client([dict(mode="HCL", sport=40304)], wait=False, linger_after=60)
    time.sleep(1.5)
    during.append(_ss_now())  # no state changes in flight: retransmitted SYN and SYN-ACK, data at 0.2 s
    time.sleep(0.5)
    lab.client(
        [
            *[dict(mode="CC", sport=40305 + i) for i in range(3)],  # client TIME_WAIT
            *[dict(mode="SC", sport=40308 + i) for i in range(3)],  # server TIME_WAIT
            *[dict(mode="CW", sport=40311 + i) for i in range(2)],  # server CLOSE_WAIT, client FIN_WAIT_2
            dict(mode="RST", sport=40313, size=300),  # abort: nothing left
            dict(mode="CC", sport=40314, dport=CLOSED_PORT),  # refused: nothing left
            dict(mode="SC", sport=40315, pause=0.3),  # server TIME_WAIT, which the next SYN on
            dict(mode="CC", sport=40315),  # the 4-tuple ends; client TIME_WAIT
        ]
    )
    time.sleep(1.0)
    _ss_snapshots(lab, td, "sockets_mix", during)


SOCKETS_CHURN = int(os.environ.get("TFA_SOCKETS_CHURN", "400"))


def sc_sockets_churn(lab: Lab) -> None:
    """TIME_WAIT churn on both sides: SOCKETS_CHURN connections (an even number), every other one closed
    first by the client (its TIME_WAIT) or by the server (the server's); `ss -tan` when the capture stops."""
    lab.server()
    td = lab.tcpdump(out("sockets_churn.pcap"), snaplen=96)
    lab.client([dict(mode="CC"), dict(mode="SC")], repeat=SOCKETS_CHURN // 2, timeout=300)
    time.sleep(0.5)
    _ss_snapshots(lab, td, "sockets_churn", [])


SCENARIOS = {
    "client_close": sc_client_close,
    "server_close": sc_server_close,
    "refused": sc_refused,
    "half_close": sc_half_close,
    "simultaneous_close": sc_simultaneous_close,
    "rst_abort": sc_rst_abort,
    "missing_third_ack": sc_missing_third_ack,
    "close_wait": sc_close_wait,
    "demo": sc_demo,
    "ipv6_client_close": sc_ipv6_client_close,
    "time_wait_churn": sc_time_wait_churn,
    "client_churn": sc_client_churn,
    "refused_storm": sc_refused_storm,
    "syn_timeout": sc_syn_timeout,
    "fin_retransmit": sc_fin_retransmit,
    "syn_during_time_wait": sc_syn_during_time_wait,
    "keepalive_dead_peer": sc_keepalive_dead_peer,
    "zero_window": sc_zero_window,
    "normal_mix": sc_normal_mix,
    "close_wait_short": sc_close_wait_short,
    "close_wait_baseline": sc_close_wait_baseline,
    "keepalive_answered": sc_keepalive_answered,
    "keepalive_unanswered": sc_keepalive_unanswered,
    "syn_timeout_split": sc_syn_timeout_split,
    "data_retransmit": sc_data_retransmit,
    "data_loss": sc_data_loss,
    "bulk_little_loss": sc_bulk_little_loss,
    "rto_dead_peer": sc_rto_dead_peer,
    "capture_gap": sc_capture_gap,
    "port_scan": sc_port_scan,
    "challenge_ack": sc_challenge_ack,
    "sockets_mix": sc_sockets_mix,
    "sockets_churn": sc_sockets_churn,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated scenario names (default: all)")
    ap.add_argument("--list", action="store_true", help="list scenario names")
    ap.add_argument("--out", help="write the captures into this directory (default: sample_pcaps/)")
    ap.add_argument(
        "--netns-prefix",
        default="tfa",
        help="name the namespaces PREFIX-cli and PREFIX-srv (default tfa), e.g. to run beside another run",
    )
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        role, cfg = a.worker[0], json.loads(a.worker[1])
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        {"server": worker_server, "client": worker_client, "scan": worker_scan}[role](cfg)
        return 0
    if a.list:
        print("\n".join(SCENARIOS))
        return 0
    global OUT_DIR, NS_CLI, NS_SRV
    if a.out:
        OUT_DIR = os.path.abspath(a.out)
    NS_CLI, NS_SRV = a.netns_prefix + "-cli", a.netns_prefix + "-srv"
    if os.geteuid() != 0:
        print("run as root (network namespaces, tcpdump, nft)", file=sys.stderr)
        return 1
    for tool in ("ip", "tcpdump", "nft", "tshark"):
        if not shutil.which(tool):
            print("missing %s (apt-get install -y iproute2 tcpdump nftables tshark)" % tool, file=sys.stderr)
            return 1
    names = a.only.split(",") if a.only else list(SCENARIOS)
    for n in names:
        n = n.removesuffix(".pcap")
        if n not in SCENARIOS:
            print("unknown scenario %s" % n, file=sys.stderr)
            return 1
        print("== %s" % n, flush=True)
        lab = Lab()
        try:
            lab.up()
            SCENARIOS[n](lab)
        finally:
            lab.down()
        path = out(n + ".pcap")
        print("  wrote %s (%d bytes)" % (path, os.path.getsize(path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
