#!/usr/bin/env python3
"""Validate an hwcal registry against the schemas and naming rules (thin wrapper around hwcal.cli.validate_registry)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.validate_registry import main

if __name__ == "__main__":
    sys.exit(main())
