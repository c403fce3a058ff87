#!/usr/bin/env python3
"""Leave-one-out validation of the predictions (thin wrapper around hwcal.cli.validate_predictions)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwcal.cli.validate_predictions import main

if __name__ == "__main__":
    sys.exit(main())
