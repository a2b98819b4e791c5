"""Parsers of what the vendors' tools print on a node (`nvidia-smi -L`, `ubuntu-drivers
devices`, `clinfo -l`, `system_profiler -json`, `dpkg-query`): the facts the driver and tuning
step kinds decide on. Pure functions of text, tested against recordings of the real tools."""

# Fact commands read the node's files under this prefix: empty on a real node; a test points
# $SAF_FACTS_ROOT at a recorded tree (node_exporter's --path.rootfs, the agent's Context.root).
ROOT = '"${SAF_FACTS_ROOT:-}"'


def flag(value: str) -> bool:
    """A recipe variable read as yes/no ("true", "1", "yes", "on"; anything else is no)."""
    return value.strip().lower() in ("true", "1", "yes", "on")
