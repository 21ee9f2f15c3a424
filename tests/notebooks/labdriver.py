"""Helpers of the JupyterLab browser test: a private JupyterLab server and a headless Chromium.

Only the standard library is imported at module level, so collecting the test works in an
environment without selenium (the test then skips, see ``browser_or_skip_reason``).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")

# Lab settings for a quiet, deterministic UI: no news / update toasts; every cell attached to the
# DOM (no virtual scrolling), so outputs far down the notebook can be inspected.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _first_executable(candidates, env_var: str) -> str | None:
    override = os.environ.get(env_var)
    for c in ([override] if override else []) + list(candidates):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def find_chromium() -> str | None:
    """The Debian Chromium binary (``GANKD_CHROMIUM`` overrides), or None."""
    return _first_executable(CHROMIUM_CANDIDATES, "GANKD_CHROMIUM")


def find_chromedriver() -> str | None:
    """Debian's chromedriver, matched to its Chromium (``GANKD_CHROMEDRIVER`` overrides), or None."""
    return _first_executable(CHROMEDRIVER_CANDIDATES, "GANKD_CHROMEDRIVER")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_parameters(src: Path, dst: Path, **values) -> Path:
    """Copy notebook ``src`` to ``dst`` with assignments in its ``parameters`` cell replaced."""
    nb = json.loads(Path(src).read_text())
    cell = next(c for c in nb["cells"]
                if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", []))
    lines = "".join(cell["source"]).splitlines(keepends=True)
    todo = dict(values)
    for i, line in enumerate(lines):
        name = line.split("=", 1)[0].strip()
        if "=" in line and name in todo:
            comment = line[line.index("#"):].rstrip("\n") if "#" in line else ""
            lines[i] = f"{name} = {todo.pop(name)!r}" + (f"   {comment}" if comment else "") + "\n"
    if todo:
        raise KeyError(f"{src.name}: no assignment to {sorted(todo)} in its parameters cell")
    cell["source"] = lines
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1) + "\n")
    return dst


class LabServer:
    """``python -m jupyterlab`` on a free loopback port, with a token, in a private root folder.

    Every Jupyter / IPython settings folder points into ``base`` (no user state leaks in),
    ``env`` entries are added to the server's (and so the kernels') environment, and a key
    mapped to None is removed from it.
    """

    def __init__(self, base: Path, env: dict[str, str | None] | None = None, start_timeout: float = 120):
        self.base = Path(base)
        self.root = self.base / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = os.urandom(16).hex()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "jupyterlab.log"
        self.start_timeout = start_timeout
        self.env = dict(os.environ)
        for name in ("config", "data", "runtime", "ipython", "lab-settings", "lab-workspaces"):
            (self.base / name).mkdir(exist_ok=True)
        self.env.update(JUPYTER_CONFIG_DIR=str(self.base / "config"), JUPYTER_DATA_DIR=str(self.base / "data"),
                        JUPYTER_RUNTIME_DIR=str(self.base / "runtime"), IPYTHONDIR=str(self.base / "ipython"),
                        JUPYTERLAB_SETTINGS_DIR=str(self.base / "lab-settings"),
                        JUPYTERLAB_WORKSPACES_DIR=str(self.base / "lab-workspaces"),
                        JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
        for k, v in (env or {}).items():
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = v
        for rel, value in LAB_SETTINGS.items():
            p = self.base / "lab-settings" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(value))
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> LabServer:
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.open_browser=False",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.api("status", timeout=5).get("started"):
                    return self
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer on {self.url} in {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def api(self, path: str, timeout: float = 10):
        req = urllib.request.Request(f"{self.url}/api/{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def lab_url(self, rel_path: str) -> str:
        return f"{self.url}/lab/tree/{rel_path}?token={self.token}"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (the server shuts its kernels down), then SIGKILL to the whole process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # kernels left behind (a server that ignored SIGTERM, or died first)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self._log:
            self._log.close()
        self.proc = None


def chrome(chromium: str, chromedriver: str, profile_dir: Path, log_path: Path | None = None):
    """A headless Chromium under selenium, from the given binaries only (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile_dir}"):
        opts.add_argument(flag)
    service = Service(executable_path=chromedriver, log_output=str(log_path) if log_path else subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(90)
    driver.set_script_timeout(30)
    return driver
