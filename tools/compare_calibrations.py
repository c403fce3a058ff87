#!/usr/bin/env python3
"""`hwcal-compare` from a checkout: compare two calibrations (hwcal.cli.compare_calibrations)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.compare_calibrations import main

sys.exit(main())
