#!/usr/bin/env python3
"""Move a hardware folder to the id its own files support (thin wrapper around hwcal.cli.rehome_hardware)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.rehome_hardware import main

if __name__ == "__main__":
    sys.exit(main())
