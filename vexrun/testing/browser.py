"""A real headless browser for the pages vexrun writes (``vexrun report``, ``vexrun inspect --html``).

Debian's ``chromium`` (``apt-get install -y chromium``), run as a user would open a file: ``--dump-dom`` gives
the document after its scripts ran, ``--screenshot`` a PNG. Each call starts a fresh browser with a throw-away
profile; nothing is fetched from the network. A missing browser is an error (:class:`BrowserMissing`), never a
reason to skip: a test of a page that was never drawn proves nothing.

    page = load("report.html")
    assert page.rendered == "1" and page.texts()["card:written"] == "1,234"
    shot = screenshot("report.html", tmp_path / "report.png")
    page, shot = capture("report.html", tmp_path / "report.png")   # both at once
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["BrowserMissing", "Page", "capture", "find_chromium", "load", "screenshot"]

_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class BrowserMissing(RuntimeError):
    """No Chromium on this machine."""


def find_chromium() -> str:
    """The browser to run: ``$VEXRUN_CHROMIUM``, else the first of chromium / google-chrome on the PATH."""
    configured = os.environ.get("VEXRUN_CHROMIUM")
    if configured:
        return configured
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserMissing(
        "no chromium on this machine: install it with `apt-get update && apt-get install -y chromium` "
        "(make test does), or point VEXRUN_CHROMIUM at a Chromium or Chrome binary"
    )


def _url(target: str | os.PathLike[str], fragment: str | None) -> str:
    text = os.fspath(target)
    url = text if "://" in text else Path(text).resolve().as_uri()
    return url + (f"#{fragment}" if fragment else "")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="vexrun-chromium-") as profile:
        cmd = [
            find_chromium(),
            "--headless",
            "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ]
        env = {**os.environ, "HOME": profile}
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"chromium exited with {proc.returncode}: {err}")
    return proc


@dataclass
class Page:
    """A document as the browser left it after its scripts ran."""

    url: str
    dom: str
    _texts: dict[str, str] | None = field(default=None, repr=False)

    def texts(self, attr: str = "data-k") -> dict[str, str]:
        """The text content of every element carrying ``attr``, by the attribute's value (the last wins)."""
        if attr != "data-k" or self._texts is None:
            parser = _Collector(attr)
            parser.feed(self.dom)
            parser.close()
            if attr != "data-k":
                return parser.found
            self._texts = parser.found
        return self._texts

    def element(self, element_id: str) -> dict[str, str] | None:
        """The attributes of the element with this id (None if there is none)."""
        parser = _Collector("id")
        parser.feed(self.dom)
        parser.close()
        return parser.attrs.get(element_id)

    @property
    def rendered(self) -> str:
        """The ``data-rendered`` attribute of ``<body>``: vexrun's pages set it to 1 once drawn."""
        body = _Collector("data-rendered")
        body.feed(self.dom)
        body.close()
        return next(iter(body.attrs), "")


class _Collector(HTMLParser):
    def __init__(self, attr: str) -> None:
        super().__init__(convert_charrefs=True)
        self.attr = attr
        self.found: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str]] = {}
        self.stack: list[str] = []
        self.open: list[tuple[str, int, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        key = values.get(self.attr)
        if key is not None:
            self.attrs[key] = values
        if tag in _VOID:
            if key is not None:
                self.found[key] = ""
            return
        self.stack.append(tag)
        if key is not None:
            self.open.append((key, len(self.stack), []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        key = values.get(self.attr)
        if key is not None:
            self.attrs[key] = values
            self.found[key] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.stack:
            return
        while self.stack:
            top = self.stack.pop()
            while self.open and self.open[-1][1] > len(self.stack):
                key, _, parts = self.open.pop()
                self.found[key] = "".join(parts)
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, _, parts in self.open:
            parts.append(data)


def load(target: str | os.PathLike[str], *, fragment: str | None = None, timeout: float = 60) -> Page:
    """Open ``target`` (a file or URL) in headless Chromium and return the DOM after its scripts ran."""
    url = _url(target, fragment)
    proc = _run(["--dump-dom", url], timeout)
    return Page(url, proc.stdout.decode("utf-8", "replace"))


def capture(
    target: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    size: tuple[int, int] = (1280, 900),
    fragment: str | None = None,
    timeout: float = 60,
) -> tuple[Page, Path]:
    """:func:`load` and :func:`screenshot` of the same page, the two browsers started side by side."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        shot = pool.submit(screenshot, target, png, size=size, fragment=fragment, timeout=timeout)
        page = load(target, fragment=fragment, timeout=timeout)
        return page, shot.result()


def screenshot(
    target: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    size: tuple[int, int] = (1280, 900),
    fragment: str | None = None,
    timeout: float = 60,
) -> Path:
    """A PNG of ``target`` as a ``size`` window shows it; returns the path of the PNG."""
    png = Path(out).resolve()
    _run([f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", _url(target, fragment)], timeout)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png
