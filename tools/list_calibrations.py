#!/usr/bin/env python3
"""`hwcal-list` from a checkout: list the calibrations in an hwcal registry (hwcal.cli.list_calibrations)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.list_calibrations import main

sys.exit(main())
