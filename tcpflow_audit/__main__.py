"""`python -m tcpflow_audit` runs the command line."""

from .process import run

run()
