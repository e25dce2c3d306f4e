"""Which `/dev/nvidia*` nodes a sandbox may see: those of the GPUs in the replica's
`CUDA_VISIBLE_DEVICES`, plus the driver's control nodes; none when it is unset or empty.

CUDA numbers the visible devices in PCI bus order; the driver names each device node by its minor
number, which `/proc/driver/nvidia/gpus/<bus id>/information` gives together with the GPU's UUID.
Only GPUs whose node exists in this container count (a pod sees the node-wide procfs but only
its own device nodes). Without that procfs (no driver, or stand-ins in tests) index N is minor N.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
_MINOR = re.compile(r"^Device Minor:\s*(\d+)\s*$", re.MULTILINE)
_UUID = re.compile(r"^GPU UUID:\s*(\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Gpu:
    bus_id: str
    minor: int
    uuid: str


def _driver_gpus(proc_root: Path, dev_root: Path) -> list[Gpu] | None:
    if not proc_root.is_dir():
        return None
    gpus: list[Gpu] = []
    for entry in sorted(proc_root.iterdir(), key=lambda path: path.name.lower()):
        try:
            text = (entry / "information").read_text(errors="replace")
        except OSError:
            continue
        minor = _MINOR.search(text)
        uuid = _UUID.search(text)
        if minor and (dev_root / f"nvidia{minor.group(1)}").exists():
            gpus.append(Gpu(entry.name.lower(), int(minor.group(1)), uuid.group(1) if uuid else ""))
    return gpus


def device_nodes(visible: str | None, dev_root: Path, proc_root: Path) -> list[Path]:
    """Device nodes for `CUDA_VISIBLE_DEVICES=visible` (indices or GPU UUIDs, comma-separated)."""
    if not visible or not visible.strip():
        return []
    wanted = [item.strip() for item in visible.split(",") if item.strip()]
    gpus = _driver_gpus(proc_root, dev_root)
    minors: list[int] = []
    for item in wanted:
        if gpus is not None:
            match = next((g for g in gpus if item in (g.uuid, g.uuid.removeprefix("GPU-"))), None)
            if match is None and item.isdigit() and int(item) < len(gpus):
                match = gpus[int(item)]
            if match is not None:
                minors.append(match.minor)
        elif item.isdigit():
            minors.append(int(item))
    nodes = [dev_root / f"nvidia{minor}" for minor in sorted(set(minors))]
    nodes = [node for node in nodes if node.exists()]
    if nodes:
        nodes += [dev_root / name for name in CONTROL_NODES if (dev_root / name).exists()]
    return nodes
