"""What the tests share: where the sample captures are, how a test writes a capture, how it runs the CLI.

Captures
    ROOT, SAMPLES
        The checkout (for bench/ and the package source) and its sample_pcaps/ folder.
    sample("demo.pcap") -> Path
        A capture shipped in sample_pcaps/ (kernel-made or crafted: sample_pcaps/README.md). A plain
        function, so it also serves in `pytest.mark.parametrize` and at module level.
    sample_captures() -> list[Path]
        Every sample_pcaps/*.pcap, sorted by name.
    write_capture(path, data) -> Path
        Write capture bytes to `path` (usually under `tmp_path`) and return the path. The bytes come
        from capture_helpers (below) or from a sample, sliced or compressed.

Running the command line
    cli (fixture), invoke_cli: cli(*args, input=None, status=0, env=None, **extra) -> click.testing.Result
        The CLI in this process, through click's CliRunner: the default for every CLI test (a child
        process costs a Python start-up and an import of the package per run). Arguments may be
        paths; `input` is standard input (bytes, text or a binary file object); `status` is the
        exit status the test expects (None: any); `env` is added to PLAIN_ENV (no COLUMNS, no NO_COLOR);
        `extra` goes to CliRunner.invoke. Read `.stdout`, `.stderr`, `.exit_code`. A
        traceback fails the test: an exception other than SystemExit propagates out of `cli`, and
        "Traceback" on stderr is an assertion error. (`.stderr` apart from `.stdout` needs click 8.2.)
    cli_process (fixture): cli_process(*args, stdin=None, status=0, env=None, cwd=ROOT, text=True)
            -> subprocess.CompletedProcess
        The CLI as a child process, `python -m tcpflow_audit` (the console script's code path,
        `cli.run`, which leaves through os._exit), with the same checks as `cli`. Only for what
        needs a real process: the exit through os._exit, a pipe on standard input, another build
        on PYTHONPATH, the process's own memory.
    cli_command(*args) -> list[str]
        That child's argv, for subprocess.Popen where a test drives the process itself: signals
        (SIGINT, SIGTERM), a pseudo-terminal on stderr, a pipe fed while the CLI runs.

Checks
    no_partial_files(directory)
        Asserts that an atomic write left no temporary `*.partial` file in `directory`.
    nudge(x, steps) -> float
        `x` moved by `steps` adjacent floats (math.nextafter), for tests at rounding boundaries.

capture_helpers.py is a plain module beside this one, imported where needed: the byte-level
builders of pcap and pcapng files (headers, records, blocks, options) and `Pcap`, a classic pcap
split into its records. It knows nothing of pytest or the CLI.

Import the plain helpers from here: `from conftest import sample, write_capture`. pytest puts
tests/ on sys.path (the default "prepend" import mode, for a tests folder without __init__.py), so
`conftest` and `capture_helpers` import as top-level modules.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result

from tcpflow_audit.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
CLI_TIMEOUT = 300  # seconds: the bound on one child run (a sample takes well under a second)


def sample(name: str) -> Path:
    """The path of a capture shipped in sample_pcaps/."""
    path = SAMPLES / name
    assert path.is_file(), f"no sample capture {name} in {SAMPLES}"
    return path


def sample_captures() -> list[Path]:
    """Every sample capture (sample_pcaps/*.pcap), sorted by name."""
    return sorted(SAMPLES.glob("*.pcap"))


def write_capture(path: Path, data: bytes) -> Path:
    """Write `data` to `path`; the path, for the CLI or a CaptureReader."""
    path.write_bytes(data)
    return path


def nudge(x: float, steps: int) -> float:
    """`x` moved by `steps` floats up (positive) or down (negative)."""
    for _ in range(abs(steps)):
        x = math.nextafter(x, math.inf if steps > 0 else -math.inf)
    return x


def no_partial_files(directory: Path) -> None:
    """An atomic write renames its `.partial` file into place or removes it: none is left behind."""
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".partial")]


def _check_run(stderr: str, status: int | None, got: int) -> None:
    assert "Traceback" not in stderr, stderr
    if status is not None:
        assert got == status, f"exit status {got}, expected {status}; stderr: {stderr}"


# the environment of a plain run: no table width and no colour preference from whoever runs the tests
PLAIN_ENV: dict[str, str | None] = {"COLUMNS": None, "NO_COLOR": None}


def invoke_cli(
    *args: Any,
    input: bytes | str | IO[Any] | None = None,
    status: int | None = 0,
    env: dict[str, str | None] | None = None,
    **extra: Any,
) -> Result:
    """The CLI in this process (what the `cli` fixture runs); `env` is added to PLAIN_ENV, `extra` goes to
    CliRunner.invoke (e.g. terminal_width)."""
    # catch_exceptions=False: a bug's exception fails the test with its own traceback
    result = CliRunner().invoke(
        main, [str(arg) for arg in args], input=input, catch_exceptions=False, env={**PLAIN_ENV, **(env or {})}, **extra
    )
    _check_run(result.stderr, status, result.exit_code)
    return result


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run the CLI in this process: cli(*args, input=None, status=0, env=None) -> click.testing.Result."""
    return invoke_cli


def cli_command(*args: Any) -> list[str]:
    """The argv of the CLI as a child process (`python -m tcpflow_audit ARGS`)."""
    return [sys.executable, "-m", "tcpflow_audit", *map(str, args)]


def generated_traffic(out: Path, packets: int, seed: int, concurrency: int, loss: float = 0.02) -> Path:
    """bench/gen_capture.py's traffic mix (HTTP-like and bulk, losses, RST aborts, refusals) written to `out`."""
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gen_capture.py"),
            "--packets",
            str(packets),
            "--seed",
            str(seed),
            "--concurrency",
            str(concurrency),
            "--loss",
            str(loss),
            "--out",
            str(out),
            "--quiet",
        ],
        check=True,
        timeout=300,
    )
    return out


def plain_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without PLAIN_ENV's variables (a table as wide as its content), plus `env`."""
    return {
        **{name: value for name, value in os.environ.items() if name not in PLAIN_ENV},
        **(env or {}),
    }


@pytest.fixture
def cli_process() -> Callable[..., subprocess.CompletedProcess]:
    """Run the CLI as a child process: cli_process(*args, stdin=None, status=0, env=None, cwd=ROOT, text=True)."""

    def run(
        *args: Any,
        stdin: Any = None,
        status: int | None = 0,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        text: bool = True,
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            cli_command(*args),
            stdin=stdin,
            capture_output=True,
            text=text,
            env=plain_environ(env),
            cwd=cwd,
            timeout=CLI_TIMEOUT,
        )
        _check_run(done.stderr if text else done.stderr.decode(errors="replace"), status, done.returncode)
        return done

    return run
