"""The Ray cluster: the node program (node_probe) and its facts, each node's `ray start`
(command), the dashboard's HTTP API through an SSH forward (dashboard), the cluster's status
and jobs (status, jobs)."""
