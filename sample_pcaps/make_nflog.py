#!/usr/bin/env python3
"""Make sample_pcaps/nflog.pcap: real TCP connections logged by the Linux kernel's NFLOG (link type 239).

Run as root:  python sample_pcaps/make_nflog.py [--out DIR]

In a fresh network namespace (``tfa-nflog``, only its loopback up), an nftables rule logs every TCP
packet arriving on ports 8080/8081 to netlink log group 5, and ``tcpdump -i nflog:5`` writes what the
kernel hands it. The traffic is the kernel's own TCP stack, driven by this file re-executed in the
namespace with ``--worker``:

    1. IPv4: a request and a 20,000-byte answer, then the client closes      -> SF
    2. IPv4: a connection to port 8081, where nothing listens                 -> REJ
    3. IPv6: a request and a 3,000-byte answer, then the server closes       -> SF

The rule sits on the input hook only, so each packet (which crosses loopback once) is logged once.
Everything is bounded in time and the namespace (with its rule and processes) is removed at the end,
even on error.
"""

from __future__ import annotations

import argparse
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
NS = os.environ.get("TFA_NS_PREFIX", "tfa") + "-nflog"
GROUP = 5
PORT, CLOSED_PORT = 8080, 8081

RULES = f"""
table inet nflog_sample {{
    chain input {{
        type filter hook input priority 0; policy accept;
        tcp dport {{ {PORT}, {CLOSED_PORT} }} log group {GROUP}
        tcp sport {{ {PORT}, {CLOSED_PORT} }} log group {GROUP}
    }}
}}
"""


def _serve(family: int, address: str, answer: int, server_closes: bool, ready: threading.Event) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, PORT))
        listener.listen(1)
        listener.settimeout(10)
        ready.set()
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            conn.recv(100)
            conn.sendall(b"x" * answer)
            if server_closes:
                conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass


def _converse(family: int, address: str, answer: int, server_closes: bool) -> None:
    ready = threading.Event()
    server = threading.Thread(target=_serve, args=(family, address, answer, server_closes, ready))
    server.start()
    ready.wait(10)
    with socket.create_connection((address, PORT), timeout=10) as client:
        client.sendall(b"GET /\n")
        got = 0
        while got < answer:
            chunk = client.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        if server_closes:
            while client.recv(65536):
                pass
    server.join(15)
    time.sleep(0.3)


def worker() -> None:
    """Inside the namespace: the three connections, one after the other."""
    _converse(socket.AF_INET, "127.0.0.1", 20000, server_closes=False)
    try:
        socket.create_connection(("127.0.0.1", CLOSED_PORT), timeout=5).close()
        raise SystemExit("port 8081 accepted a connection")
    except ConnectionRefusedError:
        pass
    time.sleep(0.3)
    _converse(socket.AF_INET6, "::1", 3000, server_closes=True)


def _run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, timeout=30, **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=HERE, help="directory for nflog.pcap (default: sample_pcaps/)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker()
        return
    if os.geteuid() != 0 or not shutil.which("tcpdump") or not shutil.which("nft"):
        raise SystemExit("needs root, tcpdump and nft")
    subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL, check=False)
    _run("ip", "netns", "add", NS)
    tcpdump = None
    try:
        _run("ip", "-n", NS, "link", "set", "lo", "up")
        _run("ip", "netns", "exec", NS, "nft", "-f", "-", input=RULES.encode())
        with tempfile.TemporaryDirectory() as tmp:
            raw = os.path.join(tmp, "nflog.pcap")
            tcpdump = subprocess.Popen(
                ["ip", "netns", "exec", NS, "tcpdump", "-q", "-U", "-i", f"nflog:{GROUP}", "-w", raw],
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)  # tcpdump binds the log group
            _run("ip", "netns", "exec", NS, sys.executable, os.path.abspath(__file__), "--worker")
            time.sleep(0.5)
            tcpdump.send_signal(signal.SIGINT)
            tcpdump.wait(10)
            tcpdump = None
            shutil.copyfile(raw, os.path.join(args.out, "nflog.pcap"))
    finally:
        if tcpdump is not None:
            tcpdump.kill()
            tcpdump.wait(5)
        subprocess.run(["ip", "netns", "del", NS], check=False)
    print(f"wrote {os.path.join(args.out, 'nflog.pcap')}")


if __name__ == "__main__":
    main()
