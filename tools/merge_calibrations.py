#!/usr/bin/env python3
"""`hwcal-merge` from a checkout: file many runners' calibrations (hwcal.cli.merge_calibrations)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.merge_calibrations import main

sys.exit(main())
