"""The operator's side of the node agent (the agent program itself is saf.agents): building and
deploying its zipapp, one link per node that runs it and turns its frames into events, and the
hub that runs a link for every node into one saf.metrics store."""
