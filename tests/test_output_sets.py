"""Output sets a nightly job can trust: a reader of `--output-dir DIR` or `-o FILE` sees the previous
output or this run's, whole, whatever stops the run and wherever; the run's stderr line says which;
two runs on one output take turns; what a killed run leaves behind is removed by the next one.

The CLI runs as a child process (`python -m tcpflow_audit`) on the shipped captures. To stop it at
each step of writing and switching, the run is traced with strace and a signal is injected at the
Nth call of each file-system call the run makes (`strace -e inject=SYSCALL:signal=SIG:when=N`): a
SIGTERM, which the run handles, and a SIGKILL, which nothing can handle. strace delivers the signal
as the call is entered: a SIGKILL stops the process before the call takes effect, a SIGTERM after
it (the handler runs when the call returns). The steps are listed by a traced run first, so every
one of them is hit. Those tests skip, saying why, where strace is missing or cannot trace
(`make test` installs it when it runs as root on Debian or Ubuntu).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli_command, sample

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="output sets switch with Linux's renameat2 and are traced with strace"
)

OLD = sample("normal_mix.pcap")  # last night's capture: 50 connections
NEW = sample("demo.pcap")  # tonight's: 9 connections of several kinds
CLI = cli_command()
SET_FILES = ("anomalies.csv", "flows.csv", "summary.json")  # what a run writes (no --sockets, no --parquet)
WAIT = 30.0  # seconds: the bound on every wait
# the calls with which a run makes, writes to disk and switches its output (names this machine lacks are skipped)
STEPS = (
    "fsync",
    "fdatasync",
    "mkdir",
    "mkdirat",
    "symlink",
    "symlinkat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
)
SET_NAME = re.compile(r"\d{8}T\d{6}Z-[a-z0-9_]{8}")


def run_cli(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs)


def _strace_problem() -> str | None:
    if shutil.which("strace") is None:
        return "strace is not installed (Debian/Ubuntu: apt-get install strace; `make test` does it as root)"
    probe = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    if probe.returncode != 0:
        return f"strace cannot trace here (ptrace not permitted?): {probe.stderr.strip()}"
    return None


STRACE_PROBLEM = _strace_problem() if sys.platform.startswith("linux") else "not Linux"
needs_strace = pytest.mark.skipif(STRACE_PROBLEM is not None, reason=f"needs strace: {STRACE_PROBLEM}")


def traced(args, *, log: Path | None = None, inject: str | None = None, paths=()) -> subprocess.CompletedProcess:
    """The CLI under strace: with `log`, the run's STEPS are written there; with `inject`, a signal is
    injected (an strace -e inject= expression); `paths` narrows the traced calls to those on these paths."""
    command = ["strace", "-f", "-qq", "-y", "-o", str(log) if log else "/dev/null"]  # (-y: a descriptor's path)
    for path in paths:
        command += ["-P", str(path)]
    if inject is None:
        command += ["-e", "trace=" + ",".join("?" + name for name in STEPS)]
    else:
        command += ["-e", "trace=" + inject.split(":")[0], "-e", "inject=" + inject]
    return subprocess.run([*command, *CLI, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT)


def steps_of(log: Path) -> list[tuple[str, int, str]]:
    """The run's calls in order: (call, its number among calls of that name, the line), from a strace log."""
    seen: dict[str, int] = {}
    steps = []
    for line in log.read_text().splitlines():
        found = re.match(r"\d+\s+(\w+)\(", line)
        if found and found.group(1) in STEPS:
            name = found.group(1)
            seen[name] = seen.get(name, 0) + 1
            steps.append((name, seen[name], line))
    return steps


def synced_around_the_switch(steps, out: Path) -> tuple[list[str], list[str]]:
    """What the run flushed to disk (fsync) before the rename that switches `out`, and right after it:
    paths relative to the directory holding `out`, a set directory's name written <set>."""
    switch = next(i for i, (name, _, line) in enumerate(steps) if name.startswith("rename") and f'"{out}"' in line)

    def synced(lines):
        paths = []
        for line in lines:
            found = re.match(r"\d+\s+fsync\(\d+<(.*)>\)", line)
            if found:
                paths.append(SET_NAME.sub("<set>", os.path.relpath(found.group(1), out.parent)))
        return paths

    after = [line for _, _, line in steps[switch + 1 :]]
    return synced(line for _, _, line in steps[:switch]), synced(after[:1])


def contents(directory: Path) -> dict[str, bytes] | None:
    """The set as a reader sees it through DIR (None when DIR is not there)."""
    if not directory.exists():
        return None
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def interrupted_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("tcpflow-audit: interrupted")]
    assert len(lines) == 1, stderr
    return lines[0]


def leftovers(directory: Path) -> list[str]:
    """What killed runs left of this output: the entries of `.DIR.sets` but DIR's current set, and the
    `.partial` files beside DIR."""
    sets = directory.parent / f".{directory.name}.sets"
    current = os.readlink(directory).split("/")[-1] if directory.is_symlink() else None
    left = [f"{sets.name}/{entry}" for entry in os.listdir(sets) if entry != current] if sets.exists() else []
    left += [p.name for p in directory.parent.iterdir() if p.name.endswith(".partial")]
    return sorted(left)


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """The whole set of each capture, as a clean run writes it (same arguments, so same bytes); "old-stdin"
    is last night's capture read from standard input (its summary names the file "-")."""
    base = tmp_path_factory.mktemp("references")
    sets = {}
    for key, capture in (("old", OLD), ("new", NEW), ("old-stdin", "-")):
        with open(OLD, "rb") as stdin:
            done = run_cli("--output-dir", base / key, capture, stdin=stdin)
        assert done.returncode == 0, done.stderr
        sets[key] = contents(base / key)
        assert sorted(sets[key]) == list(SET_FILES)
    assert sets["old-stdin"]["flows.csv"] == sets["old"]["flows.csv"]
    assert sets["old"]["flows.csv"] != sets["new"]["flows.csv"]
    assert sets["old"]["summary.json"] != sets["new"]["summary.json"]
    return sets


# ------------------------------------------------------------------ the layout
def test_the_set_is_a_link_to_a_set_directory_replaced_whole(tmp_path, references):
    out = tmp_path / "out"
    assert run_cli("--output-dir", out, OLD).returncode == 0
    assert out.is_symlink() and SET_NAME.fullmatch(os.readlink(out).removeprefix(".out.sets/"))
    assert contents(out) == references["old"]
    first = os.readlink(out)
    done = run_cli("--output-dir", f"{out}/", NEW)  # (a trailing slash names the same output)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert contents(out) == references["new"] and os.readlink(out) != first
    assert leftovers(out) == []  # the previous set directory is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", ".out.sets", "out"]


def test_a_plain_directory_is_swapped_for_the_link_in_one_step(tmp_path, references):
    # DIR as an earlier version left it: a plain directory with the three files (and a temporary file
    # of a run that was killed)
    out = tmp_path / "out"
    out.mkdir()
    for name, data in references["old"].items():
        (out / name).write_bytes(data)
    (out / ".flows.csv.k3j5x9_a.partial").write_text("half a row")
    done = run_cli("--output-dir", out, NEW)
    assert done.returncode == 0, done.stderr
    assert out.is_symlink() and contents(out) == references["new"]
    assert leftovers(out) == []
    # an empty directory (made by the user, or by the job's script) too
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("--output-dir", empty, NEW).returncode == 0
    assert empty.is_symlink() and contents(empty) == references["new"]


def test_what_cannot_be_replaced_safely_is_refused_before_reading(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    (mine / "flows.csv").write_text("an earlier run's\n")
    refused = run_cli("--output-dir", mine, NEW)
    assert refused.returncode == 2, refused.stderr
    assert (
        f"{mine} is a directory holding files tcpflow-audit does not write (notes.txt), which would be "
        f"removed with it: give a new or empty directory"
    ) in refused.stderr
    assert sorted(os.listdir(mine)) == ["flows.csv", "notes.txt"] and not mine.is_symlink()
    assert not (tmp_path / ".mine.sets").exists()

    link = tmp_path / "link"
    link.symlink_to(mine)
    refused = run_cli("--output-dir", link, NEW)
    assert refused.returncode == 2, refused.stderr
    assert f"{link} is a symbolic link (to {mine}) that tcpflow-audit did not make" in refused.stderr
    assert os.readlink(link) == str(mine)


def test_files_put_into_a_set_stay_with_it_and_a_warning(tmp_path, references):
    out = tmp_path / "out"
    assert run_cli("--output-dir", out, OLD).returncode == 0
    (out / "notes.txt").write_text("mine\n")  # lands in the current set directory
    old_set = tmp_path / os.readlink(out)
    done = run_cli("--output-dir", out, NEW)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"tcpflow-audit: warning: could not remove {old_set} (it holds files tcpflow-audit did not write)\n"
    )
    assert contents(out) == references["new"]
    assert os.listdir(old_set) == ["notes.txt"]  # the set's own files went, the user's file stayed
    quiet = run_cli("--output-dir", out, NEW, "-q")  # (each run tries again; --quiet hides the warning)
    assert (quiet.returncode, quiet.stderr) == (0, "") and os.listdir(old_set) == ["notes.txt"]


# ------------------------------------------------------------------ a signal at every step
def _stop_at_every_step(tmp_path: Path, previous: Path, args, what, kind: str) -> list[tuple[str, int, str]]:
    """With `previous` (a directory holding `out`, the previous output) copied afresh each time, run
    tonight's `args` (OUT stands for the output) under strace once to list its steps, then for every
    step and both signals: the run stopped there, the checks, and a next run that cleans up. The
    steps of the listing run are returned (its output is tmp_path/listing/out)."""

    def setup(name: str) -> Path:
        shutil.copytree(previous, tmp_path / name, symlinks=True)
        return tmp_path / name / "out"

    def args_for(out: Path) -> list:
        return [out if arg == "OUT" else arg for arg in args]

    out = setup("listing")
    log = tmp_path / "steps.log"
    listed = traced(args_for(out), log=log)
    assert listed.returncode == 0, listed.stderr
    assert what(out) == "new"
    steps = steps_of(log)
    assert any(name.startswith("rename") for name, _, _ in steps), steps
    outcomes = set()
    for case, (name, nth, line) in enumerate(steps):
        for signame in ("TERM", "KILL"):
            out = setup(f"{case}-{signame}")
            stopped = traced(args_for(out), inject=f"{name}:signal={signame}:when={nth}")
            where = f"SIG{signame} at {name} #{nth}: {line}\n{stopped.stderr}"
            seen = what(out)
            assert seen in ("old", "new"), where  # whole, never a mix
            outcomes.add((signame, seen))
            if signame == "TERM":
                assert stopped.returncode == 143, where
                assert "Traceback" not in stopped.stderr, where
                said = interrupted_line(stopped.stderr)
                if seen == "new" and kind == "set":
                    said_right = said.endswith(
                        f"; {out} holds this run's complete set (it was switched into place before the interrupt)"
                    )
                elif seen == "new":
                    said_right = said.endswith(
                        f"; {out} holds this run's complete report (it was renamed into place before the interrupt)"
                    )
                elif kind == "set":
                    said_right = said.endswith(
                        f"; nothing was written to {out} (files of an earlier run, if any, are left as they were)"
                    )
                else:
                    said_right = said.endswith(f"; {out} was not written (an earlier {out}, if any, is left as it was)")
                assert said_right, where
            else:
                assert stopped.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), where
                assert "interrupted" not in stopped.stderr, where
            # the next run removes what the stopped one left, and writes its own output
            again = run_cli(*args_for(out))
            assert again.returncode == 0 and again.stderr == "", f"{where}\n{again.stderr}"
            assert what(out) == "new"
            assert leftovers(out) == [], where
    # both outcomes, for both signals: steps before the switch and steps after it were hit
    assert outcomes == {(s, k) for s in ("TERM", "KILL") for k in ("old", "new")}, outcomes
    return steps


def _which_set(references):
    def what(out: Path) -> str:
        seen = contents(out)
        return next((key for key, ref in references.items() if ref == seen), repr(seen)[:300])

    return what


@needs_strace
def test_a_signal_at_any_step_of_a_set_leaves_one_whole_set_and_says_which(tmp_path, references):
    previous = tmp_path / "previous"
    assert run_cli("--output-dir", previous / "out", OLD).returncode == 0  # last night's, as the command left it
    steps = _stop_at_every_step(tmp_path, previous, ["--output-dir", "OUT", NEW], _which_set(references), "set")
    # the files, their directory and its entry are on disk before the switch; the switch right after it
    before, after = synced_around_the_switch(steps, tmp_path / "listing" / "out")
    assert sorted(before) == [".out.sets", ".out.sets/<set>", *(f".out.sets/<set>/{name}" for name in SET_FILES)], steps
    assert after == ["."], steps
    # one step switches the set: one rename, of a link to the new set over the previous link
    renames = [line for name, _, line in steps if name.startswith("rename")]
    listing = tmp_path / "listing"
    assert len(renames) == 1 and f'rename("{listing}/.out.sets/' in renames[0], steps
    assert renames[0].endswith(f'.link", "{listing}/out") = 0'), steps


@needs_strace
def test_a_signal_at_any_step_of_the_one_step_migration_leaves_one_whole_set(tmp_path, references):
    previous = tmp_path / "previous"  # last night's, as a version before output sets left it: a plain directory
    (previous / "out").mkdir(parents=True)
    for name, data in references["old"].items():
        (previous / "out" / name).write_bytes(data)
    steps = _stop_at_every_step(tmp_path, previous, ["--output-dir", "OUT", NEW], _which_set(references), "set")
    before, after = synced_around_the_switch(steps, tmp_path / "listing" / "out")
    assert sorted(before) == [".out.sets", ".out.sets/<set>", *(f".out.sets/<set>/{name}" for name in SET_FILES)], steps
    assert after == ["."], steps
    # the plain directory and the link to the new set trade places in one renameat2 (after a first one
    # that checked, before reading, that the file system can)
    switches = [line for name, _, line in steps if name.startswith("rename")]
    assert len(switches) == 2 and all("RENAME_EXCHANGE) = 0" in line for line in switches), steps
    exchange = r'\.link", AT_FDCWD(<[^>]*>)?, "' + re.escape(f"{tmp_path}/listing/out") + r'", RENAME_EXCHANGE\) = 0$'
    assert re.search(exchange, switches[1]), steps


@needs_strace
def test_a_signal_at_any_step_of_an_output_file_leaves_one_whole_file_and_says_which(tmp_path):
    old_report = run_cli(OLD, "--report", "flows", "--csv").stdout
    new_report = run_cli(NEW, "--report", "flows", "--csv").stdout
    assert old_report != new_report and new_report.count("\n") == 10
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "out").write_text(old_report)

    def what(out: Path) -> str:
        seen = out.read_text()
        return {old_report: "old", new_report: "new"}.get(seen, repr(seen)[:300])

    steps = _stop_at_every_step(tmp_path, previous, ["--report", "flows", "--csv", "-o", "OUT", NEW], what, "report")
    before, after = synced_around_the_switch(steps, tmp_path / "listing" / "out")
    assert len(before) == 1 and re.fullmatch(r"\.out\.[a-z0-9_]{8}\.partial", before[0]), steps
    assert after == ["."], steps


@needs_strace
def test_a_signal_during_the_imports_is_handled_and_reported(tmp_path):
    # the handler is installed before the command imports its modules: a SIGTERM while click is
    # being imported (a module the command needs, imported after the handler) ends with the line
    import click.core

    module = [click.core.__file__, importlib.util.cache_from_source(click.core.__file__)]
    out = tmp_path / "out"
    for signame, status, prefix in (
        ("TERM", 143, "tcpflow-audit: interrupted by SIGTERM: "),
        ("INT", 130, "tcpflow-audit: interrupted: "),
    ):
        stopped = traced(["--output-dir", out, NEW], inject=f"openat:signal={signame}:when=1", paths=module)
        assert stopped.returncode == status, stopped.stderr
        assert "Traceback" not in stopped.stderr, stopped.stderr
        assert interrupted_line(stopped.stderr) == (
            f"{prefix}read 0 packets (0 bytes), 0 connections; nothing was written to {out} (files of an "
            f"earlier run, if any, are left as they were)"
        )
        assert not out.exists()
    # a command that reads nothing says so too
    stopped = traced(["--version"], inject="openat:signal=TERM:when=1", paths=module)
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stderr == "tcpflow-audit: interrupted by SIGTERM before reading any capture; nothing was written\n"


# ------------------------------------------------------------------ one writer per output
def _lock_is_held(lock: Path) -> bool:
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WAIT} s")
        time.sleep(0.02)


class _SlowRun:
    """A run reading its capture from a pipe, holding its output's lock until the test feeds it."""

    def __init__(self, tmp_path: Path, *args) -> None:
        self.err_path = tmp_path / f"slow-{time.monotonic_ns()}.err"
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*CLI, "-", *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT
            )

    def finish(self, capture: Path) -> int:
        self.proc.stdin.write(capture.read_bytes())
        self.proc.stdin.close()
        return self.proc.wait(timeout=WAIT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)


def test_a_second_run_waits_for_the_first_and_then_writes_its_own_whole_set(tmp_path, references):
    out = tmp_path / "out"
    first = _SlowRun(tmp_path, "--output-dir", out)
    try:
        _wait_for(lambda: _lock_is_held(tmp_path / ".out.lock"), "the first run did not lock its output")
        err_path = tmp_path / "second.err"
        with open(err_path, "wb") as err:
            second = subprocess.Popen(
                [*CLI, "--output-dir", str(out), str(NEW)], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT
            )
        try:
            _wait_for(lambda: "waiting" in err_path.read_text(), "the second run did not say it waits")
            assert err_path.read_text() == (
                f"tcpflow-audit: {out} is being written by another run "
                f"(pid {first.proc.pid}): waiting for it, up to 300 s (--lock-timeout)\n"
            )
            time.sleep(0.3)
            assert second.poll() is None and not out.exists()  # nothing written while the first holds it
            assert first.finish(OLD) == 0, first.err_path.read_text()
            assert second.wait(timeout=WAIT) == 0, err_path.read_text()
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(timeout=WAIT)
    finally:
        first.kill()
    assert contents(out) == references["new"]  # the second run's whole set, after the first's
    assert leftovers(out) == []


def test_with_lock_timeout_the_second_run_gives_up_with_status_75(tmp_path, references):
    out = tmp_path / "out"
    assert run_cli("--output-dir", out, NEW).returncode == 0
    report = tmp_path / "report.csv"
    for args, target, lock in (
        (["--output-dir", out], out, ".out.lock"),
        (["--report", "flows", "--csv", "-o", report], report, ".report.csv.lock"),
    ):
        first = _SlowRun(tmp_path, *args)
        try:
            _wait_for(lambda lock=lock: _lock_is_held(tmp_path / lock), "the first run did not lock its output")
            for timeout in ("0", "0.4"):
                started = time.monotonic()
                busy = run_cli(*args, NEW, "--lock-timeout", timeout, "-q")
                assert busy.returncode == 75, busy.stderr
                assert busy.stderr == (
                    f"tcpflow-audit: error: {target} is being written by another run "
                    f"(pid {first.proc.pid}); gave up after waiting {timeout} s (--lock-timeout): "
                    f"nothing was written\n"
                )
                assert time.monotonic() - started >= float(timeout)
            assert first.finish(OLD) == 0, first.err_path.read_text()
        finally:
            first.kill()
    assert contents(out) == references["old-stdin"]  # the first run's set, untouched by the ones that gave up
    assert leftovers(out) == []
    assert report.read_text() == run_cli(OLD, "--report", "flows", "--csv").stdout


def test_sigterm_while_waiting_for_the_lock_writes_nothing(tmp_path, references):
    out = tmp_path / "out"
    assert run_cli("--output-dir", out, OLD).returncode == 0
    first = _SlowRun(tmp_path, "--output-dir", out)
    try:
        _wait_for(lambda: _lock_is_held(tmp_path / ".out.lock"), "the first run did not lock its output")
        err_path = tmp_path / "second.err"
        with open(err_path, "wb") as err:
            second = subprocess.Popen(
                [*CLI, "--output-dir", str(out), str(NEW)], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT
            )
        try:
            _wait_for(lambda: "waiting" in err_path.read_text(), "the second run did not say it waits")
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=WAIT) == 143
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(timeout=WAIT)
        line = interrupted_line(err_path.read_text())
        assert line == (
            f"tcpflow-audit: interrupted by SIGTERM: read 0 packets (0 bytes), 0 connections; nothing was "
            f"written to {out} (files of an earlier run, if any, are left as they were)"
        )
        assert contents(out) == references["old"]
        assert first.finish(OLD) == 0
    finally:
        first.kill()
    assert contents(out) == references["old-stdin"]  # the first run's


# ------------------------------------------------------------------ leftovers of a killed run
def test_the_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path, references):
    out, report = tmp_path / "out", tmp_path / "report.csv"
    assert run_cli("--output-dir", out, OLD).returncode == 0
    for args, started in (
        (["--output-dir", out], lambda: leftovers(out) != []),
        (["--report", "flows", "--csv", "-o", report], lambda: list(tmp_path.glob(".report.csv.*.partial")) != []),
    ):
        killed = _SlowRun(tmp_path, *args)
        try:
            # its new set directory (its temporary file) is there once it holds the lock, before it reads
            _wait_for(started, "the run did not start its output")
            killed.proc.stdin.write(OLD.read_bytes()[:100_000])  # part of a capture
            killed.proc.stdin.flush()
        finally:
            killed.proc.send_signal(signal.SIGKILL)
            killed.proc.wait(timeout=WAIT)
            killed.proc.stdin.close()
    partials = [p.name for p in tmp_path.glob(".report.csv.*.partial")]
    assert len(partials) == 1 and not report.exists()
    stale = [entry for entry in leftovers(out) if not entry.endswith(".partial")]
    assert len(stale) == 1 and SET_NAME.fullmatch(stale[0].split("/")[1])  # the set that was never switched
    assert contents(out) == references["old"]

    assert run_cli("--output-dir", out, NEW).returncode == 0
    assert leftovers(out) == partials and contents(out) == references["new"]  # the other output's is its own
    assert run_cli("--report", "flows", "--csv", "-o", report, NEW).returncode == 0
    assert leftovers(out) == [] and report.read_text() == run_cli(NEW, "--report", "flows", "--csv").stdout
