"""raftreg: a fault-tolerant service registry replicated with Raft."""

__version__ = "0.1.0"
