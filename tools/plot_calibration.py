#!/usr/bin/env python3
"""`hwcal-plot` from a checkout: draw one calibration, with the `plot` extra (hwcal.cli.plot)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.plot import main

sys.exit(main())
