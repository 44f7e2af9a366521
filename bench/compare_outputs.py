#!/usr/bin/env python3
"""Compare what two builds of tcpflow-audit write with --output-dir, byte for byte, capture by capture.

The engine's results must not change when its code is restructured (or made faster): this runs
`CMD --output-dir DIR -q CAPTURE` (and variants: a filter keeping every packet, checksum checks,
--sockets) for every capture with a baseline build and a candidate build, and lists every
output file that differs, with its first differing line. summary.json is compared as JSON with
only the fields that name the run rather than its results left out (the input paths).

    # keep a baseline's outputs (e.g. of the main branch's build) to compare later builds against
    python bench/compare_outputs.py --save /tmp/baseline-outputs --cmd /work/main/.venv/bin/tcpflow-audit
    # compare this checkout's build against them
    python bench/compare_outputs.py --against /tmp/baseline-outputs
    # or two builds in one go
    python bench/compare_outputs.py --baseline-cmd OTHER/.venv/bin/tcpflow-audit

Captures: every sample_pcaps/*.pcap, the Zeek conformance traces when ../shared is present, a
generated mix and a generated SYN flood (bench/gen_capture.py, cached in --work), and any given on
the command line. Exit status 0 when everything is identical, 1 when anything differs.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# the Zeek conformance traces: ../shared beside the checkout (a worktree's: /work/shared), if present
CONFORMANCE = next(
    (
        path
        for path in (
            os.path.join(os.path.dirname(ROOT), "shared", "conformance", "zeek", "cases"),
            "/work/shared/conformance/zeek/cases",
        )
        if os.path.isdir(path)
    ),
    "/nonexistent",
)

# variant name -> extra options; the big generated captures run the plain variant only (time)
VARIANTS = {
    "plain": [],
    # a filter that keeps every packet: every frame through the general decoder
    "filtered": ["--net", "0.0.0.0/0", "--net", "::/0"],
    "checksums": ["--verify-checksums"],
    "sockets": ["--sockets"],
}
BIG_VARIANTS = ("plain",)
# summary.json fields that describe the run, not its results
RUN_FIELDS = ("files",)


def generated_captures(work: str, flood: int, mix: int) -> list[str]:
    """A generated traffic mix and a SYN flood (made once, kept in `work`)."""
    os.makedirs(work, exist_ok=True)
    made = []
    for name, options in (
        (f"mix-{mix}.pcap", ["--packets", str(mix), "--seed", "7"]),
        (f"flood-{flood}.pcap", ["--syn-flood", str(flood), "--seed", "7"]),
    ):
        path = os.path.join(work, name)
        if not os.path.exists(path):
            partial = path + ".part"
            subprocess.run(
                [sys.executable, os.path.join(HERE, "gen_capture.py"), *options, "--out", partial, "--quiet"],
                check=True,
            )
            os.replace(partial, path)
        made.append(path)
    return made


def default_captures() -> list[str]:
    captures = sorted(glob.glob(os.path.join(ROOT, "sample_pcaps", "*.pcap")))
    captures += sorted(glob.glob(os.path.join(CONFORMANCE, "*", "trace.pcap*")))
    return captures


def case_name(capture: str) -> str:
    """A directory name for a capture's outputs, stable across checkouts."""
    if capture.startswith(CONFORMANCE):
        return "zeek-" + os.path.basename(os.path.dirname(capture))
    return os.path.basename(capture)


def run_case(cmd: list[str], capture: str, options: list[str], into: str) -> None:
    """Run one build on one capture; keep its output files, exit status and stderr in `into`."""
    os.makedirs(into, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compare-") as scratch:
        out = os.path.join(scratch, "out")
        proc = subprocess.run(
            [*cmd, "--output-dir", out, "-q", *options, capture], capture_output=True, text=True, check=False
        )
        if os.path.isdir(out):
            for name in sorted(os.listdir(out)):
                shutil.copyfile(os.path.join(out, name), os.path.join(into, name))
    with open(os.path.join(into, "exit-status"), "w") as f:
        # stderr with the scratch directory's name taken out (it differs every run)
        f.write(f"{proc.returncode}\n" + proc.stderr.replace(scratch, "SCRATCH"))


def _summary(path: str) -> object:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for name in RUN_FIELDS:
        data.pop(name, None)
    return data


def compare_file(a: str, b: str) -> str | None:
    """None when the two files hold the same results; else what differs first."""
    if os.path.basename(a) == "summary.json":
        sa, sb = _summary(a), _summary(b)
        if sa == sb:
            return None
        la = json.dumps(sa, indent=1, sort_keys=True).splitlines()
        lb = json.dumps(sb, indent=1, sort_keys=True).splitlines()
    else:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            ba, bb = fa.read(), fb.read()
        if ba == bb:
            return None
        la = ba.decode("utf-8", "replace").splitlines()
        lb = bb.decode("utf-8", "replace").splitlines()
    diff = list(difflib.unified_diff(la, lb, "baseline", "candidate", n=0, lineterm=""))
    changed = sum(1 for line in diff[2:] if line[:1] in "+-" and not line.startswith(("+++", "---")))
    return f"{changed} changed lines; first:\n      " + "\n      ".join(diff[2:8])


def compare_dirs(a: str, b: str) -> list[str]:
    """Every difference between two output directories of one case."""
    problems = []
    names = sorted(set(os.listdir(a)) | set(os.listdir(b)))
    for name in names:
        pa, pb = os.path.join(a, name), os.path.join(b, name)
        if not os.path.exists(pa) or not os.path.exists(pb):
            problems.append(f"{name}: only in {'candidate' if not os.path.exists(pa) else 'baseline'}")
            continue
        # the HTML report embeds the same results as the CSV files, in a compressed form whose bytes
        # depend on the zlib build: compared through those files, not byte for byte
        if name == "report.html":
            continue
        difference = compare_file(pa, pb)
        if difference is not None:
            problems.append(f"{name}: {difference}")
    return problems


def cases(captures: list[str], big: set[str], sockets: bool) -> list[tuple[str, str, list[str]]]:
    """(capture, variant, options) for every run to make."""
    runs = []
    for capture in captures:
        for variant, options in VARIANTS.items():
            if capture in big and variant not in BIG_VARIANTS:
                continue
            # (the socket reports cost seconds a run: on the sample captures, made for them, only)
            if variant == "sockets" and not (sockets and capture.startswith(os.path.join(ROOT, "sample_pcaps"))):
                continue
            runs.append((capture, variant, options))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="*", help="more captures to compare (run with the plain variant only)")
    ap.add_argument(
        "--cmd",
        default=os.path.join(ROOT, ".venv", "bin", "tcpflow-audit"),
        help="the candidate build's command (default: this checkout's .venv)",
    )
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--save", metavar="DIR", help="run --cmd and keep its outputs in DIR (a baseline)")
    where.add_argument("--against", metavar="DIR", help="compare --cmd's outputs with those kept in DIR")
    where.add_argument("--baseline-cmd", metavar="CMD", help="compare --cmd's outputs with this build's")
    ap.add_argument("--work", default="/tmp/compare-outputs", help="where generated captures and outputs go")
    ap.add_argument("--flood", type=int, default=300_000, help="SYNs in the generated flood (0: none)")
    ap.add_argument("--mix", type=int, default=500_000, help="packets in the generated mix (0: none)")
    ap.add_argument("--no-sockets", action="store_true", help="leave out the --sockets variant")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="runs at once (default 1)")
    ap.add_argument("--no-defaults", action="store_true", help="only the captures given")
    args = ap.parse_args(argv)

    cmd = shlex.split(args.cmd)
    big = set(args.captures)
    if args.flood or args.mix:
        generated = generated_captures(os.path.join(args.work, "captures"), args.flood, args.mix)
        generated = [g for g in generated if (args.flood or "flood" not in g) and (args.mix or "mix" not in g)]
        big.update(generated)
    else:
        generated = []
    captures = ([] if args.no_defaults else default_captures()) + generated + list(args.captures)
    runs = cases(captures, big, not args.no_sockets)

    if args.save:
        with ThreadPoolExecutor(args.jobs) as pool:
            for capture, variant, options in runs:
                pool.submit(run_case, cmd, capture, options, os.path.join(args.save, case_name(capture), variant))
        print(f"{len(runs)} runs of {len(captures)} captures kept in {args.save}")
        return 0

    candidate_dir = os.path.join(args.work, "candidate")
    shutil.rmtree(candidate_dir, ignore_errors=True)
    baseline_dir = args.against
    if baseline_dir is None:
        baseline_dir = os.path.join(args.work, "baseline")
        shutil.rmtree(baseline_dir, ignore_errors=True)

    def compare(capture: str, variant: str, options: list[str]) -> list[str]:
        name = os.path.join(case_name(capture), variant)
        base = os.path.join(baseline_dir, name)
        if args.baseline_cmd:
            run_case(shlex.split(args.baseline_cmd), capture, options, base)
        elif not os.path.isdir(base):
            return [f"{name}: no baseline output in {baseline_dir}"]
        cand = os.path.join(candidate_dir, name)
        run_case(cmd, capture, options, cand)
        problems = compare_dirs(base, cand)
        return [f"DIFFERS {name}", *("    " + problem for problem in problems)] if problems else []

    differing = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for lines in pool.map(lambda run: compare(*run), runs):
            if lines:
                differing += 1
                print("\n".join(lines), flush=True)
    print(f"{len(runs) - differing} of {len(runs)} runs identical ({len(captures)} captures)")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
