"""Node screen source: a two-socket Xeon E5-2695 v3 in Cluster-on-Die mode (4 NUMA nodes)."""

from tests.snapshot_apps._common import cockpit

app = cockpit("node-numa-2s-xeon-e5-2695v3.jsonl")
