"""The rooms of docs/architecture.md stay apart (the layers of pyproject.toml: the core and the
agent never import the UI), and the page names every module of the core and where each thing
is done."""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_CORE = ("saf.commands", "saf.cli", "saf.screens", "saf.agents", "saf.recipes", "saf.themes")


def core_modules() -> list[str]:
    import saf

    names = []
    for info in pkgutil.walk_packages(saf.__path__, "saf."):
        if not info.name.startswith(NOT_CORE) and info.name != "saf.__main__":
            names.append(info.name)
    return names


def test_importing_the_whole_core_loads_no_textual():
    code = ("import importlib, sys\n"
            f"for name in {core_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules\n"
            "             if m.split('.')[0] == 'textual' or m.startswith('saf.screens'))\n"
            "print(bad)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_headless_commands_do_not_pay_for_the_cockpit():
    code = ("import sys\nfrom saf.cli import main\n"
            "try:\n    main(['exec', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('textual' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


def layers_contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return contract


def names_in(layer: str) -> list[str]:
    """'a | b', 'a : b' or 'a' -> the parts it names ('(a)' is an optional part)."""
    return [name.strip().strip("()") for name in re.split(r"[|:]", layer)]


def parts_of_saf() -> set[str]:
    """saf's children: the modules and packages in saf/, and the root folders that install
    inside it (package-dir: screens/ is saf.screens)."""
    import saf

    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    inside = {name.split(".")[1] for name in mapped["package-dir"]}
    return {info.name for info in pkgutil.iter_modules(saf.__path__)} | inside


def test_the_layers_name_every_part_of_saf():
    """The layers contract is `exhaustive` over saf, so lint-imports (run on the wheel by
    tests/test_packaging.py) fails on a part of saf no layer names; this says the same at once,
    without a wheel, and that no part is waved through (`exhaustive_ignores`)."""
    contract = layers_contract()
    assert contract["containers"] == ["saf"]
    assert contract["exhaustive"] is True
    assert not contract.get("exhaustive_ignores")
    named = [name for layer in contract["layers"] for name in names_in(layer)]
    assert len(named) == len(set(named))
    assert set(named) == parts_of_saf()


def test_the_core_is_every_layer_below_the_cockpit():
    """What the first test imports as the core is what the layers put below saf.screens, above
    the agent's program and the data folders: a new core module is in both or in neither."""
    layers = layers_contract()["layers"]
    below = layers[layers.index("screens") + 1:-1]
    assert names_in(layers[-1]) == ["agents", "recipes", "themes"]
    tops = {name.split(".")[1] for name in core_modules()}
    assert tops == {name for layer in below for name in names_in(layer)}


ARCHITECTURE = ROOT / "docs" / "architecture.md"


def section(title: str) -> list[str]:
    """The lines of one section of docs/architecture.md, up to the next heading."""
    lines = ARCHITECTURE.read_text().splitlines()
    heads = [i for i, line in enumerate(lines)
             if line.startswith("#") and line.lstrip("#").strip() == title]
    assert heads, f"docs/architecture.md has no section {title!r}"
    start = heads[0]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")),
               len(lines))
    return lines[start + 1:end]


def module_rows() -> dict[str, str]:
    """The core's table: each module a row's first cell names -> the rest of that row."""
    rows = {}
    for line in section("The core, module by module"):
        if line.startswith("| `saf"):
            first, rest = line.strip("|").split("|", 1)
            for name in re.findall(r"`(saf[\w.]*)`", first):
                rows[name] = rest
    return rows


def undocumented(modules: list[str], rows: dict[str, str]) -> list[str]:
    """The modules no row names: a module is named by a row of its own, or, in the row of the
    nearest package that has one, by its name below that package in backticks."""
    missing = []
    for module in modules:
        owners = [name for name in rows if module == name or module.startswith(name + ".")]
        owner = max(owners, key=len, default=None)
        if owner is None or (owner != module
                             and f"`{module[len(owner) + 1:]}`" not in rows[owner]):
            missing.append(module)
    return missing


def test_the_architecture_page_names_every_core_module():
    """docs/architecture.md is where a reader looks a module up: a new module without its
    words there fails here, and so does a row about a module that is gone."""
    rows = module_rows()
    modules = core_modules()
    assert undocumented(modules, rows) == []
    assert sorted(set(rows) - set(modules)) == []


def test_the_page_check_finds_a_missing_module():
    rows = {"saf.ray": " the cluster: `node_probe`, `facts` |", "saf.recipe.kinds": " `apt` |"}
    modules = ["saf.ray", "saf.ray.node_probe", "saf.ray.watch", "saf.recipe.kinds",
               "saf.recipe.kinds.apt", "saf.recipe.kinds.wait", "saf.recipe.facts"]
    assert undocumented(modules, rows) == ["saf.ray.watch", "saf.recipe.kinds.wait",
                                           "saf.recipe.facts"]


def test_where_is_it_done_names_only_what_exists():
    """Each line of "Where is it done" names files and modules that are there today."""
    text = "\n".join(section("Where is it done"))
    paths = re.findall(r"`((?:saf|recipes|agents|screens)/[\w/.-]+)`", text)
    assert paths
    assert [p for p in paths if not (ROOT / p).is_file()] == []
    modules = set(re.findall(r"`(saf\.[\w.]+)`", text))
    assert modules
    assert sorted(m for m in modules if importlib.util.find_spec(m) is None) == []


def test_the_ray_start_is_read_from_one_module():
    """The page's Ray row opens one module, and that module's docstring names every module
    of saf.ray the row says it calls, so the page and the code tell one path."""
    (row,) = [line for line in section("Where is it done") if "the Ray head's start" in line]
    (first,) = re.findall(r"`(saf/[\w/]+\.py)`", row.split("|")[2])
    called = set(re.findall(r"`(saf\.ray\.\w+)`", row))
    doc = ast.get_docstring(ast.parse((ROOT / first).read_text())) or ""
    assert called
    assert sorted(m for m in called if m not in doc) == []
    assert "open it first" in doc
