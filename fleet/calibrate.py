#!/usr/bin/env python3
"""From a checkout: run one fleet runner's calibrations in sequence (hwcal.cli.fleet_calibrate)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.fleet_calibrate import main

sys.exit(main())
