"""The lab: a raftreg cluster on a real network of namespaces (README "Testing on a real network")."""
