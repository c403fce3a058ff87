#!/usr/bin/env python3
"""`hwcal-validate-predictions` from a checkout: leave-one-out check (hwcal.cli.validate_predictions)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.validate_predictions import main

sys.exit(main())
