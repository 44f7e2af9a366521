#!/usr/bin/env python3
"""Write the crafted sample captures (no root needed, needs dpkt).

    python sample_pcaps/make_crafted.py [--only NAME[,NAME...]]

These show behaviour a kernel will not produce on demand (spoofed floods,
wrong handshake acknowledgments, data after close).  Frames are Ethernet II /
IPv4 (DF, TTL 64) / TCP with Linux-like options (MSS 1460, SACK_PERM,
timestamps, window scale 7 on SYNs; timestamps on every other segment),
realistic windows and random ISNs from a seeded RNG, and correct IP and TCP
checksums (computed by dpkt).  Output is reproducible byte for byte.

Added for the detector tests (tests/test_detectors.py):

* syn_burst_legit.pcap -- 300 complete connections 10.99.0.1:53000..53299 ->
  10.99.0.2:80 started within 1 s (handshake, HTTP GET / 64-byte response,
  client FIN first, 10 packets each; all SF, clients end in TIME_WAIT).  A
  legitimate burst: the SYN-flood detector must stay silent.
* close_wait_leak.pcap -- 30 connections 10.99.0.1:53400..53429 ->
  10.99.0.2:8080, one every 2 s from t=0 to t=58 s: handshake, request /
  100-byte response, client FIN, the server ACKs it 40 ms later and never
  sends its FIN (server CLOSE_WAIT, client FIN_WAIT_2, Zeek S2); plus 14
  healthy connections 10.99.0.1:53500..53513 (client closes first, SF) at
  t=1, 11, ..., 131 s, so the capture runs past the 60 s CLOSE_WAIT
  threshold for every leaked socket.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import struct
import sys
from collections.abc import Callable

import dpkt

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1_700_000_000.0  # capture start (2023-11-14T22:13:20Z)

MAC_CLI = bytes.fromhex("02000a630001")
MAC_SRV = bytes.fromhex("02000a630002")
MAC_GW = bytes.fromhex("02000a6300fe")  # router in front of the server
CLI, SRV = "10.99.0.1", "10.99.0.2"

F = dpkt.tcp
SYN, ACK, FIN, RST, PSH = F.TH_SYN, F.TH_ACK, F.TH_FIN, F.TH_RST, F.TH_PUSH


class Writer:
    def __init__(self, name: str) -> None:
        self.path = os.path.join(HERE, name)
        self.frames: list[tuple[float, bytes]] = []

    def add(self, ts: float, frame: bytes) -> None:
        self.frames.append((ts, frame))

    def close(self) -> None:
        self.frames.sort(key=lambda x: x[0])
        with open(self.path, "wb") as f:
            w = dpkt.pcap.Writer(f, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB)
            for ts, fr in self.frames:
                w.writepkt(fr, ts=ts)
        print("wrote %s (%d packets, %d bytes)" % (self.path, len(self.frames), os.path.getsize(self.path)))


def frame(
    src_mac: bytes,
    dst_mac: bytes,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    win: int,
    opts: bytes = b"",
    data: bytes = b"",
    ipid: int = 0,
    ttl: int = 64,
    df: bool = True,
) -> bytes:
    tcp = dpkt.tcp.TCP(
        sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, flags=flags, win=win, opts=opts, data=data
    )
    tcp.off = (20 + len(opts)) // 4
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src),
        dst=socket.inet_aton(dst),
        p=dpkt.ip.IP_PROTO_TCP,
        ttl=ttl,
        id=ipid & 0xFFFF,
        df=1 if df else 0,
        data=tcp,
    )
    ip.len = 20 + len(tcp)
    eth = dpkt.ethernet.Ethernet(src=src_mac, dst=dst_mac, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    return bytes(eth)


def syn_opts(tsval: int, tsecr: int = 0, ws: int = 7) -> bytes:
    # Linux order: MSS, SACK_PERM, TS, NOP, WS
    return (
        struct.pack("!BBH", 2, 4, 1460)
        + b"\x04\x02"
        + struct.pack("!BBII", 8, 10, tsval, tsecr)
        + b"\x01"
        + struct.pack("!BBB", 3, 3, ws)
    )


def ts_opts(tsval: int, tsecr: int) -> bytes:
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, tsecr)


class Endpoint:
    def __init__(self, rng: random.Random, ip: str, port: int, mac: bytes) -> None:
        self.ip, self.port, self.mac = ip, port, mac
        self.isn = rng.getrandbits(32)
        self.nxt = self.isn  # next sequence number to send
        self.ts_base = rng.getrandbits(31)
        self.ipid = rng.getrandbits(16)
        self.last_ts_seen = 0


class Conn:
    """Emit the packets of one TCP conversation with consistent numbers."""

    def __init__(
        self, w: Writer, rng: random.Random, cli: Endpoint, srv: Endpoint, t: float, rtt: float = 0.0004
    ) -> None:
        self.w, self.rng, self.c, self.s, self.t, self.rtt = w, rng, cli, srv, t, rtt

    def _ts(self, ep: Endpoint) -> int:
        return (ep.ts_base + int((self.t - T0) * 1000)) & 0xFFFFFFFF

    def send(
        self,
        frm: Endpoint,
        to: Endpoint,
        flags: int,
        data: bytes = b"",
        seq: int | None = None,
        ack: int | None = None,
        win: int = 502,
        dt: float | None = None,
        opts: bytes | None = None,
        advance: bool = True,
    ) -> None:
        self.t += self.rtt / 2 if dt is None else dt
        if seq is None:
            seq = frm.nxt
        if ack is None:
            ack = to.nxt if flags & ACK else 0
        tsv = self._ts(frm)
        if opts is None:
            if flags & SYN:
                opts = syn_opts(tsv, frm.last_ts_seen if flags & ACK else 0)
            elif flags & RST:
                opts = b""
            else:
                opts = ts_opts(tsv, frm.last_ts_seen)
        if flags & SYN and win == 502:
            win = 64240 if not flags & ACK else 65160
        mac_src, mac_dst = frm.mac, to.mac
        fr = frame(mac_src, mac_dst, frm.ip, to.ip, frm.port, to.port, seq, ack, flags, win, opts, data, ipid=frm.ipid)
        frm.ipid += 1
        to.last_ts_seen = tsv
        self.w.add(self.t, fr)
        if advance and seq == frm.nxt:
            frm.nxt = (frm.nxt + len(data) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & 0xFFFFFFFF

    # common sequences -------------------------------------------------------
    def handshake(self) -> None:
        c, s = self.c, self.s
        self.send(c, s, SYN, dt=0)
        self.send(s, c, SYN | ACK)
        self.send(c, s, ACK)

    def exchange(self, req: bytes, resp: bytes) -> None:
        c, s = self.c, self.s
        self.send(c, s, PSH | ACK, req, dt=0.0001)
        self.send(s, c, ACK)
        off = 0
        while off < len(resp):
            chunk = resp[off : off + 1448]
            off += len(chunk)
            self.send(s, c, (PSH | ACK) if off >= len(resp) else ACK, chunk, dt=0.0003 if off <= 1448 else 0.00002)
        self.send(c, s, ACK)

    def client_close(self) -> None:
        c, s = self.c, self.s
        self.send(c, s, FIN | ACK, dt=0.0001)
        self.send(s, c, FIN | ACK)
        self.send(c, s, ACK)


def http_req(path: str = "/") -> bytes:
    return ("GET %s HTTP/1.1\r\nHost: 10.99.0.2\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n" % path).encode()


def http_resp(n: int) -> bytes:
    body = b"x" * n
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % n) + body


# ---------------------------------------------------------------------------


def syn_flood() -> None:
    rng = random.Random(0x5F1D)
    w = Writer("syn_flood.pcap")
    n_syn = 3000
    for i in range(n_syn):
        t = T0 + 0.05 + i * (2.0 / n_syn) + rng.uniform(0, 0.0005)
        src = "198.18.%d.%d" % (rng.randrange(0, 256), rng.randrange(1, 255))  # RFC 2544 range
        sport = rng.randrange(1024, 65536)
        isn = rng.getrandbits(32)
        ipid = rng.getrandbits(16)
        # typical flood tool SYN: no options, fixed window, no DF
        w.add(
            t,
            frame(
                MAC_GW,
                MAC_SRV,
                src,
                SRV,
                sport,
                80,
                isn,
                0,
                SYN,
                1024,
                ipid=ipid,
                ttl=rng.choice((52, 57, 243)),
                df=False,
            ),
        )
        if i % 4 == 0:  # server (syncookies, backlog full) answers one in four
            s_isn = rng.getrandbits(32)
            # the SYN had no options, so the SYN-ACK carries only MSS
            w.add(
                t + 0.00003,
                frame(
                    MAC_SRV,
                    MAC_GW,
                    SRV,
                    src,
                    80,
                    sport,
                    s_isn,
                    isn + 1,
                    SYN | ACK,
                    65160,
                    struct.pack("!BBH", 2, 4, 1460),
                    ipid=0,
                ),
            )
    # ~20 complete connections from a legitimate client, interleaved
    for k in range(20):
        t = T0 + 0.1 * k + 0.02
        c = Endpoint(rng, CLI, 50000 + k, MAC_CLI)
        s = Endpoint(rng, SRV, 80, MAC_SRV)
        conn = Conn(w, rng, c, s, t)
        conn.handshake()
        conn.exchange(http_req("/item/%d" % k), http_resp(200 + 50 * k))
        conn.client_close()
    w.close()


def bad_handshake_ack() -> None:
    rng = random.Random(0xBAD)
    w = Writer("bad_handshake_ack.pcap")
    # 1) SYN-ACK acknowledges ISN+5 instead of ISN+1 -> client RST (seq = SEG.ACK)
    c = Endpoint(rng, CLI, 51001, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    k = Conn(w, rng, c, s, T0)
    k.send(c, s, SYN, dt=0)
    k.send(s, c, SYN | ACK, ack=c.isn + 5)
    k.send(c, s, RST, seq=c.isn + 5, ack=0, win=0, advance=False)
    # 2) third ACK acknowledges server ISN+5 -> server RST (seq = SEG.ACK)
    c = Endpoint(rng, CLI, 51002, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    k = Conn(w, rng, c, s, T0 + 0.5)
    k.send(c, s, SYN, dt=0)
    k.send(s, c, SYN | ACK)
    k.send(c, s, ACK, ack=s.isn + 5)
    k.send(s, c, RST, seq=s.isn + 5, ack=0, win=0, advance=False)
    w.close()


def data_after_close() -> None:
    rng = random.Random(0xDA7A)
    w = Writer("data_after_close.pcap")
    # 1) client sends payload after its own FIN (seq beyond the FIN)
    c = Endpoint(rng, CLI, 51101, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    k = Conn(w, rng, c, s, T0)
    k.handshake()
    k.exchange(b"HELLO 20 bytes req\r\n", b"R" * 99 + b"\n")
    k.send(c, s, FIN | ACK, dt=0.0001)  # client FIN, seq = X (rel 21)
    k.send(s, c, ACK)  # server ACKs the FIN (ack X+1)
    k.send(c, s, PSH | ACK, b"D" * 30, dt=0.1)  # 30 bytes at seq X+1: after the FIN
    k.send(s, c, ACK, ack=c.nxt - 30)  # server ignores it: duplicate ACK of the FIN
    k.send(s, c, FIN | ACK, dt=0.05, ack=c.nxt - 30)  # server closes, still acking only the FIN
    k.send(c, s, ACK, ack=s.nxt)
    # 2) data arriving after an RST: server aborts, client still sends
    c = Endpoint(rng, CLI, 51102, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    k = Conn(w, rng, c, s, T0 + 0.5)
    k.handshake()
    k.exchange(b"HELLO 20 bytes req\r\n", b"R" * 99 + b"\n")
    k.send(s, c, RST | ACK, dt=0.05, win=0)  # server aborts (RST+ACK)
    k.send(c, s, PSH | ACK, b"E" * 50, dt=0.1)  # 50 bytes after the RST
    seg_ack = s.nxt
    k.send(s, c, RST, seq=seg_ack, ack=0, win=0, advance=False)  # no socket: RST seq=SEG.ACK
    w.close()


def handshake_reset() -> None:
    rng = random.Random(0x5EED)
    w = Writer("handshake_reset.pcap")
    # SYNs with the spoofed source 10.99.0.1 reach the server (seen at the
    # server: they arrive via the router MAC and with a foreign TTL/IP-ID);
    # the server answers SYN-ACK to the real 10.99.0.1, whose stack has no
    # such connection and answers RST (seq = SEG.ACK, no ACK flag).
    for i in range(3):
        c = Endpoint(rng, CLI, 52001 + i, MAC_GW)
        s = Endpoint(rng, SRV, 8080, MAC_SRV)
        k = Conn(w, rng, c, s, T0 + 0.3 * i)
        t0 = k.t
        w.add(
            t0,
            frame(
                MAC_GW, MAC_SRV, CLI, SRV, c.port, 8080, c.isn, 0, SYN, 1024, ipid=rng.getrandbits(16), ttl=48, df=False
            ),
        )
        c.nxt = c.isn + 1
        c.mac = MAC_CLI
        k.send(s, c, SYN | ACK, dt=0.00003, opts=struct.pack("!BBH", 2, 4, 1460))
        k.send(c, s, RST, seq=c.isn + 1, ack=0, win=0, advance=False, dt=0.0002)
    w.close()


def syn_burst_legit() -> None:
    """300 complete connections within 1 s from one client: a burst the SYN-flood detector must ignore."""
    rng = random.Random(0xB0257)
    w = Writer("syn_burst_legit.pcap")
    for k in range(300):
        t = T0 + k / 300.0 + rng.uniform(0, 0.0005)
        c = Endpoint(rng, CLI, 53000 + k, MAC_CLI)
        s = Endpoint(rng, SRV, 80, MAC_SRV)
        conn = Conn(w, rng, c, s, t)
        conn.handshake()
        conn.exchange(http_req("/burst/%d" % k), http_resp(64))
        conn.client_close()
    w.close()


def close_wait_leak() -> None:
    """A server application that never closes: 30 sockets left in CLOSE_WAIT, healthy traffic until t=130 s."""
    rng = random.Random(0xC105E)
    w = Writer("close_wait_leak.pcap")
    for k in range(30):  # t = 0, 2, ..., 58 s
        c = Endpoint(rng, CLI, 53400 + k, MAC_CLI)
        s = Endpoint(rng, SRV, 8080, MAC_SRV)
        conn = Conn(w, rng, c, s, T0 + 2.0 * k)
        conn.handshake()
        conn.exchange(http_req("/leak/%d" % k), http_resp(100))
        conn.send(c, s, FIN | ACK, dt=0.0001)  # client closes
        conn.send(s, c, ACK, dt=0.04)  # delayed ACK of the FIN; the server never sends its FIN
    for k in range(14):  # healthy connections at t = 1, 11, ..., 131 s
        c = Endpoint(rng, CLI, 53500 + k, MAC_CLI)
        s = Endpoint(rng, SRV, 8080, MAC_SRV)
        conn = Conn(w, rng, c, s, T0 + 1.0 + 10.0 * k)
        conn.handshake()
        conn.exchange(http_req("/health"), http_resp(2))
        conn.client_close()
    w.close()


def fin_repeats() -> None:
    """FINs sent again that are not a lost ACK: a crossing close's FIN|ACK re-sent to acknowledge the
    peer's FIN, a FIN captured twice, a scan probe (FIN/PSH/URG, no ACK) repeated."""
    rng = random.Random(0xF1F1)
    w = Writer("fin_repeats.pcap")
    # 1) simultaneous close as some stacks do it (seen on macOS in Zeek's ssh traces): the FINs cross, then
    #    each side sends its FIN|ACK again, now acknowledging the other's FIN (57 us and 16 ms later)
    c = Endpoint(rng, CLI, 47001, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    k = Conn(w, rng, c, s, T0)
    k.handshake()
    k.exchange(b"HELLO 20 bytes req\r\n", b"R" * 99 + b"\n")
    c_fin, s_fin = c.nxt, s.nxt
    k.send(c, s, FIN | ACK, dt=0.1)  # client FIN, ack = server's data
    k.send(s, c, FIN | ACK, ack=c_fin, dt=0.00001)  # server FIN, not acking the client's: crossed
    k.send(c, s, FIN | ACK, seq=c_fin, ack=s_fin + 1, dt=0.000057, advance=False)  # again, acking it
    k.send(s, c, FIN | ACK, seq=s_fin, ack=c_fin + 1, dt=0.016, advance=False)  # the server too
    k.send(c, s, ACK, ack=s_fin + 1, dt=0.0002)
    # 2) a close whose client FIN is in the capture twice, 1 us apart (the same frame: same IP ID)
    c = Endpoint(rng, CLI, 47002, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    k = Conn(w, rng, c, s, T0 + 0.5)
    k.handshake()
    k.exchange(b"HELLO 20 bytes req\r\n", b"R" * 99 + b"\n")
    k.send(c, s, FIN | ACK, dt=0.0001)
    t_fin, fin_frame = w.frames[-1]
    w.add(t_fin + 0.000001, fin_frame)
    k.send(s, c, FIN | ACK)
    k.send(c, s, ACK)
    # 3) a scan probe (FIN/PSH/URG, no ACK: nmap -sX) to the open port, sent again 0.5 s later; unanswered
    isn = rng.getrandbits(32)
    for i in range(2):
        w.add(
            T0 + 1.0 + 0.5 * i,
            frame(
                MAC_GW,
                MAC_SRV,
                CLI,
                SRV,
                47003,
                8080,
                isn,
                0,
                FIN | PSH | F.TH_URG,
                1024,
                ipid=rng.getrandbits(16),
                ttl=44,
                df=False,
            ),
        )
    w.close()


def retransmit_lookalikes() -> None:
    """Segments that look like retransmissions and are not (reordered, a keepalive with one garbage byte),
    and one that is (the server sends data the client had acknowledged already)."""
    rng = random.Random(0x0DD5)
    w = Writer("retransmit_lookalikes.pcap")
    c = Endpoint(rng, CLI, 47011, MAC_CLI)
    s = Endpoint(rng, SRV, 8080, MAC_SRV)
    k = Conn(w, rng, c, s, T0, rtt=0.002)
    k.handshake()
    k.send(c, s, PSH | ACK, b"GET /three-segments\r\n", dt=0.0001)
    base = s.nxt
    segs = [b"A" * 1448, b"B" * 1448, b"C" * 500]
    # the server's three segments reach the capture point in the order 2, 3, 1 (within 60 us)
    k.send(s, c, ACK, segs[1], seq=base + 1448, dt=0.001, advance=False)
    k.send(s, c, PSH | ACK, segs[2], seq=base + 2896, dt=0.00003, advance=False)
    k.send(s, c, ACK, segs[0], seq=base, dt=0.00003, advance=False)
    s.nxt = base + 3396
    k.send(c, s, ACK)
    # two seconds of silence, then a keepalive probe carrying one garbage byte (seq = SND.NXT - 1), answered
    k.send(c, s, ACK, b"\x00", seq=c.nxt - 1, dt=2.0, advance=False)
    k.send(s, c, ACK)
    # the server sends its last segment again although the client acknowledged it: a (spurious) retransmission
    k.send(s, c, PSH | ACK, segs[2], seq=base + 2896, dt=0.3, advance=False)
    k.send(c, s, ACK)
    k.client_close()
    w.close()


CRAFTED = {
    "syn_flood": syn_flood,
    "bad_handshake_ack": bad_handshake_ack,
    "data_after_close": data_after_close,
    "handshake_reset": handshake_reset,
    "syn_burst_legit": syn_burst_legit,
    "close_wait_leak": close_wait_leak,
    "fin_repeats": fin_repeats,
    "retransmit_lookalikes": retransmit_lookalikes,
}


def make_chosen(makers: dict[str, Callable[[], None]], description: str | None) -> int:
    """A crafting script's command line: `--only a,b` makes those captures, none makes them all."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated names (default: all)")
    a = ap.parse_args()
    for n in a.only.split(",") if a.only else makers:
        n = n.removesuffix(".pcap")
        if n not in makers:
            print("unknown: %s" % n, file=sys.stderr)
            return 1
        makers[n]()
    return 0


def main() -> int:
    return make_chosen(CRAFTED, __doc__)


if __name__ == "__main__":
    sys.exit(main())
