"""The aiohttp API: thin handlers over raftreg.node, one error-to-status table."""
