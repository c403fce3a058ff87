#!/usr/bin/env python3
"""`hwcal-migrate` from a checkout: import the original registry (hwcal.cli.migrate_calibrations)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.migrate_calibrations import main

sys.exit(main())
