#!/usr/bin/env python3
"""`hwcal-rehome` from a checkout: move a hardware folder (hwcal.cli.rehome_hardware)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.rehome_hardware import main

sys.exit(main())
