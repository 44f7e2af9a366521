"""The documentation: its links lead somewhere, the README stays short, and the manual covers the options.

* Every relative Markdown link in README.md, docs/*.md, bench/README.md and sample_pcaps/README.md
  names a file that exists and, when it has an anchor, a heading of that Markdown file (GitHub's
  heading slugs).
* README.md is at most 200 lines and links every page of docs/.
* Every command-line option is named in docs/cli.md, and every engine setting is listed there with
  its default (the detector thresholds are checked against docs/anomalies.md in tests/test_detectors.py).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest

from tcpflow_audit.cli import main
from tcpflow_audit.config import EngineConfig
from tcpflow_audit.detectors.thresholds import Thresholds

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(
    [ROOT / "README.md", ROOT / "bench" / "README.md", ROOT / "sample_pcaps" / "README.md", *DOCS.glob("*.md")]
)

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(text: str) -> str:
    """The text without fenced code blocks (their lines are left empty, so line numbers stay)."""
    lines = []
    in_fence = False
    for line in text.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
            lines.append("")
        else:
            lines.append("" if in_fence else line)
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation dropped
    (letters, digits, '_' and '-' stay), spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)  # a code span keeps its content
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file; repeated headings get -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose(path.read_text(encoding="utf-8")).split("\n"):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link to a file of the repository or an anchor, outside code."""
    text = prose(path.read_text(encoding="utf-8"))
    text = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)  # (line numbers stay)
    links = []
    for match in LINK.finditer(text):
        target = match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:...
            continue
        links.append((text.count("\n", 0, match.start()) + 1, target))
    return links


def test_the_pages_exist():
    names = {p.name for p in DOCS.glob("*.md")}
    assert {
        "cli.md",
        "flows.md",
        "anomalies.md",
        "reading.md",
        "performance.md",
        "architecture.md",
        "development.md",
    } <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for line, target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{page.name}:{line}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{page.name}:{line}: {target}: no heading with this anchor in {dest.name}")
        elif not dest.is_relative_to(ROOT):
            broken.append(f"{page.name}:{line}: {target}: outside the repository")
    assert not broken, "\n".join(broken)


def test_link_checker_sees_broken_links(tmp_path: Path):
    # the checker itself: a missing file and a missing anchor are found, code is not read as links
    (tmp_path / "other.md").write_text("# Some `code` heading (x, y)\n\n## Repeat\n\n## Repeat\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[a](other.md#some-code-heading-x-y) [b](other.md#repeat-1) [c](missing.md)\n"
        "`[d](nowhere.md)`\n```\n[e](nowhere.md)\n```\n[f](https://example.org/x.md)\n"
    )
    assert relative_links(page) == [(1, "other.md#some-code-heading-x-y"), (1, "other.md#repeat-1"), (1, "missing.md")]
    assert anchors(tmp_path / "other.md") == {"some-code-heading-x-y", "repeat", "repeat-1"}


def test_readme_is_short_and_links_every_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    targets = {target.partition("#")[0] for _, target in relative_links(ROOT / "README.md")}
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in targets, page.name


def test_every_option_is_in_the_cli_page():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    thresholds = {field.name for field in dataclasses.fields(Thresholds)}
    missing = []
    for param in main.params:
        if not isinstance(param, click.Option) or param.name in thresholds:
            continue
        names = [opt for opt in param.opts + param.secondary_opts if opt.startswith("--")]
        if not any(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(name), text) for name in names):
            missing.append(names[0])
    assert not missing, missing


def test_every_engine_setting_is_in_the_cli_page_with_its_default():
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for field in dataclasses.fields(EngineConfig):
        default = field.default
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert re.search(r"`%s`[^\n]*`%s`" % (field.name, re.escape(shown)), text), field.name
