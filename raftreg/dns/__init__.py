"""The DNS interface: Consul's service and node names over UDP and TCP, answered from the node
facade (``catalog``), with dnspython's message API for the wire format (``wire``, ``answers``)."""
