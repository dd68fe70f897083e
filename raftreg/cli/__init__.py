"""The ``raftreg`` command line."""
