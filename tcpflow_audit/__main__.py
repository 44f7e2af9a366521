"""`python -m tcpflow_audit` runs the command line."""

from .cli import run

run()
