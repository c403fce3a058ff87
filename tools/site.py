#!/usr/bin/env python3
"""Build the registry as a static site (thin wrapper around hwcal.cli.site; pictures need the `plot` extra)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.site import main

if __name__ == "__main__":
    sys.exit(main())
