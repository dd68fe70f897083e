"""The paths of the node-to-node and debug endpoints (owned here, by the HTTP layer).

Every path under ``INTERNAL`` or ``DEBUG`` is served only to requests signed with the cluster
secret (``raftreg.signing``); the debug ones exist only when a node runs with
``RAFTREG_DEBUG_ENDPOINTS=1``.
"""

from __future__ import annotations

INTERNAL = "/v1/internal/"
FORWARD_HEARTBEATS = INTERNAL + "heartbeats"
LEASE_DIGEST = INTERNAL + "lease-digest"

DEBUG = "/v1/debug/"
DEBUG_RESYNC = DEBUG + "resync"
DEBUG_SNAPSHOT = DEBUG + "snapshot"
DEBUG_PARTITION = DEBUG + "partition"
DEBUG_WEDGE = DEBUG + "wedge"
DEBUG_DIGEST = DEBUG + "digest"

CLUSTER = "/v1/cluster"

UI = "/ui/"  # the web UI's files (``raftreg.http.ui``); ``/`` and ``/ui`` redirect here
