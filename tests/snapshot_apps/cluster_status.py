"""Cluster: every verdict of `saf status` on the demo nodes, from a fixed view."""

from tests.snapshot_apps._cluster import make_cluster_app

app = make_cluster_app()
