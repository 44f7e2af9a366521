#!/usr/bin/env python3
"""Write vxlan.pcap and vxlan_8472_ipv6.pcap: real TCP over the Linux kernel's VXLAN, captured on the underlay.

Run as root:  python sample_pcaps/make_vxlan.py

Two underlay namespaces (tfv-ua 192.168.50.1 / fd50::1, tfv-ub 192.168.50.2 / fd50::2) are joined
by a veth pair. VXLAN devices are made in them (their UDP sockets stay there) and moved into
overlay namespaces, so the same inner addresses can live on two networks at once:

* vxlan.pcap: VNI 42 and VNI 43 on UDP 4789 over IPv4, both with the inner addresses
  10.0.0.1 (client) and 10.0.0.2 (server): on each, the client connects from port 40000 to
  port 8080, sends a 100-byte request, reads the 2000-byte response, and closes (client FIN
  first). The same inner 4-tuple on two VNIs: two connections. Then on VNI 42 a refused
  connection (port 8081, nothing listens: S0 ... REJ).
* vxlan_8472_ipv6.pcap: VNI 7 on UDP 8472 (Linux's default VXLAN port) over the IPv6
  underlay, inner IPv6 fd07::1 -> fd07::2:8080 with one request/response and the server
  closing first. (This kernel has no 802.1Q module: VLAN inside VXLAN is crafted, in
  make_tunnels.py.)

tcpdump runs in tfv-ua on the veth end (-U, UDP only). Everything is bounded in time, and the
namespaces are removed in a finally block.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
UNDERLAY = ("tfv-ua", "tfv-ub")
OVERLAYS = ("tfv-c42", "tfv-s42", "tfv-c43", "tfv-s43", "tfv-c7", "tfv-s7")

SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080)); s.listen(); s.settimeout(10)
c, _ = s.accept(); c.settimeout(10)
got = 0
while got < 100:
    got += len(c.recv(4096))
c.sendall(b"r" * 2000)
if sys.argv[2] == "server-first":
    c.close()
else:
    while c.recv(4096):
        pass
    c.close()
"""
CLIENT = """
import socket, sys
c = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind((sys.argv[1], 40000)); c.settimeout(10)
c.connect((sys.argv[2], int(sys.argv[3])))
c.sendall(b"q" * 100)
got = 0
while got < 2000:
    got += len(c.recv(4096))
if sys.argv[4] == "server-first":
    while c.recv(4096):
        pass
c.close()
"""
REFUSED = """
import socket, sys
c = socket.socket(); c.settimeout(5)
try:
    c.connect((sys.argv[1], 8081))
except OSError:
    pass
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def ns(name: str, *args: str) -> None:
    sh("ip", "-n", name, *args)


def vxlan(under: str, local: str, remote: str, vni: int, port: int, into: str, address: str) -> None:
    dev = f"vx{vni}"
    ns(
        under,
        "link",
        "add",
        dev,
        "type",
        "vxlan",
        "id",
        str(vni),
        "local",
        local,
        "remote",
        remote,
        "dstport",
        str(port),
        "dev",
        "veth0",
    )
    ns(under, "link", "set", dev, "netns", into)
    ns(into, "link", "set", "lo", "up")
    ns(into, "link", "set", dev, "mtu", "1400", "up")
    if ":" in address:
        ns(into, "addr", "add", address + "/64", "dev", dev, "nodad")
    else:
        ns(into, "addr", "add", address + "/24", "dev", dev)


def run(name: str, code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", code, *args])


def conversation(client: str, server: str, cip: str, sip: str, how: str) -> None:
    srv = run(server, SERVER, sip, how)
    time.sleep(0.3)
    cli = run(client, CLIENT, cip, sip, "8080", how)
    for p in (cli, srv):
        if p.wait(timeout=15):
            raise RuntimeError(f"{client}/{server}: a program failed")


def capture(name: str, scenario) -> None:
    path = os.path.join(HERE, name)
    dump = subprocess.Popen(
        ["ip", "netns", "exec", "tfv-ua", "tcpdump", "-U", "-q", "-i", "veth0", "-w", path, "udp"],
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        scenario()
        time.sleep(1.0)
    finally:
        dump.terminate()
        dump.wait(timeout=10)
    print("wrote", path)


def main() -> int:
    if os.geteuid():
        print("make_vxlan.py needs root (network namespaces)", file=sys.stderr)
        return 1
    try:
        for name in UNDERLAY + OVERLAYS:
            sh("ip", "netns", "add", name)
        ns("tfv-ua", "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", "tfv-ub")
        for under, v4, v6 in (("tfv-ua", "192.168.50.1", "fd50::1"), ("tfv-ub", "192.168.50.2", "fd50::2")):
            ns(under, "link", "set", "lo", "up")
            ns(under, "addr", "add", v4 + "/24", "dev", "veth0")
            ns(under, "addr", "add", v6 + "/64", "dev", "veth0", "nodad")
            ns(under, "link", "set", "veth0", "up")
            for feature in ("rx", "tx", "tso", "gso", "gro"):
                subprocess.run(
                    ["ip", "netns", "exec", under, "ethtool", "-K", "veth0", feature, "off"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                )
        for vni in (42, 43):
            vxlan("tfv-ua", "192.168.50.1", "192.168.50.2", vni, 4789, f"tfv-c{vni}", "10.0.0.1")
            vxlan("tfv-ub", "192.168.50.2", "192.168.50.1", vni, 4789, f"tfv-s{vni}", "10.0.0.2")
        vxlan("tfv-ua", "fd50::1", "fd50::2", 7, 8472, "tfv-c7", "fd07::1")
        vxlan("tfv-ub", "fd50::2", "fd50::1", 7, 8472, "tfv-s7", "fd07::2")
        time.sleep(1.0)

        def two_vnis() -> None:
            conversation("tfv-c42", "tfv-s42", "10.0.0.1", "10.0.0.2", "client-first")
            time.sleep(0.2)
            conversation("tfv-c43", "tfv-s43", "10.0.0.1", "10.0.0.2", "client-first")
            time.sleep(0.2)
            if run("tfv-c42", REFUSED, "10.0.0.2").wait(timeout=10):
                raise RuntimeError("refused connection: the program failed")

        capture("vxlan.pcap", two_vnis)
        capture(
            "vxlan_8472_ipv6.pcap",
            lambda: conversation("tfv-c7", "tfv-s7", "fd07::1", "fd07::2", "server-first"),
        )
    finally:
        for name in UNDERLAY + OVERLAYS:
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
