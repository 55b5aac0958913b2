"""The documentation stays findable and true to its sources: the README front page stays short,
every relative link in it and in docs/ leads to a file, and the benchmark page is exactly what
scripts/bench_page.py makes from the committed result file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import bench_page
import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_MAX_BYTES = 8192
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def relative_links(page: Path) -> list[str]:
    text = CODE.sub("", page.read_text())
    targets = (m.group(1) for m in LINK.finditer(text))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_the_readme_stays_under_8_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move depth to docs/<topic>.md"


def test_the_readme_names_the_two_commands_and_links_the_docs() -> None:
    text = README.read_text()
    assert "make up-ha" in text and "make test" in text
    assert "## Documentation" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_in_the_repository(page: Path) -> None:
    links = relative_links(page)
    for link in links:
        target = (page.parent / link.split("#", 1)[0]).resolve()
        assert target.is_relative_to(REPO), f"{page.name}: {link} leaves the repository"
        assert target.exists(), f"{page.name}: {link} points to nothing"


def test_the_link_check_sees_links() -> None:
    # Guards the regex: a check that finds no link would pass on anything.
    assert "docs/failover.md" in relative_links(README)
    assert "bench/latest.json" in relative_links(REPO / "docs" / "benchmarks.md")


def test_the_benchmark_page_is_generated_from_the_latest_result() -> None:
    result = json.loads(bench_page.RESULT.read_text())
    notes = bench_page.NOTES.read_text() if bench_page.NOTES.exists() else None
    expected = bench_page.render(result, notes)
    assert bench_page.PAGE.read_text() == expected, "docs/benchmarks.md is stale: make bench-docs"
    assert bench_page.main(["--check"]) == 0


def test_the_benchmark_page_shows_the_numbers_of_its_result() -> None:
    result = json.loads(bench_page.RESULT.read_text())
    page = bench_page.render(result)
    hop = result["throughput"]["summary"]["whoami"]["hop"]["loss_percent"]
    p50 = result["latency"]["chat_post"]["summary"]["latency_ms"]["p50"]
    assert f"{hop:g} %" in page
    assert f"{p50:g} /" in page
    assert result["versions"]["traefik"] in page
    changed = json.loads(json.dumps(result))
    changed["latency"]["chat_post"]["summary"]["latency_ms"]["p50"] = 123.25
    assert "123.25" in bench_page.render(changed)
