"""Node screen source: the Ryzen AI box of node_amd, reached through two jump hosts (an
address hop, then the bastion node behind it): its title names them after its address."""

import dataclasses

from saf.inventory.model import Node
from saf.recording import load_recording
from tests.snapshot_apps._common import FRAMES, cockpit_on

played = load_recording(FRAMES / "node-amd-strix-point-apu.jsonl")
edge = Node(name="ops@edge.lab:2222", host="edge.lab", port=2222, user="ops")
bastion = Node(name="bastion", host="10.0.0.1", jump=(edge,))
app = cockpit_on(dataclasses.replace(played, nodes=tuple(
    dataclasses.replace(n, jump=(edge, bastion)) for n in played.nodes)))
