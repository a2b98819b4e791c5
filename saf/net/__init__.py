"""Link speed tests: the pairs and their schedule, the engine that runs saf's tester (or
iperf3) between nodes over the cluster addresses, the results and where they are kept."""
