"""`dpkg-query -W -f '${Package}\\t${db:Status-Abbrev}\\n' ...`: which packages are installed."""

from __future__ import annotations

from saf.recipe.facts import ROOT

FORMAT = "'${Package}\\t${db:Status-Abbrev}\\n'"
# dpkg's database under the facts root (the node's own when SAF_FACTS_ROOT is unset).
QUERY = f"dpkg-query --admindir={ROOT}/var/lib/dpkg -W -f={FORMAT}"


def installed(text: str) -> set[str]:
    """The packages dpkg says are installed ("ii": wanted install, state installed)."""
    out = set()
    for line in text.splitlines():
        name, _, status = line.partition("\t")
        if status.startswith("ii"):
            out.add(name.strip())
    return out
