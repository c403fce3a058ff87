"""The repository's pytest configuration. The hwcal plugin itself is registered by the package's
``pytest11`` entry point (``pip install -e .``), so it is not listed here: listing it too would load it twice."""
