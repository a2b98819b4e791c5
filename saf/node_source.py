"""The text of a program saf runs on a node with `python -c` (saf.ray.node_probe,
saf.inference.node_script): the program with the node helper saf.agents.node_common put in
place of its one import of it, so the node needs nothing installed and each call stays one SSH
exec. Imported in saf (the tests, a local run) the same program reads the helper as a module.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

HELPER = ("saf.agents", "node_common.py")
_IMPORT = re.compile(r"^from saf\.agents\.node_common import [\w, ]+\n", re.MULTILINE)


@functools.cache
def program_source(package: str, name: str) -> str:
    """`package/name`'s text with the helper inlined (raises when the program does not import
    the helper exactly once, on one line: a mistake in saf, caught by its tests)."""
    text = resources.files(package).joinpath(name).read_text()
    found = _IMPORT.findall(text)
    if len(found) != 1:
        raise RuntimeError(f"{package}/{name} must import saf.agents.node_common once, on one "
                           f"line (found {len(found)})")
    helper = resources.files(HELPER[0]).joinpath(HELPER[1]).read_text()
    return text.replace(found[0], helper + "\n", 1)
