"""Loads the hwcal calibration plugin for the whole repository."""

pytest_plugins = ["hwcal.plugin"]
