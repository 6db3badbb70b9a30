"""Start ``streamlit run app.py`` on a free loopback port for browser tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_log(url: str) -> Path:
    """The log file of the server :func:`streamlit_app` started at ``url`` (written when tests/artifacts exists)."""
    port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    return ROOT / "tests" / "artifacts" / f"streamlit-{port}.log"


@contextlib.contextmanager
def streamlit_app(env: dict[str, str] | None = None, timeout: float = 90.0, base_path: str = ""):
    """Yield the base URL of a running app (``http://127.0.0.1:<port>[/<base_path>]``); the server is stopped
    afterwards. ``base_path`` sets ``server.baseUrlPath``, as behind a reverse proxy."""
    port = free_port()
    log = (
        open(server_log(f"http://127.0.0.1:{port}"), "w")
        if (ROOT / "tests" / "artifacts").is_dir()
        else subprocess.DEVNULL
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
            "--server.baseUrlPath",
            base_path,
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}" + (f"/{base_path.strip('/')}" if base_path.strip("/") else "")
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise TimeoutError("streamlit did not become healthy")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def block_internet(page, base_url: str) -> list[str]:
    """Abort every request that does not go to the app's own server; returns the blocked URLs."""
    blocked: list[str] = []

    def handler(route):
        u = route.request.url
        if u.startswith(base_url) or u.startswith("data:") or u.startswith("blob:") or u.startswith("about:"):
            route.continue_()
        else:
            blocked.append(u)
            route.abort()

    page.route("**/*", handler)
    return blocked
