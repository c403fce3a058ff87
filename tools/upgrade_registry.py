#!/usr/bin/env python3
"""`hwcal-upgrade` from a checkout: upgrade a registry in place (hwcal.cli.upgrade_registry)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from hwcal.cli.upgrade_registry import main

sys.exit(main())
