"""Backup and restore: the snapshot file format (``archive``), the restorable part of the state
(``payload``) and the seeding of fresh data directories (``raftreg.raft.seed``)."""
