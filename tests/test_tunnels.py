"""Tunnels: each encapsulation's sample capture decapsulated to its inner TCP connections.

Kernel-made: vxlan.pcap and vxlan_8472_ipv6.pcap (sample_pcaps/make_vxlan.py, Linux VXLAN in
network namespaces). Crafted: the rest (sample_pcaps/make_tunnels.py; this kernel has no GRE,
Geneve, IPIP, sit, ip6tnl or L2TP modules). Each is checked three ways: the connections with their
conn_state, history and `tunnel` column; the TCP packets read against tshark's reading of the same
file (same TCP packet count, same streams, when tshark is installed); the decoder's skip counts.
"""

from __future__ import annotations

import csv
import io
import shutil
import struct
import subprocess

import pytest
from conftest import sample

from tcpflow_audit.decode import MAX_TUNNELS, Decoder, tunnel_key

CLIENT_CLOSES = ("SF", "ShADdFf")  # the crafted conversations: client FIN first, 10 packets

# capture -> its connections: (client, client port, server, server port, conn_state, history, packets, tunnel)
EXPECTED: dict[str, list[tuple]] = {
    "vxlan.pcap": [
        ("10.0.0.1", 40000, "10.0.0.2", 8080, "SF", "ShADadFf", 11, "vxlan:vni=42,192.168.50.1>192.168.50.2"),
        ("10.0.0.1", 40000, "10.0.0.2", 8080, "SF", "ShADadFf", 11, "vxlan:vni=43,192.168.50.1>192.168.50.2"),
        ("10.0.0.1", None, "10.0.0.2", 8081, "REJ", "Sr", 2, "vxlan:vni=42,192.168.50.1>192.168.50.2"),
    ],
    "vxlan_8472_ipv6.pcap": [
        ("fd07::1", 40000, "fd07::2", 8080, "SF", "ShADadfF", 11, "vxlan:vni=7,fd50::1>fd50::2"),
    ],
    "vxlan_vni_reuse.pcap": [
        ("10.10.0.1", 40000, "10.10.0.2", 80, *CLIENT_CLOSES, 10, "vxlan:vni=1,192.0.2.1>192.0.2.2"),
        ("10.10.0.1", 40000, "10.10.0.2", 80, *CLIENT_CLOSES, 10, "vxlan:vni=2,192.0.2.1>192.0.2.2"),
    ],
    "geneve.pcap": [("10.1.0.1", 40000, "10.1.0.2", 80, *CLIENT_CLOSES, 10, "geneve:vni=100,192.0.2.1>192.0.2.2")],
    "gre.pcap": [
        ("10.2.0.1", 40000, "10.2.0.2", 80, *CLIENT_CLOSES, 10, "gre:key=7,192.0.2.1>192.0.2.2"),
        ("10.2.1.1", 40001, "10.2.1.2", 80, *CLIENT_CLOSES, 10, "gre:192.0.2.1>192.0.2.2"),
    ],
    "erspan.pcap": [
        ("10.3.0.1", 40000, "10.3.0.2", 80, *CLIENT_CLOSES, 10, "erspan:192.0.2.10>192.0.2.20"),
        ("10.3.0.1", 40001, "10.3.0.2", 80, *CLIENT_CLOSES, 10, "erspan:id=5,192.0.2.10>192.0.2.20"),
        ("10.3.0.1", 40002, "10.3.0.2", 80, *CLIENT_CLOSES, 10, "erspan:id=9,192.0.2.10>192.0.2.20"),
    ],
    "ipip.pcap": [
        ("10.4.0.1", 40000, "10.4.0.2", 80, *CLIENT_CLOSES, 10, "4in4:192.0.2.1>192.0.2.2"),
        ("fd04::1", 40001, "fd04::2", 80, *CLIENT_CLOSES, 10, "6in4:192.0.2.1>192.0.2.2"),
        ("10.4.0.1", 40002, "10.4.0.2", 80, *CLIENT_CLOSES, 10, "4in6:2001:db8::1>2001:db8::2"),
        ("fd04::1", 40003, "fd04::2", 80, *CLIENT_CLOSES, 10, "6in6:2001:db8::1>2001:db8::2"),
    ],
    "gtp.pcap": [("10.45.0.7", 40000, "198.51.100.80", 80, *CLIENT_CLOSES, 10, "gtp:192.0.2.1>192.0.2.2")],
    "teredo.pcap": [
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            40000,
            "2001:db8:7::80",
            80,
            *CLIENT_CLOSES,
            10,
            "teredo:192.0.2.1>203.0.113.1",
        )
    ],
    "ayiya.pcap": [("2001:db8:a::1", 40000, "2001:db8:b::2", 80, *CLIENT_CLOSES, 10, "ayiya:192.0.2.1>192.0.2.2")],
    "l2tp.pcap": [("100.64.0.7", 40000, "198.51.100.80", 80, *CLIENT_CLOSES, 10, "l2tp:192.0.2.1>192.0.2.2")],
    "ipsec_ah.pcap": [
        ("192.0.2.1", 40000, "192.0.2.2", 80, *CLIENT_CLOSES, 10, ""),  # transport mode: no tunnel
        ("10.6.0.1", 40001, "10.6.0.2", 80, *CLIENT_CLOSES, 10, "4in4:192.0.2.1>192.0.2.2"),
    ],
    "shims.pcap": [("10.7.0.1", 40000 + i, "10.7.0.2", 80, *CLIENT_CLOSES, 10, "") for i in range(4)],
    "ppp_mpls.pcap": [("10.8.0.1", 40000, "10.8.0.2", 80, *CLIENT_CLOSES, 10, "")],
    "nested.pcap": [
        ("10.9.0.1", 40000, "10.9.0.2", 80, *CLIENT_CLOSES, 10, "vxlan:vni=5,2001:db8:5::1>2001:db8:5::2"),
        ("10.9.1.1", 40001, "10.9.1.2", 80, *CLIENT_CLOSES, 10, "gre:192.0.2.1>192.0.2.2;gre:198.18.0.1>198.18.0.2"),
    ],
}

# tshark's options to read a capture as this tool does (ports tshark does not assume)
TSHARK_OPTIONS = {
    "vxlan_8472_ipv6.pcap": ["-d", "udp.port==8472,vxlan"],
    "teredo.pcap": ["-o", "teredo.heuristic_teredo:TRUE"],
}


def flows(cli, name: str, *options: str) -> list[dict[str, str]]:
    result = cli(sample(name), "--report", "flows", "--format", "csv", *options)
    return list(csv.DictReader(io.StringIO(result.stdout)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_connections_and_tunnel_column(cli, name: str) -> None:
    got = [
        (
            row["client_ip"],
            # (the refused connection's client port is the kernel's choice)
            None if row["server_port"] == "8081" else int(row["client_port"]),
            row["server_ip"],
            int(row["server_port"]),
            row["conn_state"],
            row["history"],
            int(row["client_packets"]) + int(row["server_packets"]),
            row["tunnel"],
        )
        for row in flows(cli, name)
    ]
    assert sorted(got, key=repr) == sorted(EXPECTED[name], key=repr)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tcp_packets_as_tshark_reads_them(cli, name: str) -> None:
    path = sample(name)
    tshark = subprocess.run(
        ["tshark", "-r", str(path), *TSHARK_OPTIONS.get(name, []), "-Y", "tcp", "-T", "fields", "-e", "tcp.stream"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    streams = tshark.stdout.split()
    rows = flows(cli, name)
    assert sum(int(row["client_packets"]) + int(row["server_packets"]) for row in rows) == len(streams)
    # tshark tells connections apart by 4-tuple alone: two VNIs reusing one are one stream to it
    assert len(rows) >= len(set(streams))
    if name != "vxlan_vni_reuse.pcap":
        assert len(rows) == len(set(streams))


def test_two_vnis_with_one_inner_four_tuple_are_two_connections(cli) -> None:
    rows = flows(cli, "vxlan_vni_reuse.pcap")
    assert {row["tunnel"] for row in rows} == {"vxlan:vni=1,192.0.2.1>192.0.2.2", "vxlan:vni=2,192.0.2.1>192.0.2.2"}
    assert {(row["client_ip"], row["client_port"], row["server_ip"], row["server_port"]) for row in rows} == {
        ("10.10.0.1", "40000", "10.10.0.2", "80")
    }


def test_terminal_tables_show_the_tunnel_when_a_connection_has_one(cli) -> None:
    table = cli(sample("vxlan.pcap"), "--report", "flows", "--width", "0").stdout.splitlines()
    assert table[1].split()[-1] == "tunnel"
    assert [line.split()[-1] for line in table[3:]] == [
        "vxlan:vni=42,192.168.50.1>192.168.50.2",
        "vxlan:vni=43,192.168.50.1>192.168.50.2",
        "vxlan:vni=42,192.168.50.1>192.168.50.2",
    ]
    # the default report's table of connections that did not end normally has it too
    default = cli(sample("vxlan.pcap"), "--width", "0").stdout.splitlines()
    at = next(i for i, line in enumerate(default) if line.startswith("Connections that did not end normally"))
    assert default[at + 1].split()[-1] == "tunnel" and default[at + 3].split()[-1].startswith("vxlan:vni=42,")
    # narrower, it stays before the times (which tell two tunnels' connections apart less)
    narrow = cli(sample("vxlan.pcap"), "--report", "flows", "--width", "130").stdout
    assert "tunnel" in narrow.splitlines()[1] and "not shown at width 130: duration_s, start;" in narrow
    # a capture without tunnels: no such column
    plain = cli(sample("demo.pcap"), "--report", "flows", "--width", "0").stdout.splitlines()
    assert plain[1].split()[-1] == "start" and "tunnel" not in "".join(plain)


def test_esp_and_l2tp_control_counted(cli) -> None:
    summary = cli(sample("ipsec_ah.pcap"), "--format", "json").stdout
    assert '"ipsec_esp": 5' in summary
    summary = cli(sample("l2tp.pcap"), "--format", "json").stdout
    assert '"not_tcp": 1' in summary


def test_tunnel_port_option(cli, tmp_path) -> None:
    # the Geneve sample moved to UDP 6090: read as Geneve only when told
    data = bytearray(sample("geneve.pcap").read_bytes())
    moved = bytes(data).replace(struct.pack("!HH", 50000, 6081), struct.pack("!HH", 50000, 6090))
    path = tmp_path / "geneve_6090.pcap"
    path.write_bytes(moved)
    plain = cli(path, "--report", "flows", "--format", "csv").stdout
    assert len(list(csv.DictReader(io.StringIO(plain)))) == 0
    told = cli(path, "--tunnel-port", "geneve=6090", "--report", "flows", "--format", "csv").stdout
    (row,) = csv.DictReader(io.StringIO(told))
    assert row["tunnel"] == "geneve:vni=100,192.0.2.1>192.0.2.2" and row["conn_state"] == "SF"
    bad = cli(path, "--tunnel-port", "wireguard=51820", status=2)
    assert "--tunnel-port" in bad.stderr and "vxlan" in bad.stderr
    # the same from Python
    from tcpflow_audit import audit

    assert audit(str(path)).flows.empty
    flows = audit(str(path), tunnel_ports=[("geneve", 6090)]).flows
    assert list(flows["tunnel"]) == ["geneve:vni=100,192.0.2.1>192.0.2.2"]
    with pytest.raises(ValueError, match="unknown tunnel"):
        audit(str(path), tunnel_ports=[("wireguard", 51820)])


def test_gtp_outer_fragments_reassembled() -> None:
    from tcpflow_audit.capture import CaptureReader
    from tcpflow_audit.decode import SUPPORTED_LINKTYPES

    decoder = Decoder()
    segments = [
        decoder.decode(linktype, frame, ts)
        for ts, linktype, frame in CaptureReader(str(sample("gtp.pcap")), supported_linktypes=SUPPORTED_LINKTYPES)
    ]
    assert sum(s is not None for s in segments) == 10
    assert decoder.skipped == {"ip_fragment": 2}  # the two 700-byte segments: first fragments, held
    assert [s[8] for s in segments if s is not None and s[8]] == [120, 700, 700]
    assert not decoder.fragments.pending


def vxlan_frame(inner: bytes, vni: int) -> bytes:
    udp = struct.pack("!HHHH", 50000, 4789, 8 + 8 + len(inner), 0) + struct.pack("!II", 0x08000000, vni << 8) + inner
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(4), bytes([1, 1, 1, 1])) + udp
    return b"\x02" * 12 + b"\x08\x00" + ip


def test_nesting_is_bounded_and_malformed_headers_are_counted() -> None:
    decoder = Decoder()
    tcp_ip = bytes.fromhex("4500002800010000400600000a0000010a000002") + bytes(12) + b"\x50\x10" + bytes(6)
    frame = b"\x02" * 12 + b"\x08\x00" + tcp_ip
    for depth in range(MAX_TUNNELS + 1):
        frame = vxlan_frame(frame, depth)
    assert decoder.decode(1, frame) is None
    assert decoder.skipped == {"tunnel_depth": 1}
    # one layer fewer is read, with the whole path
    frame = b"\x02" * 12 + b"\x08\x00" + tcp_ip
    for depth in range(MAX_TUNNELS):
        frame = vxlan_frame(frame, depth)
    assert decoder.decode(1, frame) is not None
    assert decoder.tunnel.count("vxlan:") == MAX_TUNNELS
    # impossible fields: counted by reason, never an exception
    gre_routing = b"\x02" * 12 + b"\x08\x00" + bytes.fromhex("4500002000010000402f000001010101020202024000080000000000")
    geneve_v1 = vxlan_frame(b"", 0).replace(struct.pack("!HH", 50000, 4789), struct.pack("!HH", 50000, 6081))
    geneve_v1 = geneve_v1[:42] + b"\x40" + geneve_v1[43:]
    for frame, reason in ((gre_routing, "bad_gre_header"), (geneve_v1, "bad_geneve_header")):
        decoder.skipped.clear()
        assert decoder.decode(1, frame) is None
        assert decoder.skipped == {reason: 1}
    decoder.skipped.clear()
    truncated = vxlan_frame(b"", 3)[:-4]
    assert decoder.decode(1, truncated) is None and decoder.skipped == {"truncated_tunnel": 1}


def test_tunnel_key_is_the_same_both_ways() -> None:
    assert tunnel_key("gre:a>b;vxlan:vni=1,c>d") == tunnel_key("gre:b>a;vxlan:vni=1,d>c")
    assert tunnel_key("vxlan:vni=1,c>d") != tunnel_key("vxlan:vni=2,c>d")


def test_fragment_memory_is_bounded() -> None:
    from tcpflow_audit import decode

    decoder = Decoder()
    for ident in range(decode._FRAGMENT_DATAGRAMS + 100):  # first fragments of UDP datagrams never completed
        payload = bytes(800)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x2000, 64, 17, 0, bytes(4), bytes(4))
        decoder.decode(1, b"\x02" * 12 + b"\x08\x00" + ip + payload, float(ident) * 0.001)
    assert len(decoder.fragments.pending) <= decode._FRAGMENT_DATAGRAMS
    assert decoder.fragments.dropped >= 100
    # and the capture-time timeout lets go of the rest
    decoder.decode(1, b"\x02" * 12 + b"\x08\x00" + ip + payload, 1000.0)
    assert len(decoder.fragments.pending) == 1


def test_teredo_on_any_port_by_content(cli, tmp_path) -> None:
    # the relay's port moved from 3544 to 33000: still Teredo (a Teredo address inside, IPv6 filling the datagram)
    data = sample("teredo.pcap").read_bytes()
    moved = data.replace(struct.pack("!HH", 40123, 3544), struct.pack("!HH", 40123, 33000))
    moved = moved.replace(struct.pack("!HH", 3544, 40123), struct.pack("!HH", 33000, 40123))
    path = tmp_path / "teredo_33000.pcap"
    path.write_bytes(moved)
    rows = list(csv.DictReader(io.StringIO(cli(path, "--report", "flows", "--format", "csv").stdout)))
    assert [(row["conn_state"], row["tunnel"]) for row in rows] == [("SF", "teredo:192.0.2.1>203.0.113.1")]


def test_ipcomp_deflate_inflated() -> None:
    import zlib

    tcp_ip = bytes.fromhex("4500002800010000400600000a0000010a000002") + bytes(12) + b"\x50\x10" + bytes(6)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = deflate.compress(tcp_ip) + deflate.flush()
    ipcomp = bytes([4, 0]) + struct.pack("!H", 2) + compressed  # next header IPv4, DEFLATE
    outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(ipcomp), 1, 0, 64, 108, 0, bytes(4), bytes(4)) + ipcomp
    decoder = Decoder()
    segment = decoder.decode(1, b"\x02" * 12 + b"\x08\x00" + outer)
    assert segment is not None and segment[:4] == (bytes([10, 0, 0, 1]), 0, bytes([10, 0, 0, 2]), 0)
    assert decoder.tunnel == "4in4:0.0.0.0>0.0.0.0"
    garbage = outer[:24] + b"\xff" * 20
    assert decoder.decode(1, b"\x02" * 12 + b"\x08\x00" + garbage) is None
    assert decoder.skipped == {"ipcomp_unreadable": 1}
    # IPComp inside IPComp (a decompression bomb's nesting) is not followed
    nested = bytes([108, 0]) + struct.pack("!H", 2) + zlib.compress(ipcomp, 9, -15)
    outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(nested), 1, 0, 64, 108, 0, bytes(4), bytes(4)) + nested
    assert decoder.decode(1, b"\x02" * 12 + b"\x08\x00" + outer) is None
    assert decoder.skipped == {"ipcomp_unreadable": 2}
