"""tcpflow-audit: audit TCP connection behaviour in packet captures."""

__version__ = "0.1.0"
