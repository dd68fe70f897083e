"""One running node: Raft glue plus the state, leases, checks, watches and metrics around it."""
