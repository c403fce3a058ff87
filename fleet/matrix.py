#!/usr/bin/env python3
"""From a checkout, standard library only: the fleet's GitHub Actions matrix (hwcal.cli.fleet_matrix)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.fleet_matrix import main

sys.exit(main())
