"""Importers: write a saf inventory from what users already have (Ansible, Ray)."""

from saf.inventory.importers.ansible_ini import import_ansible
from saf.inventory.importers.draft import Draft, DraftNode
from saf.inventory.importers.ray_yaml import import_ray

__all__ = ["Draft", "DraftNode", "import_ansible", "import_ray"]
