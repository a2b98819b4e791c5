"""Step kinds are imported when a recipe names one (saf.recipe.kinds.KINDS): running a recipe,
or `saf up` on a cluster without [ray], loads none of Ray's, the network tests' or the
drivers' code; and every registered kind is found under its own name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from saf.recipe import kinds

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
import saf.recipe.run, saf.up.bring, saf.commands.up
from saf.recipe.kinds import KINDS
KINDS["shell"]
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("saf.ray.session", "saf.net",
      "saf.jumbo", "httpx", "saf.recipe.kinds.python_match", "saf.recipe.kinds.apt")))))
"""


def test_a_recipe_engine_loads_only_the_kinds_it_names() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_every_kind_is_registered_under_its_own_name() -> None:
    assert sorted(kinds.KINDS) == sorted(kinds.WHERE)
    for name in kinds.WHERE:
        assert kinds.KINDS[name].name == name
