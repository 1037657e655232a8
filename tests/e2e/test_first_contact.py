"""`registry serve` as a newcomer first runs it: a port that is taken is said plainly before anything starts."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from support import subprocess_env


def test_serve_on_a_port_already_taken_says_so_and_starts_nothing() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="registry-e2e-port-")) / "var"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "registry.cli", "serve", "--port", str(port),
                                 "--data-dir", str(data_dir)],
                                capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr and "--port" in result.stderr
    assert "is serving" not in result.stdout and "Traceback" not in result.stderr
    assert not data_dir.exists()  # no cluster initialised, no keys generated, nothing started
