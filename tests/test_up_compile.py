"""saf.toml's declaration compiled into the recipes `saf up` and `saf down` run: the order of
the steps, their kinds and keys, values put in literally, [ray]'s resources reaching the Ray
step's nodes, and the placed models' nodes kept in the run's variables for a resume."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from saf.inventory import load_inventory
from saf.recipe.kinds.include import Include
from saf.recipe.kinds.model import ModelServer
from saf.recipe.kinds.ray_start import RayStart
from saf.recipe.kinds.ray_stop import RayStop
from saf.recipe.kinds.service import Service
from saf.recipe.kinds.shell import Shell
from saf.recipe.kinds.upload import Upload
from saf.recipe.substitute import names_in
from saf.up import compile as uc
from saf.up.declared import declared
from saf.up.model_stop import ModelStop

TOML = """\
[[nodes]]
name = "a"
host = "127.0.0.1"
roles = ["head"]
tags = ["gpu"]

[[nodes]]
name = "b"
host = "127.0.0.2"
vars = { ray_resources = { disk = 1 } }

[ray]
port = 6390
resources = { "b" = { fast = 2 } }

[[up.steps]]
recipe = "hello"

[[services]]
name = "agg"
on = "b"
command = "python3 -c 'print({x})'"
env = { MODE = "live", TOKEN = "${SAF_TEST_UP_TOKEN}" }
after = ["pub"]
check = "http://127.0.0.1:9/health"

[[services]]
name = "pub"
on = "all"
command = "/bin/sleep 1000"
after = ["ray"]

[[models]]
name = "m"
model = "/m.gguf"
engine = "llama-cpp-python"
on = "a"
port = 8081
ctx_size = 512

[[models]]
name = "p"
model = "/p.gguf"
placement = "auto"
port = 8082
"""


def _load(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SAF_TEST_UP_TOKEN", "tok-secret-123456")
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "saf.toml"
    path.write_text(TOML)
    inventory = load_inventory(path)
    return inventory, declared(inventory)


def test_up_steps_in_order_with_their_kinds(tmp_path: Path, monkeypatch) -> None:
    inventory, found = _load(tmp_path, monkeypatch)
    recipe = uc.up_recipe(found, inventory, {"p": ("b",)})
    got = [(s.name, type(s.kind).__name__, s.on) for s in recipe.steps]
    assert got == [("hello", Include.__name__, "all"), ("ray", RayStart.__name__, "all"),
                   ("pub", Service.__name__, "a,b"), ("agg env", Upload.__name__, "b"),
                   ("agg", Service.__name__, "b"), ("model m", ModelServer.__name__, "a"),
                   ("model p", ModelServer.__name__, "b")]
    assert [s.index for s in recipe.steps] == list(range(len(recipe.steps)))
    ray = recipe.steps[1].kind
    assert isinstance(ray, RayStart)
    assert ray.port == "6390"
    assert ray.persist == "false"  # [ray] without persist: a detached start, as ray-up's
    agg = recipe.steps[4].kind
    assert isinstance(agg, Service)
    # The secret goes in the uploaded 0600 file, never in the step; the rest stays as env.
    # Beside it, a digest of the secrets, so a changed secret is a changed unit (no value).
    assert sorted(agg.params.env) == ["MODE", "SAF_SECRETS_DIGEST"]
    assert agg.params.env["MODE"] == "live"
    assert len(agg.params.env["SAF_SECRETS_DIGEST"]) == 16
    assert "tok-secret-123456" not in str(agg.params)
    assert agg.params.env_file == "~/.saf/env/agg.env"
    upload = recipe.steps[3].kind
    assert isinstance(upload, Upload)
    assert upload.mode == 0o600
    local = Path(upload.src)
    assert local.read_text() == 'TOKEN="tok-secret-123456"\n'
    assert local.stat().st_mode & 0o777 == 0o600
    # A brace of the declaration is not a placeholder of the runner.
    assert names_in(agg.params.command or "") == []
    assert "{{x}}" in (agg.params.command or "")
    # A URL check is asked from the node by its Python.
    assert "{node.python}" in (agg.params.health or "")
    model = recipe.steps[5].kind
    assert isinstance(model, ModelServer)
    assert model.values["args"] == "--n_ctx 512"
    assert uc.placed_of({k: v.default or "" for k, v in recipe.vars.items()}) == {"p": ("b",)}
    assert recipe.vars[uc.INVENTORY_VAR].default == str(inventory.path)


def test_down_is_the_reverse(tmp_path: Path, monkeypatch) -> None:
    inventory, found = _load(tmp_path, monkeypatch)
    recipe = uc.down_recipe(found, inventory, {"p": ("b",)})
    got = [(s.name, type(s.kind).__name__, s.on) for s in recipe.steps]
    assert got == [("model p", ModelStop.__name__, "all"), ("model m", ModelStop.__name__, "a"),
                   ("agg", Service.__name__, "b"), ("agg env", Shell.__name__, "b"),
                   ("pub", Service.__name__, "a,b"),
                   ("ray", RayStop.__name__, "all")]
    assert all(s.kind.params.state == "absent" for s in recipe.steps
               if isinstance(s.kind, Service))


def test_ray_head_and_resources_reach_the_nodes(tmp_path: Path, monkeypatch) -> None:
    inventory, found = _load(tmp_path, monkeypatch)
    assert found.ray is not None
    given = uc.for_ray(inventory, found)
    assert [n.name for n in given.nodes if n.is_head] == ["a"]
    moved = uc.for_ray(inventory, dataclasses.replace(
        found, ray=dataclasses.replace(found.ray, head="b")))
    assert [n.name for n in moved.nodes if n.is_head] == ["b"]
    assert given.node("b").vars["ray_resources"] == {"disk": 1, "fast": 2}
    assert "ray_resources" not in given.node("a").vars
    assert inventory.node("b").vars["ray_resources"] == {"disk": 1}  # the inventory is kept


def test_the_cluster_guide_example_compiles(tmp_path: Path, monkeypatch) -> None:
    """docs/cluster.md's saf.toml is read as saf reads it and compiles, in its order."""
    import re

    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    guide = (Path(__file__).resolve().parent.parent / "docs" / "cluster.md").read_text()
    block = re.search(r"```toml\n(.*?)```", guide, re.S)
    assert block is not None
    (tmp_path / "saf.toml").write_text(block.group(1))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "publisher.env").write_text("HF_TOKEN=hf_guide_example\n")
    inventory = load_inventory(tmp_path / "saf.toml")
    recipe = uc.up_recipe(declared(inventory), inventory, {"small": ("mac2",)})
    assert [(s.name, s.on) for s in recipe.steps] == [
        ("python-match", "all"), ("driver-nvidia", "tag:nvidia"), ("macos-tuning", "tag:mac"),
        ("ray", "all"), ("publisher env", "mac1"), ("publisher", "mac1"),
        ("aggregator", "gpu1"), ("model qwen", "gpu1"), ("model small", "mac2")]
    # Still right after a reboot: [ray] persist = true reaches the Ray step, which puts
    # `ray start --block` under each node's init system (service `ray`).
    ray = recipe.steps[3].kind
    assert isinstance(ray, RayStart)
    assert ray.persist == "true"


def test_ray_python_reaches_the_ray_step_only(tmp_path: Path, monkeypatch) -> None:
    """[ray].python is the Python ray_start (and ray_stop) runs Ray from on every node; the
    nodes' own python, which the other steps use, is kept."""
    from saf.ray import command as rc

    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "saf.toml"
    path.write_text(TOML.replace("port = 6390\n",
                                 "port = 6390\npython = \"/opt/ray/bin/python\"\n"))
    inventory = load_inventory(path)
    given = uc.for_ray(inventory, declared(inventory))
    assert [rc.python_of(n) for n in given.nodes] == ["/opt/ray/bin/python"] * 2
    assert [n.python for n in given.nodes] == [n.python for n in inventory.nodes]
    assert rc.python_of(inventory.node("a")) == inventory.node("a").python


def test_ray_status_finds_the_declared_head(tmp_path: Path, monkeypatch) -> None:
    """`saf ray status` reaches the head [ray].head names, over the node with role head."""
    from saf.ray.session import head_of

    path = tmp_path / "saf.toml"
    path.write_text(TOML.replace("port = 6390\n", "head = \"b\"\nport = 6390\n"))
    assert head_of(load_inventory(path)).name == "b"
    path.write_text(TOML)
    assert head_of(load_inventory(path)).name == "a"


def test_a_models_env_reaches_its_server_and_its_secrets_a_0600_file(tmp_path: Path,
                                                                     monkeypatch) -> None:
    """A model's plain env is the step's env; its secrets go only in the uploaded 0600 file,
    which its server reads (env_file), and leave the node with it on `saf down`."""
    monkeypatch.setenv("SAF_TEST_UP_TOKEN", "tok-secret-123456")
    monkeypatch.setenv("SAF_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "saf.toml"
    path.write_text(TOML.replace('port = 8081\n', 'port = 8081\nenv = { MODE = "fast", '
                                 'HF_TOKEN = "${SAF_TEST_UP_TOKEN}" }\n'))
    inventory = load_inventory(path)
    found = declared(inventory)
    recipe = uc.up_recipe(found, inventory, {"p": ("b",)})
    steps = {s.name: s for s in recipe.steps}
    upload, model = steps["model m env"].kind, steps["model m"].kind
    assert [s.name for s in recipe.steps].index("model m env") + 1 == \
        [s.name for s in recipe.steps].index("model m")
    assert isinstance(upload, Upload)
    assert isinstance(model, ModelServer)
    assert upload.mode == 0o600
    assert upload.dest == "~/.saf/env/models/m.env"
    assert Path(upload.src).read_text() == 'HF_TOKEN="tok-secret-123456"\n'
    assert Path(upload.src).stat().st_mode & 0o777 == 0o600
    assert model.env == {"MODE": "fast"}
    assert model.values["env_file"] == "~/.saf/env/models/m.env"
    assert "tok-secret" not in repr(model.values) + repr(model.env)
    assert "env_file" not in steps["model p"].kind.values  # type: ignore[attr-defined]
    down = {s.name: s for s in uc.down_recipe(found, inventory, {"p": ("b",)}).steps}
    assert isinstance(down["model m env"].kind, Shell)
    assert "models/m.env" in down["model m env"].kind.command  # type: ignore[attr-defined]


def test_a_declared_model_is_kept_unless_it_says_otherwise(tmp_path: Path,
                                                           monkeypatch) -> None:
    """Each model's step is `persist = true`, `server = NAME` (service model-NAME), as the
    nodes' records and `saf down` find it; `persist = false` starts it detached."""
    inventory, found = _load(tmp_path, monkeypatch)
    steps = {s.name: s.kind for s in uc.up_recipe(found, inventory, {"p": ("b",)}).steps}
    for name in ("m", "p"):
        kind = steps[f"model {name}"]
        assert isinstance(kind, ModelServer)
        assert (kind.values["persist"], kind.values["server"]) == ("true", name)
    path = tmp_path / "saf.toml"
    path.write_text(TOML.replace('port = 8081\n', 'port = 8081\npersist = false\n'))
    again = load_inventory(path)
    steps = {s.name: s.kind for s in uc.up_recipe(declared(again), again, {"p": ("b",)}).steps}
    assert steps["model m"].values["persist"] == "false"  # type: ignore[attr-defined]
    assert steps["model p"].values["persist"] == "true"  # type: ignore[attr-defined]
    stop = {s.name: s.kind for s in uc.down_recipe(found, inventory, {}).steps}["model p"]
    assert isinstance(stop, ModelStop)
    assert (stop.model, stop.port, stop.serves) == ("p", 8082, "/p.gguf")


def test_one_part_alone_is_that_part_of_saf_up_and_saf_down(tmp_path: Path, monkeypatch) -> None:
    """The Cluster screen's u / d (saf.up.part): the declaration restricted to one part
    compiles to that part's steps only, kept to the row's node; a node's row is all of it
    (`saf up --on NODE`); a placed model's `(placed)` row is not kept to a node."""
    import pytest

    from saf.up import part as up_part

    inventory, found = _load(tmp_path, monkeypatch)

    def steps(kind, name: str, down: bool = False) -> list[str]:
        only = up_part.only(found, kind, name)
        recipe = uc.down_recipe(only, inventory, {}) if down else \
            uc.up_recipe(only, inventory, {"p": ("b",)})
        return [s.name for s in recipe.steps]

    assert steps("service", "agg") == ["agg env", "agg"]
    assert steps("service", "agg", down=True) == ["agg", "agg env"]
    assert steps("ray", "ray") == ["ray"]
    assert steps("model", "p") == ["model p"]
    assert steps("node", "a") == ["hello", "ray", "pub", "agg env", "agg", "model m", "model p"]
    assert up_part.selector("model", "(placed)") is None
    assert up_part.selector("service", "b") == "b"
    assert up_part.command("up", "model", "(placed)") == "saf up"
    assert up_part.command("down", "ray", "a") == "saf down --on a"
    with pytest.raises(up_part.PartRefused, match="declares no model 'q'"):
        up_part.only(found, "model", "q")
    empty = dataclasses.replace(found, up=(), ray=None, services=(), models=())
    with pytest.raises(up_part.PartRefused, match=r"saf.toml declares no \[up\]"):
        up_part.only(empty, "node", "a")


def test_the_staged_secrets_leave_with_the_process_that_staged_them(tmp_path: Path) -> None:
    """The 0600 copy of a part's secrets made for the upload is gone when the command that
    compiled the recipe exits: the node's file is the only one left (a resume compiles
    saf.toml again, so nothing needs the copy afterwards)."""
    (tmp_path / "saf.toml").write_text(TOML)
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "from saf.inventory import load_inventory\n"
        "from saf.up import compile as uc\n"
        "from saf.up.declared import declared\n"
        "inventory = load_inventory(Path(sys.argv[1]))\n"
        "recipe = uc.up_recipe(declared(inventory), inventory, {'p': ('b',)})\n"
        "staged = [s.kind.src for s in recipe.steps if s.name == 'agg env']\n"
        "print(staged[0], Path(staged[0]).read_text().strip())\n")
    env = {**os.environ, "SAF_TEST_UP_TOKEN": "tok-secret-654321",
           "SAF_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path / "saf.toml")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    staged, text = done.stdout.split(maxsplit=1)
    assert text.strip() == 'TOKEN="tok-secret-654321"'  # it was there while the process ran
    assert Path(staged).is_relative_to(tmp_path / "state")
    assert not Path(staged).exists()
    assert not [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
