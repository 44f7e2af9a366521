"""The command line for people: --help in sections, --threshold NAME=VALUE."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner, Result

from tcpflow_audit.cli import main
from tcpflow_audit.detectors.thresholds import Thresholds

# the environment of a plain run: no width and no colour preference from the one running the tests
PLAIN_ENV = {"COLUMNS": None, "NO_COLOR": None}


def invoke(*args: object, env: dict[str, str | None] | None = None, status: int = 0, **extra) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args], env={**PLAIN_ENV, **(env or {})}, **extra)
    assert result.exit_code == status, (result.output, result.exception)
    return result


def show_config(*args: object) -> dict:
    return json.loads(invoke(*args, "--show-config").stdout)


# ------------------------------------------------------------------------------ --help
def test_help_has_sections_and_fits_two_screens():
    text = invoke("--help", terminal_width=100).stdout
    lines = text.splitlines()
    assert len(lines) <= 60, len(lines)
    assert max(len(line) for line in lines) <= 100
    headings = [line for line in lines if re.fullmatch(r"[A-Z][a-z]+:", line)]
    assert headings == ["Input:", "Output:", "Filters:", "Engine:", "Findings:", "Other:"]
    assert "--threshold NAME=VALUE" in text
    # one line per threshold is gone from --help (the options still work: see below)
    for name in Thresholds().as_dict():
        assert "--" + name.replace("_", "-") not in text
    # the help texts of every section start in one column
    starts = {m.end() - 1 for m in (re.match(r"  -\S*(?: \S+)* {2,}\S", line) for line in lines) if m}
    assert len(starts) == 1, starts


# ------------------------------------------------------------------------------ --threshold
def test_threshold_sets_a_value_and_the_old_option_gives_the_same_settings():
    default = show_config()
    assert default["thresholds"] == Thresholds().as_dict()
    by_threshold = show_config("--threshold", "close_wait_s=120", "--threshold", "syn-flood-rate=500")
    by_options = show_config("--close-wait-s", "120", "--syn-flood-rate", "500")
    assert by_threshold == by_options != default
    assert by_threshold["thresholds"]["close_wait_s"] == 120.0
    assert by_threshold["thresholds"]["syn_flood_rate"] == 500
    # given twice, the last one counts; the TOML file is overridden by the command line
    assert show_config("--threshold", "syn_flood_rate=5", "--threshold", "syn_flood_rate=6")["thresholds"][
        "syn_flood_rate"] == 6


def test_threshold_file_and_command_line(tmp_path):
    config = tmp_path / "audit.toml"
    config.write_text("[thresholds]\nsyn_flood_rate = 300\nclose_wait_s = 30\n")
    settings = show_config("--config", config, "--threshold", "syn_flood_rate=400")["thresholds"]
    assert (settings["syn_flood_rate"], settings["close_wait_s"]) == (400, 30.0)


@pytest.mark.parametrize("setting, message", [
    ("bogus_knob=1", "unknown threshold 'bogus_knob' (known: handshake_timeout_s, "),
    ("syn_flood_rate=many", "threshold syn_flood_rate must be a number, got 'many'"),
    ("syn_flood_rate=1.5", "threshold syn_flood_rate must be an integer, got 1.5"),
    ("close_wait_s=-1", "threshold close_wait_s must not be negative, got -1"),
    ("close_wait_s=nan", "threshold close_wait_s must be a number, got nan"),
    ("close_wait_s", "expected NAME=VALUE, got 'close_wait_s'"),
])
def test_bad_threshold_is_a_usage_error(setting, message):
    result = invoke("--threshold", setting, "--show-config", status=2)
    assert "Invalid value for '--threshold'" in result.output
    assert message in result.output
    assert "Traceback" not in result.output
    if "unknown" in message:   # the error lists every valid name
        assert all(name in result.output for name in Thresholds().as_dict())


def test_old_threshold_option_is_checked_the_same_way():
    result = invoke("--syn-flood-rate", "-3", "--show-config", status=2)
    assert "threshold syn_flood_rate must not be negative, got -3" in result.output
