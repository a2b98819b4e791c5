"""The defaults a command's options show, in a module that imports nothing.

`saf COMMAND --help` prints them, so they live apart from the engines that use them (the fleet,
Ray's commands, the speed tests, the model checks): reading a default never imports asyncssh,
msgspec or httpx. Each engine imports its default from here, so there is one value.
"""

from __future__ import annotations

FLEET_CONCURRENCY = 64          # nodes reached at once by one fleet (saf exec -j)
RAY_PORT = 6380                 # the Ray head's GCS port
RAY_TEMP_DIR = "/tmp/ray"       # Ray's session folder on each node
NET_PAIRS = ("all", "star")     # which node pairs a speed test measures
NET_TOOLS = ("saf", "iperf3")   # what measures them
MODEL_CHECK_DEADLINE = 300.0    # seconds for a whole check of one model endpoint
UP_WAIT = 20.0                  # seconds saf up / down wait for a node not answering yet
