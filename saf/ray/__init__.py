"""The Ray cluster: the node program (node_probe) and its facts, each node's `ray start`
(command), the dashboard's HTTP API through an SSH forward (dashboard), the cluster's status
and jobs (status, jobs).

Ray is started and stopped by recipe steps, not here: to follow the head's start, open
saf.recipe.kinds.ray_start first; its docstring says which of these modules it calls, in
order (docs/architecture.md, "Where is it done")."""
