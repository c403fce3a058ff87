"""The package version, in the lowest module: every stage that records it imports it from here."""

__version__ = "0.1.0"
