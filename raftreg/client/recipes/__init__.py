"""Recipes over the client's calls (shells: they run watches and may do I/O): ``config``."""
