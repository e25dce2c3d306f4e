"""Run a command with the services the test suite uses, started on loopback and stopped by PID.

    python scripts/test_services.py -- pytest -q

Starts a real valkey-server (append-only persistence in a temporary directory) on a free port,
exports WORKSPACE_TEST_VALKEY_ADDR, runs the command, then stops the server whatever happened.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.valkey import ValkeyServer


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: test_services.py -- COMMAND...", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ws-test-valkey-") as directory:
        server = ValkeyServer(Path(directory)).start()
        print(f"valkey-server pid {server.process.pid} on {server.address}", flush=True)  # type: ignore[union-attr]
        try:
            env = {**os.environ, "WORKSPACE_TEST_VALKEY_ADDR": server.address}
            return subprocess.call(args, env=env)
        finally:
            server.stop()
            print(f"valkey-server on {server.address} stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
