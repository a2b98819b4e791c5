"""Live metrics: typed agent events, the bounded metrics store, and the hub that runs the
agents of a fleet. See docs/agent.md for the API the cockpit consumes."""
