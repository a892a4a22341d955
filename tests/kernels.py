"""A real Jupyter kernel (ipykernel) of this Python, driven through jupyter_client: cells in, outputs out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: Runs each argument as a cell in a real Jupyter kernel of this Python; prints each cell's outputs (JSON).
KERNEL_DRIVER = """
import json, sys
from jupyter_client.manager import start_new_kernel
km, kc = start_new_kernel(kernel_name="satchel-test", startup_timeout=300)
try:
    cells = []
    for code in sys.argv[1:]:
        msg_id, outputs = kc.execute(code), []
        while True:
            msg = kc.get_iopub_msg(timeout=600)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
                outputs.append(msg["content"])
        cells.append(outputs)
    print(json.dumps(cells))
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
"""


def run_cells(cells: list[str], jupyter_dir: Path, *, env: dict[str, str] | None = None) -> list[list[dict]]:
    """Run `cells` in order in a fresh kernel; each cell's outputs (stream, display, result, error)."""
    spec = jupyter_dir / "kernels" / "satchel-test"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "satchel", "language": "python"})
    )
    proc = subprocess.run(
        [sys.executable, "-c", KERNEL_DRIVER, *cells],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {}), "JUPYTER_PATH": str(jupyter_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
