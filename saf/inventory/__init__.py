"""The cluster inventory: which nodes exist and how to reach them."""

from saf.inventory.model import Cluster, Defaults, Inventory, Node, ROLES
from saf.inventory.load import find_inventory, load_inventory, parse_inventory

__all__ = ["Cluster", "Defaults", "Inventory", "Node", "ROLES", "find_inventory",
           "load_inventory", "parse_inventory"]
