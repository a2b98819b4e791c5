"""The cluster as one declared whole: what is about the declared cluster rather than one node
or one feature (where models are placed, and, as `saf up` grows, the rest of the declaration)."""
