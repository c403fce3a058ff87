#!/usr/bin/env python3
"""Predict an operation's time on a calibrated device (thin wrapper around hwcal.cli.predict)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
