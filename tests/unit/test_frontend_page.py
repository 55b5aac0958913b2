"""The frontend page without a stack: its logic under Node's test runner, and the static rules
the browser tests rely on (no inline script or style, a label for every field, the CSP, the
Traefik labels that keep /api on the backend). The page in a real browser: tests/e2e/."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tests.support.compose import load_compose

REPO = Path(__file__).resolve().parents[2]
FRONTEND = REPO / "compose" / "frontend"
SITE = FRONTEND / "site"


def test_page_logic_passes_its_node_tests() -> None:
    node = shutil.which("node")
    assert node, "node is missing: run `make bootstrap` (it installs Debian's nodejs)"
    # Explicit files: how `node --test` reads a directory argument changed between versions.
    files = sorted(str(p) for p in (FRONTEND / "tests").glob("*.test.mjs"))
    assert files
    result = subprocess.run(
        [node, "--test", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 10, result.stdout[-2000:]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.styles = 0
        self.style_attrs: list[str] = []
        self.handlers: list[str] = []
        self.fields: list[str] = []
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if tag == "style":
            self.styles += 1
        if "style" in a:
            self.style_attrs.append(tag)
        self.handlers += [f"{tag}.{k}" for k in a if k.startswith("on")]
        if tag in ("input", "textarea", "select") and a.get("type") != "hidden":
            self.fields.append(str(a.get("id")))
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))


def test_page_has_no_inline_script_or_style_and_labels_every_field() -> None:
    page = _Page()
    page.feed((SITE / "index.html").read_text())
    assert page.scripts and all(s.get("src") for s in page.scripts), page.scripts
    assert page.styles == 0 and not page.style_attrs and not page.handlers
    assert page.fields and set(page.fields) <= page.labels, (page.fields, page.labels)


def test_csp_forbids_inline_code_and_other_origins() -> None:
    conf = (FRONTEND / "nginx.conf").read_text()
    (csp,) = re.findall(r'add_header Content-Security-Policy "([^"]+)" always;', conf)
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", (name, directives[name])
    assert directives["form-action"] == "'none'"
    assert "unsafe" not in csp


def test_frontend_routes_only_the_page_and_leaves_api_to_web() -> None:
    services = load_compose(REPO / "docker-compose.ha.yml")["services"]
    frontend = services["frontend"]
    labels = frontend["labels"]
    assert frontend["image"].startswith("${FRONTEND_IMAGE:-nginx:")
    assert frontend["read_only"] is True and frontend["cap_drop"] == ["ALL"]
    assert not str(frontend["user"]).startswith("0")
    for router in ("frontend", "frontend-secure"):
        rule = labels[f"traefik.http.routers.{router}.rule"]
        assert "Path(`/`) || PathPrefix(`/assets/`)" in rule
        assert "/api" not in rule
        # Beats web's catch-all router whose priority is the length of its rule.
        web_rule = services["web"]["labels"]["traefik.http.routers.web.rule"]
        assert int(labels[f"traefik.http.routers.{router}.priority"]) > len(web_rule) + 200
        assert "ratelimit@file" in labels[f"traefik.http.routers.{router}.middlewares"]
    # The API's sticky cookie must not be shadowed by a frontend cookie.
    assert not any(".sticky." in key for key in labels)


def test_cors_is_off_unless_origins_are_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import Settings

    monkeypatch.delenv("CORS_ALLOW_ORIGINS", raising=False)
    assert Settings().cors_origins == []
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", " https://a.test, ,https://b.test ")
    assert Settings().cors_origins == ["https://a.test", "https://b.test"]
    web = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["web"]
    assert web["environment"]["CORS_ALLOW_ORIGINS"] == "${CORS_ALLOW_ORIGINS:-}"
