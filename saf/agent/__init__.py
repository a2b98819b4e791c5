"""The operator side of the node agent: building and deploying the zipapp, and one link per
node that runs it and turns its frames into events (see saf.metrics for the hub)."""
