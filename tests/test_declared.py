"""The declared cluster in saf.toml ([up], [ray], [[services]], [[models]]): the model, its
order, and every mistake refused with the file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import get_args

import pytest

from saf.errors import InventoryError
from saf.inference.engines import CHOICES
from saf.inventory import load_inventory
from saf.inventory.schema import EngineName
from saf.up.declared import Declared, declared
from saf.up.order import CycleError, topological

NODES = """\
[[nodes]]
name = "a"
host = "127.0.0.1"
roles = ["head"]
tags = ["nvidia"]

[[nodes]]
name = "b"
host = "127.0.0.2"
roles = ["worker"]
"""

FULL = NODES + """
[ray]
port = 6380
persist = true
resources = { "tag:nvidia" = { GPU = 1 } }

[[up.steps]]
recipe = "python-match"
vars = { python = "3.11" }

[[up.steps]]
recipe = "driver-nvidia"
on = "tag:nvidia"

[[services]]
name = "publisher"
on = "a"
command = "python pub.py"
after = ["ray", "aggregator"]
env = { HF_TOKEN = "${SAF_TEST_TOKEN}", MODE = "live" }
env_file = "secret.env"
restart = "always"
cpus = "0-3"
gpus = [0]
check = "http://127.0.0.1:9000/health"

[[services]]
name = "aggregator"
on = "all"
command = "python agg.py"
after = ["model:small"]

[[models]]
name = "small"
model = "/models/tiny.gguf"
engine = "llama-cpp-python"
on = "b"
port = 8080
ctx_size = 2048

[[models]]
name = "placed"
model = "Qwen/Qwen3-0.6B"
placement = "auto"
replicas = 2
port = 8090
"""


def load(tmp_path: Path, text: str) -> Declared:
    path = tmp_path / "saf.toml"
    path.write_text(textwrap.dedent(text))
    return declared(load_inventory(path))


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(InventoryError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_full_example_is_the_model(tmp_path):
    d = load(tmp_path, FULL)
    assert [s.recipe for s in d.up] == ["python-match", "driver-nvidia"]
    assert d.up[0].vars == {"python": "3.11"}
    assert d.up[1].on == "tag:nvidia"
    assert d.ray is not None
    assert (d.ray.head, d.ray.port, d.ray.persist) == ("a", 6380, True)
    pub, agg = d.services
    assert pub.nodes == ("a",)
    assert agg.nodes == ("a", "b")
    assert pub.env_file == tmp_path / "secret.env"
    assert pub.check_url == "http://127.0.0.1:9000/health"
    assert pub.pinning.gpu_environment("nvidia") == {"CUDA_VISIBLE_DEVICES": "0"}
    assert pub.pinning.cpus == "0-3"
    small, placed = d.models
    assert (small.nodes, small.engine, small.ctx_size) == (("b",), "llama-cpp-python", 2048)
    assert (placed.placement, placed.replicas, placed.nodes) == ("auto", 2, ())


def test_the_order_respects_after(tmp_path):
    d = load(tmp_path, FULL)
    assert d.order() == ["ray", "model:small", "aggregator", "publisher", "model:placed"]
    assert d.part("model:small").name == "small"


def test_nothing_declared_is_empty(tmp_path):
    assert load(tmp_path, NODES).empty


def test_ray_resources_by_selector(tmp_path):
    path = tmp_path / "saf.toml"
    path.write_text(FULL)
    inventory = load_inventory(path)
    ray = declared(inventory).ray
    assert ray is not None
    assert ray.resources_of(inventory, inventory.node("a")) == {"GPU": 1.0}
    assert ray.resources_of(inventory, inventory.node("b")) == {}


def test_the_engines_are_those_serving_knows():
    assert get_args(EngineName) == CHOICES


@pytest.mark.parametrize(("extra", "line", "words"), [
    ("[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\ncolour = 1\n",
     16, "unknown key 'colour' in service 's'"),
    ("[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\nafter = [\"nope\"]\n",
     16, "no service is named 'nope'"),
    ("[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\nafter = [\"ray\"]\n",
     16, '[ray] is not declared'),
    ("[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\nafter = [\"model:m\"]\n",
     16, "no [[models]] is named 'm'"),
    ("[[services]]\nname = \"s\"\non = \"tag:arc\"\ncommand = \"x\"\n",
     14, 'matches no node'),
    ("[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\nrestart = \"sometimes\"\n",
     16, "service 's': restart must be one of always, no, on-failure, not 'sometimes'"),
    ("[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\ncpus = \"zero\"\n",
     16, 'a CPU list such as "0-7"'),
    ("[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\n"
     "[[services]]\nname = \"s\"\non = \"a\"\ncommand = \"x\"\n",
     17, "two services are named 's' (the first on line 12)"),
    ("[[services]]\nname = \"ray\"\non = \"a\"\ncommand = \"x\"\n",
     13, "may not be named 'ray'"),
    ("[[models]]\nname = \"m\"\nmodel = \"f.gguf\"\non = \"a\"\nplacement = \"auto\"\nport = 80\n",
     16, 'not both'),
    ("[[models]]\nname = \"m\"\nmodel = \"f.gguf\"\nport = 80\n",
     12, 'or `placement'),
    ("[[models]]\nname = \"m\"\nmodel = \"f.gguf\"\non = \"a\"\nreplicas = 2\nport = 80\n",
     16, 'replicas go with placement'),
    ("[[models]]\nname = \"m\"\nmodel = \"f.gguf\"\nengine = \"ollama\"\non = \"a\"\nport = 80\n",
     15, "model 'm': engine must be one of auto, llama-cpp-python"),
    ("[ray]\nport = 8080\n[[models]]\nname = \"m\"\nmodel = \"f.gguf\"\non = \"a\"\nport = 8080\n",
     18, 'port 8080 on a collides with ray.port'),
    ("[[models]]\nname = \"m\"\nmodel = \"f.gguf\"\non = \"b\"\nport = 81\n"
     "[[models]]\nname = \"n\"\nmodel = \"f.gguf\"\nplacement = \"auto\"\nport = 81\n",
     21, 'port 81 on b could collide (saf may place it there) with model:m'),
    ("[ray]\nhead = \"zed\"\n",
     13, "ray.head: no node 'zed'"),
    ("[ray]\nresources = { \"tag:amd\" = { GPU = 1 } }\n",
     13, "'tag:amd' matches no node"),
    ("[[up.steps]]\nrecipe = \"no-such-recipe\"\n",
     13, "no recipe 'no-such-recipe'"),
    ("[[up.steps]]\nrecipe = \"python-match\"\non = \"tag:\"\n",
     14, 'unknown selector term'),
    ("[up]\nsteps = \"python-match\"\n",
     13, 'steps must be an array of [[up.steps]] tables'),
])
def test_a_mistake_names_the_line(tmp_path, extra, line, words):
    message = refused(tmp_path, NODES + "\n" + extra)
    assert f"saf.toml:{line}:" in message, message
    assert words in message, message


def test_a_cycle_is_named_as_its_chain(tmp_path):
    message = refused(tmp_path, NODES + """
[[services]]
name = "x"
on = "a"
command = "x"
after = ["y"]

[[services]]
name = "y"
on = "a"
command = "y"
after = ["z"]

[[services]]
name = "z"
on = "a"
command = "z"
after = ["x"]
""")
    assert "saf.toml:16:" in message
    assert "x -> y -> z -> x" in message


def test_no_head_for_ray_is_refused(tmp_path):
    text = NODES.replace('roles = ["head"]', 'roles = ["worker"]') + "\n[ray]\nport = 6379\n"
    message = refused(tmp_path, text)
    assert "saf.toml:12:" in message
    assert "[ray] needs a head" in message


def test_os_selectors_wait_for_probed_nodes(tmp_path):
    d = load(tmp_path, NODES + '\n[[services]]\nname = "s"\non = "os:macos"\ncommand = "x"\n')
    assert d.services[0].nodes == ()


def test_topological_keeps_the_given_order_among_ready_parts():
    assert topological({"b": ("c",), "a": (), "c": ()}) == ["a", "c", "b"]
    assert topological({"a": ("b",), "b": ()}) == ["b", "a"]


def test_topological_names_the_ring():
    with pytest.raises(CycleError) as info:
        topological({"a": ("b",), "b": ("c",), "c": ("b",)})
    assert info.value.chain == ["b", "c", "b"]
    with pytest.raises(CycleError) as info:
        topological({"a": ("a",)})
    assert str(info.value) == "a -> a"


@pytest.mark.parametrize(("extra", "line", "words"), [
    ('[[up.steps]]\nrecipe = "python-venv"\nvars = { nope = 1 }\n', 14,
     "recipe 'python-venv' has no variable 'nope'"),
])
def test_up_vars_are_the_recipes(tmp_path, extra, line, words):
    message = refused(tmp_path, NODES + "\n" + extra)
    assert f"saf.toml:{line}:" in message, message
    assert words in message, message


def test_up_is_a_recipe_of_recipe_steps(tmp_path):
    """[up] and a recipe that runs recipes are one mechanism: its steps expand to the named
    recipes' steps, limited to each step's `on`, with its vars."""
    from saf.recipe.compose import expand
    from saf.recipe.prepare import load_included

    (tmp_path / "mine.toml").write_text('name = "mine"\n[vars]\nword = "x"\n[[steps]]\n'
                                        'name = "say"\nrun = "echo {word}"\n')
    path = tmp_path / "saf.toml"
    path.write_text(NODES + '\n[[up.steps]]\nrecipe = "hello"\n\n[[up.steps]]\n'
                    'recipe = "mine.toml"\non = "tag:nvidia"\nvars = { word = "hi" }\n')
    inventory = load_inventory(path)
    recipe = declared(inventory).up_recipe()
    assert [s.name for s in recipe.steps] == ["hello", "mine"]
    assert recipe.steps[1].line == 15
    flat = expand(recipe, {}, inventory, load_included)
    names = [s.name for s in flat.steps]
    assert names[-1] == "mine › say"
    assert all(n.startswith("hello › ") for n in names[:-1])
    assert flat.steps[-1].variables == {"word": "hi"}
    assert flat.steps[-1].within == ("tag:nvidia",)


def test_the_example_in_the_docs_is_declared(tmp_path):
    """docs/inventory.md's example of the declared cluster, with the nodes of its first
    example, reads without an error."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "inventory.md").read_text()
    blocks = page.split("```toml\n")
    nodes = blocks[1].split("```")[0]
    declared_part = next(b for b in blocks if b.startswith("[up]")).split("```")[0]
    text = nodes.replace('tags = ["mac", "m3-ultra"]', 'tags = ["nvidia"]') + declared_part
    d = load(tmp_path, text)
    assert d.order()[0] == "ray"
    assert {s.name for s in d.services} == {"publisher", "aggregator"}
