#!/usr/bin/env python3
"""Merge calibrations from many runners into a registry (thin wrapper around hwcal.cli.merge_calibrations)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.merge_calibrations import main

if __name__ == "__main__":
    sys.exit(main())
