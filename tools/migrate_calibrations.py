#!/usr/bin/env python3
"""Import the original registry into an hwcal registry (thin wrapper around hwcal.cli.migrate_calibrations)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.migrate_calibrations import main

if __name__ == "__main__":
    sys.exit(main())
