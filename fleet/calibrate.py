#!/usr/bin/env python3
"""Thin wrapper: the logic lives in ``hwcal.cli.fleet_calibrate`` (see its docstring for usage)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.fleet_calibrate import main

if __name__ == "__main__":
    sys.exit(main())
