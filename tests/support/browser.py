"""Headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium) and the chat
page as a person uses it: keyboard only, reading what is on the screen.

Selenium is given both binaries, so it downloads nothing; Chromium's own background traffic is
switched off and its resolver maps every host name but 127.0.0.1 to nothing, so the browser can
reach only the stack's published ports.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.stack import wait_for

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in CI; the page is our own
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
# How long one send may take: the page retries for about 28 s, each attempt bounded by 10 s.
SEND_TIMEOUT_S = 120.0


def start_chromium(width: int = 1280, height: int = 900) -> WebDriver:
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    assert browser and driver, "chromium/chromedriver missing: run `make bootstrap`"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    # The console log, to find Content-Security-Policy violations.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@dataclass(frozen=True)
class Shown:
    """One message as the page shows it."""

    id: str
    role: str
    content: str
    replica: str | None


class ChatPage:
    """The page at `base_url`, operated with the keyboard like a person without a mouse."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    # --- reading the screen --------------------------------------------------------------------
    def js(self, script: str, *args: object) -> object:
        return self.driver.execute_script(script, *args)

    def focused_id(self) -> str:
        return str(self.driver.switch_to.active_element.get_attribute("id") or "")

    def error(self) -> str:
        """The visible error text, '' when none is shown."""
        return str(
            self.js(
                "const e = document.getElementById('error'); return e.hidden ? '' : e.textContent;"
            )
        )

    def status(self) -> str:
        return str(self.js("return document.getElementById('status').textContent;"))

    def retrying(self) -> bool:
        return bool(self.js("return document.body.dataset.retrying === 'true';"))

    def messages(self) -> list[Shown]:
        rows = self.js(
            """return Array.from(
                   document.querySelectorAll('#transcript li.message:not(.pending)'))
                 .map(li => [li.dataset.id, li.dataset.role,
                             li.querySelector('.content').textContent,
                             li.dataset.replica || null]);"""
        )
        return [Shown(*row) for row in rows]  # type: ignore[union-attr]

    def sticky_cookie(self) -> str | None:
        cookie = self.driver.get_cookie("ha_sticky")  # HttpOnly: the page cannot, WebDriver can
        return cookie["value"] if cookie else None

    def console_csp_violations(self) -> list[str]:
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if "Content Security Policy" in entry["message"]
        ]

    # --- acting --------------------------------------------------------------------------------
    def open(self, timeout: float = 30) -> None:
        """Load (or reload) the page once; a failed load is a failure, not retried."""
        self.driver.get(self.base_url + "/")
        try:
            wait_for(
                lambda: self.js("return document.body.dataset.ready === 'true';"),
                timeout,
                "the page's script to run",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; {self.load_report()}") from None

    def load_report(self) -> str:
        """What the browser fetched and logged: why a page did not come up."""
        fetched = self.js(
            "return performance.getEntriesByType('resource').concat("
            "performance.getEntriesByType('navigation'))"
            ".map(e => [e.name, e.responseStatus, Math.round(e.duration)]);"
        )
        return f"fetched {fetched}; console {self.driver.get_log('browser')}"

    def type_into_focused(self, text: str) -> None:
        self.driver.switch_to.active_element.send_keys(text)

    def sign_in(self, token: str) -> None:
        assert self.focused_id() == "token", "the token field should have the focus on load"
        self.type_into_focused(token + Keys.ENTER)

    def signed_in(self, timeout: float = 30) -> None:
        wait_for(lambda: self.focused_id() in ("new-conversation", "message"), timeout, "sign-in")

    def start_conversation(self) -> None:
        wait_for(lambda: self.focused_id() == "new-conversation", 30, "the New button focused")
        self.type_into_focused(Keys.ENTER)
        wait_for(lambda: self.focused_id() == "message", 60, "a new conversation")

    def send(self, text: str) -> None:
        """Type a message and press Enter; returns at once (see `wait_sent`)."""
        assert self.focused_id() == "message", f"focus is on {self.focused_id()!r}"
        self.type_into_focused(text)
        self.type_into_focused(Keys.ENTER)

    def wait_sent(self, replies: int, timeout: float = SEND_TIMEOUT_S) -> None:
        """Wait until `replies` assistant messages are shown and nothing is pending."""
        wait_for(
            lambda: (
                self.js(
                    "return document.querySelectorAll('#transcript li.assistant').length"
                    " === arguments[0] && !document.querySelector('#transcript li.pending');",
                    replies,
                )
                or self.error()
            ),
            timeout,
            f"reply #{replies}",
            interval=0.1,
        )
        assert not self.error(), f"the page shows an error: {self.error()}"

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
