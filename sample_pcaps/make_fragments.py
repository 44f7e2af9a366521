#!/usr/bin/env python3
"""Write tcp_fragments.pcap and tcp_fragments_port80.pcap: TCP that the Linux kernel fragments.

Run as root:  python sample_pcaps/make_fragments.py

Linux TCP sets DF and discovers the path MTU, so it does not fragment on its own. It does when
the route's MTU is locked (`ip route ... mtu lock`): DF is then left clear. Three namespaces,
tff-c (10.77.1.1) -- tff-r (router) -- tff-s (10.77.2.2): the client and the server have a
1500-byte MTU with their routes locked at 1500, and the router's side of the link to the server
has a 576-byte MTU. Segments of up to 1460 bytes cross the router, which fragments them (both
ways): IPv4 fragments made by the kernel, as a router in a path with a small MTU makes them.

The client connects to port 80, sends 3000 bytes, reads a 5000-byte response and closes. tcpdump
runs on the server's veth end twice at once:

* tcp_fragments.pcap: every packet (`ip`): full datagrams come in fragments;
* tcp_fragments_port80.pcap: `tcp port 80`, as a port filter captures: only the first fragments
  (the others carry no TCP header, so no port).

Offloads stay on: the packets that are not fragmented carry checksums left to the offload, the
fragmented segments real ones (the router computes them before fragmenting). Everything is bounded
in time, and the namespaces are removed in a finally block.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAMESPACES = ("tff-c", "tff-r", "tff-s")

SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.2.2", 80)); s.listen(); s.settimeout(10)
c, _ = s.accept(); c.settimeout(10)
got = 0
while got < 3000:
    got += len(c.recv(65536))
c.sendall(b"r" * 5000)
while c.recv(65536):
    pass
c.close()
"""
CLIENT = """
import socket
c = socket.socket(); c.settimeout(10)
c.bind(("10.77.1.1", 40080))
c.connect(("10.77.2.2", 80))
c.sendall(b"q" * 3000)
got = 0
while got < 5000:
    got += len(c.recv(65536))
c.close()
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def ns(name: str, *args: str) -> None:
    sh("ip", "netns", "exec", name, *args)


def cleanup() -> None:
    for name in NAMESPACES:
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)


def main() -> int:
    if os.geteuid() != 0:
        print("make_fragments.py needs root (network namespaces)", file=sys.stderr)
        return 1
    cleanup()
    full = os.path.join(HERE, "tcp_fragments.pcap")
    port80 = os.path.join(HERE, "tcp_fragments_port80.pcap")
    try:
        for name in NAMESPACES:
            sh("ip", "netns", "add", name)
            ns(name, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "tff-c0", "netns", "tff-c", "type", "veth", "peer", "name", "tff-r0", "netns", "tff-r")
        sh("ip", "link", "add", "tff-r1", "netns", "tff-r", "type", "veth", "peer", "name", "tff-s0", "netns", "tff-s")
        ns("tff-c", "ip", "addr", "add", "10.77.1.1/24", "dev", "tff-c0")
        ns("tff-r", "ip", "addr", "add", "10.77.1.254/24", "dev", "tff-r0")
        ns("tff-r", "ip", "addr", "add", "10.77.2.254/24", "dev", "tff-r1")
        ns("tff-s", "ip", "addr", "add", "10.77.2.2/24", "dev", "tff-s0")
        ns("tff-r", "ip", "link", "set", "tff-r1", "mtu", "576")  # the small link: the router fragments
        for name, dev in (("tff-c", "tff-c0"), ("tff-r", "tff-r0"), ("tff-r", "tff-r1"), ("tff-s", "tff-s0")):
            ns(name, "ip", "link", "set", dev, "up")
        ns("tff-r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # a locked route MTU: TCP leaves DF clear (and does no path MTU discovery)
        ns("tff-c", "ip", "route", "add", "10.77.2.0/24", "via", "10.77.1.254", "mtu", "lock", "1500")
        ns("tff-s", "ip", "route", "add", "10.77.1.0/24", "via", "10.77.2.254", "mtu", "lock", "1500")
        dumps = [
            subprocess.Popen(
                ["ip", "netns", "exec", "tff-s", "tcpdump", "-U", "-n", "-s", "0", "-i", "tff-s0", "-w", path, *flt],
                stderr=subprocess.DEVNULL,
            )
            for path, flt in ((full, ["ip"]), (port80, ["tcp", "port", "80"]))
        ]
        time.sleep(1.5)
        server = subprocess.Popen(["ip", "netns", "exec", "tff-s", sys.executable, "-c", SERVER])
        time.sleep(0.5)
        ns("tff-c", sys.executable, "-c", CLIENT)
        server.wait(timeout=15)
        time.sleep(1.0)
        for dump in dumps:
            dump.terminate()
            dump.wait(timeout=10)
    finally:
        cleanup()
    for path in (full, port80):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
