#!/usr/bin/env python3
"""Build a synthetic fleet registry for scale checks: N calibrations over H hardware ids, each a copy of
one real calibration with its key and date rewritten (never touches registry/; give a temp folder).

    python tools/make_synthetic_registry.py /tmp/fleet --calibrations 5000 --hardware 50
    time hwcal-list --registry /tmp/fleet > /dev/null
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
# Any real CPU calibration of the checkout's registry, and the spec beside it.
SOURCE = next(iter(sorted((REPO / "registry" / "cpu").glob("*/calibrations/*_numpy.json"))), Path("missing.json"))
SPEC = SOURCE.parent.parent / "spec.json"


def build(dest: Path, calibrations: int, hardware: int, source: Path = SOURCE, spec: Path = SPEC) -> list[Path]:
    """Write the registry; returns the calibration paths (the writer's own format, not through the writer:
    this is a fixture generator, and the files are checked by whoever lists them)."""
    from hwcal.naming import CalibrationKey, calibration_path
    from hwcal.registry.fsio import atomic_write_text
    from hwcal.registry.reader import read_json

    base = read_json(source)
    base_spec = read_json(spec)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    written = []
    per_hw = -(-calibrations // hardware)
    for i in range(calibrations):
        hw, j = divmod(i, per_hw)
        hardware_id = f"synth_cpu_{hw:03d}"
        key = CalibrationKey("cpu", hardware_id, f"P{j % 20}", 1000 + j // 20, "numpy")
        doc = copy.deepcopy(base)
        doc["key"] = key.as_dict()
        meta = doc["metadata"]
        meta.update(hardware_id=hardware_id, power_mode=key.power_mode, freq_mhz=key.freq_mhz,
                    calibration_date=(start + timedelta(minutes=i)).isoformat())
        path = calibration_path(dest, key)
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
        written.append(path)
        spec_file = path.parent.parent / "spec.json"
        if not spec_file.exists():
            atomic_write_text(spec_file, json.dumps({**base_spec, "id": hardware_id}, indent=2) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_synthetic_registry.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--calibrations", type=int, default=5000, metavar="N", help="Default: 5000")
    parser.add_argument("--hardware", type=int, default=50, metavar="H", help="Default: 50")
    args = parser.parse_args(argv)
    if args.dest.exists():
        parser.error(f"{args.dest} exists; give a new folder")
    if not 0 < args.hardware <= args.calibrations <= 100_000:
        parser.error("need 0 < --hardware <= --calibrations <= 100000")
    build(args.dest, args.calibrations, args.hardware)
    print(f"{args.dest}: {args.calibrations} calibrations over {args.hardware} hardware ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())
