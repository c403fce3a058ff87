#!/usr/bin/env python3
"""`hwcal-validate` from a checkout: check a registry (hwcal.cli.validate_registry)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.validate_registry import main

sys.exit(main())
