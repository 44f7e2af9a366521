"""One source, two builds: the mypyc-compiled modules give exactly what their pure Python source gives.

When the per-packet modules are compiled with mypyc (the normal build), the pure Python source
must give exactly the same CSV output as the compiled build (native integers and floats, the
compiled division of timestamps...), on every sample capture and a generated traffic mix; and a
compiled module older than its source is reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, generated_traffic, sample_captures

from tcpflow_audit.build import is_compiled

SAMPLES = sample_captures()


@pytest.fixture(scope="module")
def generated_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench/gen_capture.py's traffic mix (HTTP-like and bulk, losses, RST aborts, refusals)."""
    return generated_traffic(tmp_path_factory.mktemp("generated") / "traffic.pcap", 60000, seed=7, concurrency=200)


def _cli_csv(cli_process, python_path: str | None, capture: Path, tmp: Path, name: str) -> str:
    """flows.csv of `capture` by the package on `python_path` (None: the installed build)."""
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    out = tmp / name
    cli_process(capture, "--report", "flows", "--format", "csv", "-o", out, "-q", env=env, cwd=tmp)
    return out.read_text()


@pytest.mark.skipif(not is_compiled(), reason="this build is pure Python: nothing compiled to compare with")
def test_pure_python_source_gives_the_compiled_results(tmp_path: Path, generated_capture: Path, cli_process) -> None:
    pure = tmp_path / "pure"
    shutil.copytree(
        ROOT / "tcpflow_audit", pure / "tcpflow_audit", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    probe = subprocess.run(
        [sys.executable, "-c", "import tcpflow_audit.build as b; print(b.is_compiled())"],
        env={**os.environ, "PYTHONPATH": str(pure)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"
    for capture in [*SAMPLES, generated_capture]:
        compiled_csv = _cli_csv(cli_process, None, capture, tmp_path, "compiled.csv")
        pure_csv = _cli_csv(cli_process, str(pure), capture, tmp_path, "pure.csv")
        assert compiled_csv.count("\n") > 1
        assert pure_csv == compiled_csv, capture.name


@pytest.mark.skipif(not is_compiled(), reason="this build is pure Python: nothing compiled to go stale")
def test_stale_compiled_module_is_reported(tmp_path: Path, cli_process) -> None:
    """Editing a compiled module's source without rebuilding leaves the old code running: say so."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "tcpflow_audit", copy / "tcpflow_audit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")  # what makes it a source checkout
    for runtime in ROOT.glob("*__mypyc*.so"):  # mypyc's shared runtime module sits beside the package
        shutil.copy2(runtime, copy / runtime.name)
    env = {**os.environ, "PYTHONPATH": str(copy)}

    def version() -> str:
        return cli_process("--version", env=env, cwd=tmp_path).stdout

    assert "compiled with mypyc" in version() and "STALE" not in version()
    source = copy / "tcpflow_audit" / "tracker.py"
    later = max(path.stat().st_mtime for path in (copy / "tcpflow_audit").glob("tracker*")) + 60
    os.utime(source, (later, later))
    assert "STALE: tracker" in version()
    run = cli_process(SAMPLES[0], "-q", env=env, cwd=tmp_path)
    assert "compiled modules older than their source (tracker)" in run.stderr
    # an installed package (no pyproject.toml beside it, as in site-packages) has sources whose file
    # times the installer chose: never reported as stale
    (copy / "pyproject.toml").unlink()
    assert "STALE" not in version()
