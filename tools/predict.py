#!/usr/bin/env python3
"""`hwcal-predict` from a checkout: predict an operation's time on a calibrated device (hwcal.cli.predict)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.predict import main

sys.exit(main())
