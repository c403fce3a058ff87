#!/usr/bin/env python3
"""Draw one calibration as PNG and SVG (thin wrapper around hwcal.cli.plot; needs the `plot` extra)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.plot import main

if __name__ == "__main__":
    sys.exit(main())
