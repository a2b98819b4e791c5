"""The cluster inventory: which nodes exist and how to reach them."""

from saf.inventory.load import find_inventory, load_inventory, parse_inventory
from saf.inventory.model import ROLES, Cluster, Defaults, Inventory, Node

__all__ = ["Cluster", "Defaults", "Inventory", "Node", "ROLES", "find_inventory",
           "load_inventory", "parse_inventory"]
