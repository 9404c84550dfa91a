"""`make lab` starts JupyterLab, also as root (where it needs --allow-root), and prints its URL."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 45  # JupyterLab is up in a few seconds on an idle machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_make_lab_starts_jupyterlab(tmp_path):
    if shutil.which("make") is None or not (Path(sys.prefix) / "bin" / "jupyter-lab").exists():
        pytest.skip("make or jupyter lab is not installed")
    port = _free_port()
    # STAMP= : use this interpreter's environment as it is (no venv creation or pip install in a test)
    command = ["make", "--no-print-directory", "lab", "STAMP=", f"VENV={sys.prefix}",
               f"LAB_ARGS=--no-browser --port {port} --ServerApp.port_retries=0"]
    environment = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / "lab.log"
    with open(log, "w") as output:
        # a session of its own: the server (make's child) is stopped with make, by this process group's id
        lab = subprocess.Popen(command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _listening(port):
                assert lab.poll() is None, f"make lab exited with {lab.returncode}:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no server on port {port}:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
            deadline = time.monotonic() + 10
            while f"127.0.0.1:{port}/lab" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            os.killpg(lab.pid, signal.SIGTERM)
            try:
                lab.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(lab.pid, signal.SIGKILL)
                lab.wait()
    text = log.read_text()
    assert f"http://127.0.0.1:{port}/lab" in text, text[-3000:]
    assert ("--allow-root" in text) == (os.geteuid() == 0), "--allow-root is added as root, and only as root"
