#!/usr/bin/env bash
# Benchmark tcpflow-audit against tshark and tcptrace on generated captures.
# Usage: bash bench/run_bench.sh        (see bench/README.md; env: BENCH_SIZES, BENCH_RUNS,
#        BENCH_FLOOD, BENCH_SEED, BENCH_TOOLS, BENCH_WORK, TCPFLOW_AUDIT)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v capinfos >/dev/null 2>&1 || need+=(tshark)
command -v tcptrace >/dev/null 2>&1 || need+=(tcptrace)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing: ${need[*]}" >&2
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2068
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${need[@]}
fi

# Python with numpy (the project's venv has it through pandas); create it if missing.
if [ ! -x .venv/bin/python ]; then
    make venv
fi

exec .venv/bin/python bench/run_bench.py "$@"
