"""The rarer link types (tcpflow_audit/link_layers.py): NFLOG from the kernel, the others crafted.

sample_pcaps/nflog.pcap is a kernel capture (sample_pcaps/make_nflog.py: `tcpdump -i nflog:5` while
nftables logs the TCP packets of three real connections in a network namespace); the link_*.pcap
files come from sample_pcaps/make_link_types.py (the same two conversations in each link type).
Each is read through the command line, its connections' states asserted, and its TCP packets and
streams compared with tshark's reading of the same file when tshark is installed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, sample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpflow_audit.capture import CaptureReader
from tcpflow_audit.decode import SUPPORTED_LINKTYPES, Decoder
from tcpflow_audit.link_layers import LINKTYPES, network_layer, ppp_payload

CRAFTED = [
    ("link_c_hdlc.pcap", 104, {"not_ip": 1}),
    ("link_ieee802_11.pcap", 105, {"not_ip": 3, "wlan_protected": 1}),
    ("link_radiotap.pcap", 127, {"not_ip": 3, "wlan_protected": 1}),
    ("link_juniper_ether.pcap", 178, {}),
    ("link_ppi.pcap", 192, {}),
    ("link_ipnet.pcap", 226, {}),
    ("link_ipoib.pcap", 242, {}),
    ("link_pktap.pcap", 258, {}),
    ("link_ppp_mpls.pcap", 9, {}),
    ("link_pppoe_1byte.pcap", 1, {}),
]
CAPTURES = ["nflog.pcap", *(name for name, _, _ in CRAFTED)]


def run(cli, name: str) -> tuple[list[dict[str, str]], dict]:
    """The flows (CSV rows) and the summary of one sample capture."""
    flows = list(csv.DictReader(io.StringIO(cli(sample(name), "--report", "flows", "--format", "csv").stdout)))
    summary = json.loads(cli(sample(name), "--report", "summary", "--format", "json").stdout)["summary"]
    return flows, summary


def test_the_link_types_are_accepted():
    assert LINKTYPES == {104, 105, 127, 178, 192, 226, 239, 242, 258}
    assert LINKTYPES <= SUPPORTED_LINKTYPES


NFLOG_STATES = {
    # 6-byte request, 20,000-byte answer in one loopback segment, client FIN first
    ("127.0.0.1", "8080"): ("SF", "ShADadFf", "TIME_WAIT", "CLOSED", 6, 4, 20000),
    ("127.0.0.1", "8081"): ("REJ", "Sr", "CLOSED", "CLOSED", 1, 1, 0),
    # 6-byte request, 3,000-byte answer, server FIN first
    ("::1", "8080"): ("SF", "ShADadfF", "CLOSED", "TIME_WAIT", 5, 5, 3000),
}


def nflog_states(cli, path: Path) -> dict:
    flows = csv.DictReader(io.StringIO(cli(path, "--report", "flows", "--format", "csv").stdout))
    return {
        (f["server_ip"], f["server_port"]): (
            f["conn_state"],
            f["history"],
            f["client_state"],
            f["server_state"],
            int(f["client_packets"]),
            int(f["server_packets"]),
            int(f["server_bytes"]),
        )
        for f in flows
    }


def test_nflog_kernel_capture(cli):
    """Three connections logged by the kernel (sample_pcaps/make_nflog.py), IPv4 and IPv6."""
    assert nflog_states(cli, sample("nflog.pcap")) == NFLOG_STATES
    _, summary = run(cli, "nflog.pcap")
    assert summary["tcp_packets"] == 22 and summary["skipped_packets"] == {}
    assert summary["input_problems"] == []


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("tcpdump") or not shutil.which("nft"),
    reason="making an NFLOG capture needs root, tcpdump and nft",
)
def test_nflog_capture_made_again(cli, tmp_path: Path):
    """The kernel logs the same three connections again (a namespace of this test's own, removed after)."""
    env = {**os.environ, "TFA_NS_PREFIX": f"tfa{os.getpid() % 100000}"}
    script = ROOT / "sample_pcaps" / "make_nflog.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, timeout=120, env=env)
    assert nflog_states(cli, tmp_path / "nflog.pcap") == NFLOG_STATES


@pytest.mark.parametrize("name,linktype,skipped", CRAFTED)
def test_crafted_link_types(cli, name: str, linktype: int, skipped: dict[str, int]):
    """The two conversations of sample_pcaps/make_link_types.py, whatever the link type around them."""
    assert CaptureReader(str(sample(name))).first_timestamp() is not None
    reader = CaptureReader(str(sample(name)))
    list(reader)
    assert reader.linktype == linktype
    flows, summary = run(cli, name)
    got = [
        (
            f["client_ip"],
            f["client_port"],
            f["server_port"],
            f["conn_state"],
            f["history"],
            f["client_state"],
            f["server_state"],
            int(f["client_packets"]),
            int(f["server_packets"]),
            int(f["server_bytes"]),
        )
        for f in flows
    ]
    assert got == [
        ("10.99.0.1", "41001", "8080", "SF", "ShADadFf", "TIME_WAIT", "CLOSED", 6, 6, 3000),
        ("10.99.0.1", "41002", "8081", "REJ", "Sr", "CLOSED", "CLOSED", 1, 1, 0),
    ]
    assert summary["tcp_packets"] == 14
    assert summary["skipped_packets"] == skipped
    assert summary["input_problems"] == []


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark is not installed")
@pytest.mark.parametrize("name", CAPTURES)
def test_same_tcp_packets_and_streams_as_tshark(cli, name: str):
    path = sample(name)
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "tcp && !icmp && !icmpv6", "-T", "fields", "-e", "tcp.stream"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    flows, _ = run(cli, name)
    assert sum(int(f["client_packets"]) + int(f["server_packets"]) for f in flows) == len(out)
    assert len(flows) == len(set(out))


# ------------------------------------------------------------------------------------ link headers


def test_ppp_protocol_field():
    assert ppp_payload(b"\x21\x45", 0, 2) == (0x0800, 1)  # compressed to one byte
    assert ppp_payload(b"\x00\x21\x45", 0, 3) == (0x0800, 2)
    assert ppp_payload(b"\x00\x57", 0, 2) == (0x86DD, 2)
    assert ppp_payload(b"\x02\x81", 0, 2) == (0x8847, 2)  # MPLS unicast
    assert ppp_payload(b"\x02\x83", 0, 2) == (0x8848, 2)
    assert ppp_payload(b"\xc0\x21", 0, 2) == "not_ip"  # LCP
    assert ppp_payload(b"\x00", 0, 1) == "truncated_link"
    assert ppp_payload(b"", 0, 0) == "truncated_link"


def frames_of(name: str) -> list[bytes]:
    return [frame for _, _, frame in CaptureReader(str(sample(name)))]


def layer(linktype: int, frame: bytes):
    return network_layer(linktype, frame, len(frame))


def test_ieee802_11_frames():
    data = frames_of("link_ieee802_11.pcap")[3]  # the SYN-ACK: AP -> station, plain data
    assert layer(105, data) == (0, 24)  # LLC/SNAP at 24, read by decode.py's walk
    qos = bytearray(frames_of("link_ieee802_11.pcap")[2])  # the SYN: station -> AP, QoS data
    assert layer(105, bytes(qos)) == (0, 26)
    qos[24] |= 0x80  # A-MSDU present
    assert layer(105, bytes(qos)) == "wlan_amsdu"
    qos[24] &= 0x7F
    qos[1] |= 0x40  # Protected
    assert layer(105, bytes(qos)) == "wlan_protected"
    qos[1] &= 0xBF
    qos[1] |= 0x80  # Order: an HT control field follows the QoS control field
    assert layer(105, bytes(qos)) == (0, 30)
    qos[0] |= 1  # protocol version 1 does not exist
    assert layer(105, bytes(qos)) == "bad_link_header"
    assert layer(105, data[:23]) == "truncated_link"


def test_radiotap_padding_and_extended_bitmaps():
    first = frames_of("link_radiotap.pcap")[2]  # the SYN: extended bitmap, TSFT at 16, padded QoS+HTC header
    rlen = struct.unpack_from("<H", first, 2)[0]
    assert rlen == 31 and layer(127, first) == (0, rlen + 32)
    unpadded = bytearray(first)
    unpadded[24] &= ~0x20 & 0xFF  # without the padding flag, the MAC header is 30 bytes
    assert layer(127, bytes(unpadded)) == (0, rlen + 30)
    assert layer(127, b"\x01" + first[1:]) == "bad_link_header"  # radiotap version 1
    assert layer(127, first[: rlen - 1]) == "truncated_link"


def test_nflog_attributes_in_either_byte_order():
    frame = frames_of("nflog.pcap")[0]
    et, at = layer(239, frame)
    assert et == 0x0800 and frame[at] == 0x45
    # the same attributes written by a big-endian host
    swapped = bytearray(frame[:4])
    q = 4
    while q + 4 <= len(frame):
        length, kind = struct.unpack_from("<HH", frame, q)
        swapped += struct.pack(">HH", length, kind) + frame[q + 4 : q + ((length + 3) & ~3)]
        q += (length + 3) & ~3
    assert layer(239, bytes(swapped)) == (0x0800, at)
    assert layer(239, frame[:4] + b"\x02\x00\x01\x00") == "bad_link_header"  # a length under 4
    assert layer(239, frame[: at - 4]) in ("not_ip", "truncated_link")  # no payload attribute


def test_pseudo_headers_that_say_no():
    juniper = frames_of("link_juniper_ether.pcap")[0]
    assert layer(178, b"MGX" + juniper[3:]) == "bad_link_header"
    ppi = frames_of("link_ppi.pcap")[-1]  # PPI around Ethernet
    assert layer(192, ppi) == (0x0800, 22)
    assert layer(192, ppi[:4] + struct.pack("<I", 147) + ppi[8:]) == "unsupported_linktype"  # DLT_USER0
    pktap = frames_of("link_pktap.pcap")[0]
    assert layer(258, pktap[:4] + struct.pack("<I", 2) + pktap[8:]) == "not_ip"  # not a packet record
    assert layer(226, frames_of("link_ipnet.pcap")[0][:1] + b"\x07" + frames_of("link_ipnet.pcap")[0][2:]) == "not_ip"
    ipnet = frames_of("link_ipnet.pcap")[0]
    assert layer(226, ipnet) == (0x0800, 24)
    assert layer(226, ipnet[:1] + b"\x1a" + ipnet[2:]) == (0x86DD, 24)  # IPH_AF_INET6 (26)
    assert layer(147, b"\x00" * 60) == "unsupported_linktype"


_FRAMES = [(lt, frame) for name, lt, _ in CRAFTED for frame in frames_of(name)[:4]] + [
    (239, frame) for frame in frames_of("nflog.pcap")[:2]
]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(_FRAMES), data=st.data())
def test_damaged_link_headers_never_raise(case, data):
    """Bytes changed or cut anywhere: a segment or a counted skip reason, never an exception."""
    linktype, frame = case
    b = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()) and b:
            b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
        else:
            del b[data.draw(st.integers(0, len(b))) :]
    d = Decoder()
    s = d.decode(linktype, bytes(b))
    assert (s is None) == (sum(d.skipped.values()) == 1)
    assert "malformed" not in d.skipped
