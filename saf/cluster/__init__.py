"""The cluster as one declared whole: what `saf up` keeps running on the nodes (services under
the node's init system, docs/services.md) and where models are placed by memory."""
