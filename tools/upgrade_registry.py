#!/usr/bin/env python3
"""Upgrade a registry's calibrations to the current format in place (thin wrapper around hwcal.cli.upgrade_registry)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.upgrade_registry import main

if __name__ == "__main__":
    sys.exit(main())
