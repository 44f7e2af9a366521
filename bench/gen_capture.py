#!/usr/bin/env python3
"""Generate a large, reproducible classic pcap of realistic-looking TCP traffic.

Benchmark input for tcpflow-audit (see bench/README.md).  Ethernet / IPv4 / TCP,
microsecond timestamps, valid IP and TCP checksums (computed over the full,
untruncated segment, as on the wire), snaplen-truncated records (``--snaplen``,
default 96) whose IP total length and record wire length are the real values.

Traffic mix (the vantage point is next to the servers, e.g. a capture on a
load balancer, so server packets are seen when sent and client packets one
half round trip after the client sent them):

* short HTTP-like connections (most of the connections, ~60 % of packets):
  3-way handshake with kernel-like SYN options (MSS, SACK_PERM, TS, NOP, WS),
  1 request (~300 B, 80-900) or 2-3 on keep-alive connections, responses of
  1-20 KB sent as MSS-sized (1448 B) segments with slow start (initial cwnd
  10) and ack clocking, the client acking every 2nd segment (odd last segment:
  40 ms delayed ACK), the server piggybacking its ACK on the response unless it
  takes more than 40 ms; close: client FIN at once (~50 %), client FIN after
  idle (~20 %), server FIN after keep-alive timeout (~23 %), RST aborts (~4 %:
  client RST mid-response or after the response, or server RST), refused
  SYNs answered by RST/ACK (~3 %); 0.5 % of data segments are lost past the
  capture point and retransmitted (fast retransmit after 3 dup ACKs, else RTO).
* bulk transfers (~40 % of packets): 0.5-64 MB downloads (85 %) or uploads,
  1448-byte segments, ACK every other segment, slow start then rate/window
  limited at 20 Mbit/s - 1 Gbit/s, the same loss/retransmission model.
* RTTs log-normal (median ~35 ms, 0.3-400 ms), random ISNs, Linux-like
  ephemeral ports (32768-60999), windows, TTLs, TCP timestamps and IP IDs.
  Connections arrive as a Poisson process sized so that ~--concurrency
  connections are live at once.  The capture is cut at exactly --packets
  packets like a real capture, so connections live at the end are truncated.

``--syn-flood N`` writes instead N SYNs from spoofed random sources to one
server ip:port, 2 % of them answered by a SYN-ACK (never acknowledged), at
``--flood-rate`` SYNs a second (Poisson arrivals). ``--ack-flood N`` writes N
lone ACKs (no handshake: each picked up midstream) on distinct 4-tuples from
spoofed sources to that server, at the same rate.

Speed: per-packet events are produced by a small Python simulation into flat
arrays, and the records are built with numpy (no per-packet objects).
"""

from __future__ import annotations

import argparse
import array
import heapq
import math
import random
import sys
import time

import numpy as np

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1448  # 1460 - 12 bytes of TCP timestamps option
OPT_NONE, OPT_TS, OPT_SYN = 0, 1, 2
K_NONE, K_REQ, K_RESP, K_BODY, K_BULK = 0, 1, 2, 3, 4
BASE_EPOCH = 1_700_000_000
NFIELDS = 9  # t, conn, dir, flags, seq_rel, ack_rel, len, payload kind, option kind
INF = float("inf")


class Gen:
    """Per-connection traffic simulation writing packet events into flat arrays."""

    def __init__(self, seed: int, concurrency: int, loss: float):
        self.r = random.Random(seed)
        self.ev = array.array("d")
        self.loss = loss
        self.concurrency = concurrency
        # per-connection attributes
        self.c_cip, self.c_cport, self.c_sip, self.c_sport = [], [], [], []
        self.c_isn_c, self.c_isn_s, self.c_rtt, self.c_start, self.c_end = [], [], [], [], []
        self.c_win_c, self.c_win_s, self.c_ttl_c, self.c_syn_win = [], [], [], []
        self.c_kind = []
        self.counts = dict(
            short=0,
            bulk=0,
            refused=0,
            rst_abort=0,
            fin_client=0,
            fin_client_idle=0,
            fin_server=0,
            retransmissions=0,
            requests=0,
        )
        r = self.r
        self.clients = [(10 << 24) | r.getrandbits(24) for _ in range(30000)]
        self.servers = [(192 << 24) | (168 << 16) | (100 << 8) | i for i in range(10, 74)]
        self.used = set()
        self.next_port = {}

    # ------------------------------------------------------------------ helpers
    def new_conn(self, t0: float, kind: str, sport: int, rtt: float) -> int:
        r = self.r
        while True:
            cip = r.choice(self.clients)
            p = self.next_port.get(cip)
            if p is None:
                p = r.randint(32768, 60999)
            p = p + 1 + (r.getrandbits(3) if r.random() < 0.3 else 0)
            if p > 60999:
                p = 32768 + (p - 61000)
            self.next_port[cip] = p
            sip = self.servers[r.getrandbits(6)]
            key = (cip, p, sip, sport)
            if key not in self.used:
                self.used.add(key)
                break
        cid = len(self.c_cip)
        self.c_cip.append(cip)
        self.c_cport.append(p)
        self.c_sip.append(sip)
        self.c_sport.append(sport)
        self.c_isn_c.append(r.getrandbits(32))
        self.c_isn_s.append(r.getrandbits(32))
        self.c_rtt.append(rtt)
        self.c_start.append(t0)
        self.c_end.append(t0)
        self.c_win_c.append(r.choice((501, 502, 509, 1024, 2048, 4096)))
        self.c_win_s.append(r.choice((501, 502, 509, 510, 227, 235)))
        self.c_ttl_c.append(r.randint(44, 63))
        self.c_syn_win.append(r.choice((64240, 64240, 65160, 29200)))
        self.c_kind.append(kind)
        return cid

    def rtt(self) -> float:
        return min(0.4, max(0.0003, self.r.lognormvariate(math.log(0.035), 0.9)))

    def emit(self, t, cid, d, flags, seq, ack, ln=0, kind=K_NONE, opt=OPT_TS):
        self.ev.extend((t, cid, d, flags, seq, ack, ln, kind, opt))

    # -------------------------------------------------------------- data phase
    def transfer(
        self,
        cid,
        t_start,
        nbytes,
        rtt,
        ser,
        local,
        sdir,
        s_off,
        r_off,
        kind0,
        kindn,
        cwnd,
        cwnd_cap,
        last_delay,
        rcv_close=INF,
    ):
        """Send nbytes from side sdir to the other, starting at absolute time t_start.

        local: the sender is at the capture point (server), else the receiver is.
        Returns (abs time the receiver got the last byte, abs time the sender saw the
        last ACK, bytes the receiver acknowledged before rcv_close).
        """
        r = self.r
        ev = self.ev
        loss = self.loss
        h = rtt * 0.5
        od = 0.0 if local else h  # observation delay of the sender's packets
        oa = h if local else 0.0  # observation delay of the receiver's packets
        rdir = 1 - sdir
        nseg = (nbytes + MSS - 1) // MSS
        heap = []  # (abs time ack reaches sender, acked segments, is_dup)
        sent = acked = 0
        now = tfree = t_start
        hole = -1
        rcv_hi = 0  # segments received (counting the hole once repaired)
        pend = 0
        dup = 0
        rto_at = INF
        ssthresh = 1 << 30
        cwnd = float(cwnd)
        rsts = 0
        recv_done = t_start
        rcv_bytes_close = 0
        stop_at = rcv_close + h
        delta = 0.00003
        seq_lastack = 0

        def send_ack(arr, cum, dupack):
            nonlocal seq_lastack
            ab = cum * MSS
            if ab > nbytes:
                ab = nbytes
            ev.extend((arr + delta + oa, cid, rdir, ACK, r_off, s_off + ab, 0, 0, OPT_TS))
            heapq.heappush(heap, (arr + delta + h, cum, dupack))

        while True:
            while sent < nseg and sent - acked < cwnd:
                s = now if now > tfree else tfree
                if s >= stop_at:
                    break
                tfree = s + ser
                off = sent * MSS
                ln = nbytes - off
                if ln > MSS:
                    ln = MSS
                last = sent == nseg - 1
                ev.extend(
                    (
                        s + od,
                        cid,
                        sdir,
                        (ACK | PSH) if last else ACK,
                        s_off + off,
                        r_off,
                        ln,
                        kind0 if sent == 0 else kindn,
                        OPT_TS,
                    )
                )
                arr = s + h
                if hole < 0 and loss and r.random() < loss:
                    hole = sent
                    rto_at = s + rtt + 0.2
                    self.counts["retransmissions"] += 1
                elif arr > rcv_close:
                    if rsts < 2:
                        ev.extend((arr + delta + oa, cid, rdir, RST, r_off, 0, 0, 0, OPT_NONE))
                        rsts += 1
                else:
                    recv_done = arr
                    if hole >= 0:  # out of order behind a hole: immediate dup ack
                        send_ack(arr, hole, True)
                    else:
                        rcv_hi = sent + 1
                        pend += 1
                        if pend >= 2:
                            send_ack(arr, rcv_hi, False)
                            pend = 0
                        elif last and last_delay is not None:
                            send_ack(arr + last_delay, rcv_hi, False)
                            pend = 0
                        rcv_bytes_close = min(rcv_hi * MSS, nbytes)
                sent += 1
            # next event: an ACK reaching the sender, or the retransmission timer
            if heap and heap[0][0] <= rto_at:
                t, cum, isdup = heapq.heappop(heap)
                if t >= stop_at:
                    break
                now = t
                if cum > acked:
                    newly = cum - acked
                    acked = cum
                    dup = 0
                    if cwnd < ssthresh:
                        cwnd += newly
                    else:
                        cwnd += newly / cwnd
                    if cwnd > cwnd_cap:
                        cwnd = cwnd_cap
                elif isdup and hole >= 0:
                    dup += 1
                    if dup == 3:
                        self._retransmit(cid, hole, max(now, tfree), nbytes, s_off, r_off, sdir, od, kind0, kindn, nseg)
                        s = max(now, tfree)
                        tfree = s + ser
                        ssthresh = max(2.0, cwnd / 2)
                        cwnd = ssthresh
                        rto_at = INF
                        hole, rcv_hi = -1, sent
                        recv_done = s + h
                        send_ack(s + h, rcv_hi, False)
                        pend = 0
                        rcv_bytes_close = min(rcv_hi * MSS, nbytes)
                if acked >= nseg:
                    break
            elif rto_at < INF:
                s = max(rto_at, tfree)
                if s >= stop_at:
                    break
                self._retransmit(cid, hole, s, nbytes, s_off, r_off, sdir, od, kind0, kindn, nseg)
                now = s
                tfree = s + ser
                ssthresh = max(2.0, cwnd / 2)
                cwnd = 2.0
                rto_at = INF
                hole, rcv_hi = -1, sent
                recv_done = s + h
                send_ack(s + h, rcv_hi, False)
                pend = 0
                rcv_bytes_close = min(rcv_hi * MSS, nbytes)
            else:
                break
        return recv_done, now, rcv_bytes_close

    def _retransmit(self, cid, seg, s, nbytes, s_off, r_off, sdir, od, kind0, kindn, nseg):
        off = seg * MSS
        ln = min(MSS, nbytes - off)
        self.ev.extend(
            (
                s + od,
                cid,
                sdir,
                (ACK | PSH) if seg == nseg - 1 else ACK,
                s_off + off,
                r_off,
                ln,
                kind0 if seg == 0 else kindn,
                OPT_TS,
            )
        )

    # ------------------------------------------------------------- connections
    def handshake(self, cid, t0, rtt):
        """SYN observed at t0; returns abs time the client can send (its ACK is emitted)."""
        h = rtt / 2
        self.emit(t0, cid, 0, SYN, 0, 0, opt=OPT_SYN)
        t_sa = t0 + 0.00002 + self.r.random() * 0.00005
        self.emit(t_sa, cid, 1, SYN | ACK, 0, 1, opt=OPT_SYN)
        t_c = t_sa + h  # client gets SYN-ACK
        self.emit(t_c + 0.00002 + h, cid, 0, ACK, 1, 1)
        return t_c + 0.00004

    def short_conn(self, t0):
        r = self.r
        rtt = self.rtt()
        h = rtt / 2
        sport = r.choices((80, 443, 8080), (6, 3, 1))[0]
        cid = self.new_conn(t0, "short", sport, rtt)
        self.counts["short"] += 1
        u = r.random()
        if u < 0.03:  # refused
            self.counts["refused"] += 1
            self.emit(t0, cid, 0, SYN, 0, 0, opt=OPT_SYN)
            self.emit(t0 + 0.00002, cid, 1, RST | ACK, 0, 1, opt=OPT_NONE)
            self.c_end[cid] = t0 + 0.00002
            return
        rate = r.choice((10e6, 50e6, 100e6, 100e6, 1e9, 1e9))
        ser = MSS * 8 / rate
        t_client = self.handshake(cid, t0, rtt)
        c_off = s_off = 1
        nreq = 1 if r.random() < 0.7 else r.randint(2, 3)
        close = r.random()
        if close < 0.04:
            ctype = r.choice(("rst_mid", "rst_after", "rst_server"))
        elif close < 0.54:
            ctype = "fin_client"
        elif close < 0.74:
            ctype = "fin_client_idle"
        else:
            ctype = "fin_server"
        for i in range(nreq):
            self.counts["requests"] += 1
            qlen = min(900, max(80, int(r.gauss(300, 90))))
            proc = min(0.3, max(0.0001, r.lognormvariate(math.log(0.004), 1.2)))
            delack = 0.04 if proc > 0.04 else None
            t_rd, _, _ = self.transfer(
                cid, t_client, qlen, rtt, ser, False, 0, c_off, s_off, K_REQ, K_REQ, 10, 10, delack
            )
            c_off += qlen
            rlen = min(20000, max(1000, int(r.lognormvariate(math.log(5000), 0.8))))
            t_resp = t_rd + proc
            last = i == nreq - 1
            rcv_close = INF
            ld = 0.04
            if last and ctype in ("fin_client", "rst_mid", "rst_after"):
                ld = None  # the FIN / RST follows at once and carries the ACK
            if last and ctype == "rst_mid" and rlen > 3 * MSS:
                rcv_close = t_resp + h + rtt * r.random() * 2
            t_cd, _, got = self.transfer(
                cid, t_resp, rlen, rtt, ser, True, 1, s_off, c_off, K_RESP, K_BODY, 10, 1000, ld, rcv_close
            )
            if rcv_close < INF:
                self.counts["rst_abort"] += 1
                self.emit(rcv_close + h, cid, 0, RST | ACK, c_off, s_off + got, opt=OPT_NONE)
                self.c_end[cid] = rcv_close + h
                return
            s_off += rlen
            t_client = t_cd + 0.0002 + (0.045 + r.random() * 0.5 if not last else 0)
        t = t_client
        self.counts[ctype if not ctype.startswith("rst") else "rst_abort"] += 1
        if ctype == "rst_mid" or ctype == "rst_after":
            self.emit(t + 0.001 + h, cid, 0, RST | ACK, c_off, s_off, opt=OPT_NONE)
            self.c_end[cid] = t + 0.001 + h
        elif ctype == "rst_server":
            ts = t + 1 + r.random() * 4 - h
            self.emit(ts, cid, 1, RST | ACK, s_off, c_off, opt=OPT_NONE)
            self.c_end[cid] = ts
        elif ctype.startswith("fin_client"):
            if ctype == "fin_client_idle":
                t += 0.05 + r.expovariate(1 / 1.5)
            tf = t + h
            self.emit(tf, cid, 0, FIN | ACK, c_off, s_off)
            tsf = tf + 0.00003
            self.emit(tsf, cid, 1, FIN | ACK, s_off, c_off + 1)
            self.emit(tsf + rtt + 0.00002, cid, 0, ACK, c_off + 1, s_off + 1)
            self.c_end[cid] = tsf + rtt
        else:  # server closes after the keep-alive timeout
            ts = t + h + r.choice((1.0, 2.0, 5.0, 5.0)) + r.random() * 0.01
            self.emit(ts, cid, 1, FIN | ACK, s_off, c_off)
            tc = ts + rtt + 0.00005
            if r.random() < 0.5:
                self.emit(tc, cid, 0, ACK, c_off, s_off + 1)
                tc += 0.00005 + r.random() * 0.001
            self.emit(tc, cid, 0, FIN | ACK, c_off, s_off + 1)
            self.emit(tc + 0.00003, cid, 1, ACK, s_off + 1, c_off + 1)
            self.c_end[cid] = tc

    def bulk_conn(self, t0):
        r = self.r
        rtt = self.rtt()
        h = rtt / 2
        sport = r.choice((443, 22, 873, 445, 8443))
        cid = self.new_conn(t0, "bulk", sport, rtt)
        self.counts["bulk"] += 1
        rate = r.choice((20e6, 50e6, 100e6, 200e6, 500e6, 1e9))
        ser = MSS * 8 / rate
        size = int(min(64e6, max(0.5e6, r.lognormvariate(math.log(4e6), 1.0))))
        t_client = self.handshake(cid, t0, rtt)
        cap = r.choice((1000, 2000, 3000))  # receive-window cap, segments
        if r.random() < 0.85:  # download: small request, big response
            t_rd, _, _ = self.transfer(cid, t_client, 200, rtt, ser, False, 0, 1, 1, K_REQ, K_REQ, 10, 10, None)
            t_cd, _, _ = self.transfer(
                cid, t_rd + 0.001, size, rtt, ser, True, 1, 1, 201, K_BULK, K_BULK, 10, cap, None
            )
            c_off, s_off = 201, 1 + size
            t = t_cd + 0.001
        else:  # upload, then a small reply
            t_rd, _, _ = self.transfer(cid, t_client, size, rtt, ser, False, 0, 1, 1, K_BULK, K_BULK, 10, cap, 0.04)
            t_cd, _, _ = self.transfer(
                cid, t_rd + 0.002, 120, rtt, ser, True, 1, 1, 1 + size, K_RESP, K_RESP, 10, 10, None
            )
            c_off, s_off = 1 + size, 121
            t = t_cd + 0.001
        tf = t + h
        self.emit(tf, cid, 0, FIN | ACK, c_off, s_off)
        self.emit(tf + 0.00003, cid, 1, FIN | ACK, s_off, c_off + 1)
        self.emit(tf + 0.00003 + rtt, cid, 0, ACK, c_off + 1, s_off + 1)
        self.c_end[cid] = tf + rtt

    def run(self, npackets: int):
        """Generate connections until the first npackets packets (by time) are all covered."""
        r = self.r
        mean_short_life = 1.45  # seconds, measured for this mix (idle closes dominate)
        lam = self.concurrency / mean_short_life
        bulk_p = 0.0015
        t = 0.0
        target = npackets
        while True:
            while len(self.ev) // NFIELDS < target:
                t += r.expovariate(lam)
                if r.random() < bulk_p:
                    self.bulk_conn(t)
                else:
                    self.short_conn(t)
            times = np.frombuffer(self.ev, dtype=np.float64)[0::NFIELDS].copy()
            if len(times) <= npackets:
                target = int(target * 1.05) + 1000
                continue
            t_n = np.partition(times, npackets - 1)[npackets - 1]
            if t >= t_n:
                return
            target = int(len(times) * 1.05) + 1000
            del times


# ------------------------------------------------------------------ payloads
def payload_patterns(rng: np.random.Generator) -> np.ndarray:
    req = (
        b"GET /api/v1/items/48151623?fields=name,price,stock&lang=en HTTP/1.1\r\n"
        b"Host: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) bench/1.0\r\n"
        b"Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\n"
        b"Connection: keep-alive\r\nCookie: session="
    )
    resp = (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\n\r\n"
    )
    n = 1600
    pats = np.zeros((5, n), dtype=np.uint8)
    for k, head in ((K_REQ, req), (K_RESP, resp)):
        body = head + b"x" * (n - len(head))
        pats[k] = np.frombuffer(body[:n], dtype=np.uint8)
    pats[K_BODY] = rng.integers(32, 127, n, dtype=np.uint8)
    pats[K_BULK] = rng.integers(0, 256, n, dtype=np.uint8)
    return pats


def prefix_word_sums(pats: np.ndarray) -> np.ndarray:
    """ps[k, L] = ones'-complement-friendly plain sum of the big-endian 16-bit words of pats[k, :L]."""
    k, n = pats.shape
    ps = np.zeros((k, n), dtype=np.int64)
    p = pats.astype(np.int64)
    even = np.zeros((k, n), dtype=np.int64)
    even[:, 0::2] = p[:, 0::2] << 8
    even[:, 1::2] = p[:, 1::2]
    ps[:, 1:] = np.cumsum(even, axis=1)[:, :-1]
    return ps


def fold(s: np.ndarray) -> np.ndarray:
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


# -------------------------------------------------------------- record build
ETH_IP = [
    ("edst", "u1", (6,)),
    ("esrc", "u1", (6,)),
    ("etype", ">u2"),
    ("vhl", "u1"),
    ("tos", "u1"),
    ("tlen", ">u2"),
    ("ipid", ">u2"),
    ("frag", ">u2"),
    ("ttl", "u1"),
    ("proto", "u1"),
    ("ipsum", ">u2"),
    ("src", ">u4"),
    ("dst", ">u4"),
    ("sport", ">u2"),
    ("dport", ">u2"),
    ("seq", ">u4"),
    ("ack", ">u4"),
    ("off", "u1"),
    ("flags", "u1"),
    ("win", ">u2"),
    ("tcpsum", ">u2"),
    ("urp", ">u2"),
]
TS_OPT = [("o_nop1", "u1"), ("o_nop2", "u1"), ("o_tsk", "u1"), ("o_tsl", "u1"), ("tsval", ">u4"), ("tsecr", ">u4")]
SYN_OPT = [
    ("o_mssk", "u1"),
    ("o_mssl", "u1"),
    ("o_mss", ">u2"),
    ("o_sackk", "u1"),
    ("o_sackl", "u1"),
    ("o_tsk", "u1"),
    ("o_tsl", "u1"),
    ("tsval", ">u4"),
    ("tsecr", ">u4"),
    ("o_nop", "u1"),
    ("o_wsk", "u1"),
    ("o_wsl", "u1"),
    ("o_ws", "u1"),
]
HDR_DT = {OPT_NONE: np.dtype(ETH_IP), OPT_TS: np.dtype(ETH_IP + TS_OPT), OPT_SYN: np.dtype(ETH_IP + SYN_OPT)}
OPT_LEN = {OPT_NONE: 0, OPT_TS: 12, OPT_SYN: 20}
MAC_SRV = np.array([0x00, 0x16, 0x3E, 0x5A, 0x10, 0x01], dtype=np.uint8)
MAC_GW = np.array([0x00, 0x1B, 0x21, 0x8C, 0x44, 0x02], dtype=np.uint8)


def write_records(f, fl: dict, snaplen: int, pats: np.ndarray, ps: np.ndarray, checksums: bool):
    """Write packets described by the field arrays in fl (already time-ordered)."""
    n = len(fl["ts_us"])
    W = 16 + min(snaplen, 14 + 20 + 40 + MSS)
    chunk = max(10000, (48 << 20) // W)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        m = b - a
        M = np.zeros((m, W), dtype=np.uint8)
        sl = {k: v[a:b] for k, v in fl.items()}
        ln = sl["len"].astype(np.int64)
        opt = sl["opt"]
        hl = 20 + np.select([opt == OPT_TS, opt == OPT_SYN], [12, 20], 0)
        wire = 14 + 20 + hl + ln
        cap = np.minimum(wire, snaplen)
        rh = M[:, :16].view("<u4")
        rh[:, 0] = sl["ts_us"] // 1_000_000
        rh[:, 1] = sl["ts_us"] % 1_000_000
        rh[:, 2] = cap
        rh[:, 3] = wire
        for ok, dt in HDR_DT.items():
            idx = np.nonzero(opt == ok)[0]
            if len(idx) == 0:
                continue
            hlen = dt.itemsize
            H = np.zeros(len(idx), dtype=dt)
            d = sl["dir"][idx]
            srv = d == 1
            H["edst"] = np.where(srv[:, None], MAC_GW, MAC_SRV)
            H["esrc"] = np.where(srv[:, None], MAC_SRV, MAC_GW)
            H["etype"] = 0x0800
            H["vhl"] = 0x45
            tcp_len = hlen - 34 + ln[idx]
            H["tlen"] = 20 + tcp_len
            H["ipid"] = sl["ipid"][idx]
            H["frag"] = 0x4000
            H["ttl"] = sl["ttl"][idx]
            H["proto"] = 6
            H["src"] = sl["src"][idx]
            H["dst"] = sl["dst"][idx]
            H["sport"] = sl["sport"][idx]
            H["dport"] = sl["dport"][idx]
            H["seq"] = sl["seq"][idx]
            H["ack"] = sl["ack"][idx]
            H["off"] = ((hlen - 34) // 4) << 4
            H["flags"] = sl["flags"][idx]
            H["win"] = sl["win"][idx]
            if ok != OPT_NONE:
                H["o_tsk"], H["o_tsl"] = 8, 10
                H["tsval"] = sl["tsval"][idx]
                H["tsecr"] = sl["tsecr"][idx]
            if ok == OPT_TS:
                H["o_nop1"] = H["o_nop2"] = 1
            elif ok == OPT_SYN:
                H["o_mssk"], H["o_mssl"], H["o_mss"] = 2, 4, 1460
                H["o_sackk"], H["o_sackl"] = 4, 2
                H["o_nop"], H["o_wsk"], H["o_wsl"], H["o_ws"] = 1, 3, 3, 7
            hb = H.view(np.uint8).reshape(len(idx), hlen)
            if checksums:
                w = hb[:, 14:34].astype(np.int64)
                s = (w[:, 0::2] << 8).sum(1) + w[:, 1::2].sum(1)
                H["ipsum"] = fold(s)
                th = hb[:, 34:].astype(np.int64)
                s = (th[:, 0::2] << 8).sum(1) + th[:, 1::2].sum(1)
                src = sl["src"][idx].astype(np.int64)
                dst = sl["dst"][idx].astype(np.int64)
                s += (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + tcp_len
                s += ps[sl["kind"][idx], ln[idx]]
                H["tcpsum"] = fold(s)
            ncopy = min(hlen, W - 16)
            M[idx, 16 : 16 + ncopy] = hb[:, :ncopy]
            room = W - 16 - hlen
            if room > 0:
                M[idx, 16 + hlen :] = pats[sl["kind"][idx], :room]
        mask = np.arange(W)[None, :] < (16 + cap)[:, None]
        f.write(M[mask].tobytes())


def pcap_header(snaplen: int) -> bytes:
    import struct

    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)


def build_normal(args) -> tuple[dict, dict, Gen]:
    t0 = time.perf_counter()
    g = Gen(args.seed, args.concurrency, args.loss)
    g.run(args.packets)
    t1 = time.perf_counter()
    ev = np.frombuffer(g.ev, dtype=np.float64).reshape(-1, NFIELDS)
    tus = np.round(ev[:, 0] * 1e6).astype(np.int64)
    order = np.lexsort((np.arange(len(tus)), tus))[: args.packets]
    ev = ev[order]
    tus = tus[order]
    cid = ev[:, 1].astype(np.int64)
    d = ev[:, 2].astype(np.int64)
    flags = ev[:, 3].astype(np.uint8)
    seq_rel = ev[:, 4].astype(np.int64)
    ack_rel = ev[:, 5].astype(np.int64)
    c = {
        k: np.array(getattr(g, "c_" + k))
        for k in (
            "cip",
            "cport",
            "sip",
            "sport",
            "isn_c",
            "isn_s",
            "rtt",
            "win_c",
            "win_s",
            "ttl_c",
            "syn_win",
            "start",
            "end",
        )
    }
    cli = d == 0
    isn_self = np.where(cli, c["isn_c"][cid], c["isn_s"][cid]).astype(np.int64)
    isn_peer = np.where(cli, c["isn_s"][cid], c["isn_c"][cid]).astype(np.int64)
    has_ack = (flags & ACK) != 0
    fl = {"ts_us": tus + BASE_EPOCH * 1_000_000}
    fl["dir"] = d
    fl["flags"] = flags
    fl["seq"] = ((isn_self + seq_rel) & 0xFFFFFFFF).astype(np.uint32)
    fl["ack"] = np.where(has_ack, (isn_peer + ack_rel) & 0xFFFFFFFF, 0).astype(np.uint32)
    fl["src"] = np.where(cli, c["cip"][cid], c["sip"][cid]).astype(np.uint32)
    fl["dst"] = np.where(cli, c["sip"][cid], c["cip"][cid]).astype(np.uint32)
    fl["sport"] = np.where(cli, c["cport"][cid], c["sport"][cid]).astype(np.uint16)
    fl["dport"] = np.where(cli, c["sport"][cid], c["cport"][cid]).astype(np.uint16)
    fl["len"] = ev[:, 6].astype(np.int64)
    fl["kind"] = ev[:, 7].astype(np.int64)
    fl["opt"] = ev[:, 8].astype(np.int64)
    is_syn = (flags & SYN) != 0
    is_rst = (flags & RST) != 0
    win = np.where(cli, c["win_c"][cid], c["win_s"][cid])
    win = np.where(is_syn, np.where(cli, c["syn_win"][cid], 65160), win)
    fl["win"] = np.where(is_rst & ~has_ack, 0, np.where(is_rst, 0, win)).astype(np.uint16)
    fl["ttl"] = np.where(cli, c["ttl_c"][cid], 64).astype(np.uint8)
    # IP ID: per-socket counter (random start per direction); RSTs from the stack use 0
    key = cid * 2 + d
    o = np.argsort(key, kind="stable")
    ks = key[o]
    first = np.r_[True, ks[1:] != ks[:-1]]
    grp_start = np.maximum.accumulate(np.where(first, np.arange(len(ks)), 0))
    rank = np.empty_like(key)
    rank[o] = np.arange(len(ks)) - grp_start
    rng = np.random.default_rng(args.seed)
    id_base = rng.integers(0, 65536, (len(c["cip"]), 2))
    fl["ipid"] = np.where(is_syn & ~has_ack | (is_rst & ~cli), 0, (id_base[cid, d] + rank) & 0xFFFF).astype(np.uint16)
    # TCP timestamps: host clock (ms) at the sender's send time; echo what it last saw
    ts_base = rng.integers(0, 1 << 31, (len(c["cip"]), 2))
    h = c["rtt"][cid] / 2
    t_abs = ev[:, 0] - np.where(cli, h, 0.0)
    t_peer = t_abs - h
    syn_t = c["start"][cid]
    fl["tsval"] = ((ts_base[cid, d] + (t_abs * 1000).astype(np.int64)) & 0xFFFFFFFF).astype(np.uint32)
    peer_clock = np.maximum(t_peer, np.where(cli, syn_t, syn_t - h))
    tsecr = (ts_base[cid, 1 - d] + (peer_clock * 1000).astype(np.int64)) & 0xFFFFFFFF
    fl["tsecr"] = np.where(is_syn & ~has_ack, 0, tsecr).astype(np.uint32)
    t2 = time.perf_counter()
    # concurrency: live connections at each connection start, among those that started
    starts = c["start"]
    ends = c["end"]
    span = tus[-1] / 1e6 if len(tus) else 0.0
    mask = starts <= span
    s_sorted = np.sort(starts[mask])
    e_sorted = np.sort(np.minimum(ends[mask], span))
    live = np.arange(1, len(s_sorted) + 1) - np.searchsorted(e_sorted, s_sorted, side="right")
    stats = {
        "sim_s": t1 - t0,
        "fields_s": t2 - t1,
        "span_s": span,
        "conns_in_capture": int(mask.sum()),
        "live_mean": float(live.mean()) if len(live) else 0,
        "live_max": int(live.max()) if len(live) else 0,
        "kinds": np.bincount(fl["kind"], minlength=5),
        "bulk_pkts": int(np.isin(cid, np.nonzero(np.array(g.c_kind) == "bulk")[0]).sum()),
    }
    return fl, stats, g


def build_flood(args) -> dict:
    ack_flood = bool(args.ack_flood)
    n = args.ack_flood or args.syn_flood
    rng = np.random.default_rng(args.seed)
    nsa = 0 if ack_flood else n // 50
    t_syn = np.cumsum(rng.exponential(1 / args.flood_rate, n))
    reply = np.zeros(n, dtype=bool)
    reply[rng.choice(n, nsa, replace=False)] = True
    src = rng.integers(1 << 24, 223 << 24, n).astype(np.uint32)
    sport = rng.integers(1024, 65536, n).astype(np.uint16)
    isn = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    sisn = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    ri = np.nonzero(reply)[0]
    m = n + len(ri)
    cli = np.r_[np.ones(n, bool), np.zeros(len(ri), bool)]
    t = np.r_[t_syn, t_syn[ri] + 0.00003]
    order = np.argsort(t, kind="stable")
    srv_ip = np.uint32((192 << 24) | (168 << 16) | (100 << 8) | 10)
    sp = np.r_[sport, sport[ri]]
    ip = np.r_[src, src[ri]]
    fl = {
        "ts_us": (np.round(t * 1e6).astype(np.int64) + BASE_EPOCH * 1_000_000),
        "dir": np.where(cli, 0, 1),
        "flags": np.where(cli, ACK if ack_flood else SYN, SYN | ACK).astype(np.uint8),
        "seq": np.r_[isn, sisn[ri]],
        "ack": np.r_[sisn if ack_flood else np.zeros(n, np.uint32), (isn[ri].astype(np.int64) + 1).astype(np.uint32)],
        "src": np.where(cli, ip, srv_ip).astype(np.uint32),
        "dst": np.where(cli, srv_ip, ip).astype(np.uint32),
        "sport": np.where(cli, sp, 80).astype(np.uint16),
        "dport": np.where(cli, 80, sp).astype(np.uint16),
        "len": np.zeros(m, np.int64),
        "kind": np.zeros(m, np.int64),
        "opt": np.full(m, OPT_NONE if ack_flood else OPT_SYN, np.int64),
        "win": np.where(cli, 64240, 65160).astype(np.uint16),
        "ttl": np.where(cli, rng.integers(40, 250, m), 64).astype(np.uint8),
        "ipid": np.where(cli, rng.integers(0, 65536, m), 0).astype(np.uint16),
        "tsval": rng.integers(0, 1 << 32, m, dtype=np.uint64).astype(np.uint32),
        "tsecr": np.zeros(m, np.uint32),
    }
    fl["tsecr"][~cli] = fl["tsval"][:n][ri]
    return {k: v[order] for k, v in fl.items()}, len(ri)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets to write (exact)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="output .pcap file")
    ap.add_argument(
        "--snaplen", type=int, default=96, help="bytes kept per record (wire length stays real); default 96"
    )
    ap.add_argument(
        "--concurrency", type=int, default=1000, help="target number of simultaneously live connections (default 1000)"
    )
    ap.add_argument(
        "--loss",
        type=float,
        default=0.005,
        help="probability a data segment is lost past the capture point (default 0.005)",
    )
    ap.add_argument("--no-checksums", action="store_true", help="leave IP/TCP checksums zero")
    ap.add_argument(
        "--syn-flood",
        type=int,
        default=0,
        metavar="N",
        help="instead write N spoofed SYNs to one server ip:port (2%% get a SYN-ACK)",
    )
    ap.add_argument(
        "--ack-flood",
        type=int,
        default=0,
        metavar="N",
        help="instead write N lone ACKs on distinct 4-tuples (picked up midstream) to one server ip:port",
    )
    ap.add_argument(
        "--flood-rate",
        type=float,
        default=100000.0,
        metavar="PER_S",
        help="packets a second of --syn-flood or --ack-flood (default 100000)",
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.snaplen < 54:
        ap.error("--snaplen must be at least 54")
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed + 7)
    pats = payload_patterns(rng)
    ps = prefix_word_sums(pats)
    if args.syn_flood or args.ack_flood:
        fl, nsa = build_flood(args)
        stats = None
    else:
        fl, stats, g = build_normal(args)
    t1 = time.perf_counter()
    with open(args.out, "wb") as f:
        f.write(pcap_header(args.snaplen))
        write_records(f, fl, args.snaplen, pats, ps, not args.no_checksums)
    t2 = time.perf_counter()
    n = len(fl["ts_us"])
    out = sys.stdout
    if args.syn_flood or args.ack_flood:
        what = f"{args.ack_flood} lone ACKs" if args.ack_flood else f"{args.syn_flood} spoofed SYNs"
        print(
            f"wrote {args.out}: {n} packets ({what} to 192.168.100.10:80, "
            f"{nsa} SYN-ACKs, {args.flood_rate:g}/s) in {t2 - t0:.1f} s",
            file=out,
        )
        return 0
    if not args.quiet:
        cnt = g.counts
        short, bulk = cnt["short"], cnt["bulk"]
        print(f"seed {args.seed}, snaplen {args.snaplen}, target concurrency {args.concurrency}", file=out)
        print(
            f"connections simulated: {short + bulk} ({short} short HTTP-like, {bulk} bulk); "
            f"{stats['conns_in_capture']} start inside the capture",
            file=out,
        )

        def pct(x):
            return f"{x} ({100.0 * x / max(1, short):.1f} % of short)"

        print(
            f"  short: {cnt['requests']} requests; close: client FIN {pct(cnt['fin_client'])}, "
            f"client FIN after idle {pct(cnt['fin_client_idle'])}, server FIN "
            f"{pct(cnt['fin_server'])}, RST abort {pct(cnt['rst_abort'])}, refused SYN "
            f"{pct(cnt['refused'])}",
            file=out,
        )
        print(
            f"  data segments lost after the capture point and retransmitted: "
            f"{cnt['retransmissions']} (all connections)",
            file=out,
        )
        k = stats["kinds"]
        flags = fl["flags"]
        print(
            f"packets: {n}; bulk-connection packets {stats['bulk_pkts']} "
            f"({100.0 * stats['bulk_pkts'] / n:.1f} %); with payload {int((fl['len'] > 0).sum())}; "
            f"SYN {int(((flags & SYN) != 0).sum())}, FIN {int(((flags & FIN) != 0).sum())}, "
            f"RST {int(((flags & RST) != 0).sum())}",
            file=out,
        )
        print(
            f"  payload kinds: request {k[K_REQ]}, response head {k[K_RESP]}, response body "
            f"{k[K_BODY]}, bulk {k[K_BULK]}",
            file=out,
        )
        print(
            f"capture spans {stats['span_s']:.1f} s ({n / max(stats['span_s'], 1e-9):.0f} pkt/s); "
            f"live connections: mean {stats['live_mean']:.0f}, max {stats['live_max']}",
            file=out,
        )
        print(
            f"time: simulate {stats['sim_s']:.1f} s, fields {stats['fields_s']:.1f} s, "
            f"write {t2 - t1:.1f} s, total {t2 - t0:.1f} s ({n / (t2 - t0) / 1e6:.2f} M pkt/s)",
            file=out,
        )
    print(f"wrote {args.out}: {n} packets", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
