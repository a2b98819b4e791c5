"""Recipes: no run yet, check-python highlighted; each step's nodes named from an inventory
of the recording's nodes (nothing is run: the snapshots stop at the confirm dialog)."""

from saf.inventory.model import Cluster, Defaults, Inventory
from saf.recording import load_recording
from tests.snapshot_apps._common import FRAMES
from tests.snapshot_apps._recipes import make_recipes_app

nodes = load_recording(FRAMES / "healthy-3-nodes.jsonl").nodes
app = make_recipes_app(None, inventory=Inventory(Cluster(name="lab"), Defaults(), nodes))
