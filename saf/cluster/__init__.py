"""The declared cluster: what `saf up` keeps running on the nodes (docs/services.md)."""
