#!/usr/bin/env python3
"""`hwcal-site` from a checkout: the registry as a static site (hwcal.cli.site)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.site import main

sys.exit(main())
