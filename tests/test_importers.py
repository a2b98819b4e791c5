"""`saf import ansible|ray`: sample files in the tools' own formats become a saf.toml that
loads back; every malformed input is refused naming the file and line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from saf.errors import ConfigError
from saf.inventory import load_inventory
from saf.inventory.importers import import_ansible, import_ray
from saf.inventory.importers.draft import Draft
from saf.select import select

FIXTURES = Path(__file__).parent / "fixtures" / "import"
ROOT = Path(__file__).parent.parent


def saf(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SAF_INVENTORY"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "saf", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def ansible_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, "hosts.ini", text)
    with pytest.raises(ConfigError) as caught:
        _import_and_validate(import_ansible, path, "ansible")
    return caught.value


def ray_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, "cluster.yaml", text)
    with pytest.raises(ConfigError) as caught:
        _import_and_validate(import_ray, path, "ray")
    return caught.value


def _import_and_validate(importer: Callable[[Path], Draft], path: Path, source: str) -> None:
    """Import `path` and check the inventory it drafts, as `saf import` does."""
    draft = importer(path)
    draft.validate(draft.to_toml(source))


# -- Ansible ---------------------------------------------------------------------------------

def test_ansible_sample_becomes_a_loadable_inventory(tmp_path: Path) -> None:
    result = saf("import", "ansible", str(FIXTURES / "ai-lab.ini"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote saf.toml: 4 nodes" in result.stdout
    assert "left out ansible_become_password" in result.stderr
    text = (tmp_path / "saf.toml").read_text()
    assert "hunter2" not in text  # passwords are never copied

    inv = load_inventory(tmp_path / "saf.toml")
    assert inv.names == ["studio", "mini1", "mini2", "gpu01.lab.internal"]
    studio = inv.node("studio")
    assert studio.host == "192.168.1.172"
    assert studio.user == "admin"
    assert studio.roles == ("head",)
    assert studio.tags == ("mac", "apple_silicon")  # apple_silicon via [apple_silicon:children]
    assert studio.python == "/opt/homebrew/bin/python3"  # host var beats [all:vars]

    mini1 = inv.node("mini1")  # from the range mini[1:2]
    assert mini1.host == "mini1"
    assert mini1.user == "ops"
    assert mini1.roles == ("worker",)
    assert "mac" in mini1.tags
    assert mini1.python == "/usr/bin/python3"  # [all:vars]
    assert mini1.vars["models_dir"] == "/Volumes/ai-models"

    gpu = inv.node("gpu01.lab.internal")
    assert gpu.port == 2222  # host:port
    assert gpu.identity == "~/.ssh/lab_gpu"
    assert gpu.tags == ("nvidia",)
    assert gpu.vars["gpus"] == 4  # inline values are literals, as in Ansible
    assert gpu.vars["gpu_model"] == "RTX 4090"


def test_ansible_kolla_layout_roles_tags_and_local(tmp_path: Path) -> None:
    result = saf("import", "ansible", str(FIXTURES / "kolla-multinode.ini"), "-o",
                 "lab.toml", "--name", "kolla", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    inv = load_inventory(tmp_path / "lab.toml")
    assert inv.cluster.name == "kolla"
    assert [n.name for n in inv.nodes if "control" in n.roles] == \
        ["control01", "control02", "control03"]
    assert [n.name for n in inv.nodes if "worker" in n.roles] == ["compute01", "compute02"]
    compute02 = inv.node("compute02")
    assert (compute02.host, compute02.port) == ("10.0.0.22", 2200)
    assert set(compute02.tags) == {"baremetal", "common"}
    assert "loadbalancer" in inv.node("network01").tags
    assert "tls-backend" in inv.node("control01").tags
    local = inv.node("localhost")
    assert local.connection == "local"
    assert local.tags == ("deployment",)


def test_ansible_ranges_vars_precedence_and_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", """\
ungrouped-box

[gpu]
gpu[01:03] ansible_user=root
node-[a:b].lab
x[0:10:5]

[gpu:vars]
ansible_user=ops
ansible_port=2200
cuda="12.4"

[all:vars]
ansible_port=22
""")
    draft = import_ansible(path)
    names = [n.name for n in draft.nodes]
    assert names == ["ungrouped-box", "gpu01", "gpu02", "gpu03", "node-a.lab", "node-b.lab",
                     "x0", "x5", "x10"]
    by = {n.name: n for n in draft.nodes}
    assert by["gpu01"].user == "root"  # host var beats group var
    assert by["x5"].user == "ops"
    assert by["x5"].port == 2200
    assert by["ungrouped-box"].port == 22
    assert by["ungrouped-box"].tags == []
    assert by["x0"].vars == {"cuda": "12.4"}
    inv = draft.validate(draft.to_toml("ansible"))
    assert inv.node("x10").port == 2200


def test_ansible_shared_settings_move_to_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "[all:vars]\nansible_user=ops\n\n[workers]\na\nb\n")
    draft = import_ansible(path)
    data = draft.data()
    assert data["defaults"] == {"user": "ops"}
    assert all("user" not in n for n in data["nodes"])


def test_ansible_accepts_every_range_form_and_skips_an_odd_line_with_a_warning(
        tmp_path: Path) -> None:
    """Ansible's default start (`mail[:2]` is mail0..mail2) beside the forms that worked
    already; a range Ansible itself would refuse skips its line, naming it, and the rest is
    imported."""
    path = write(tmp_path, "hosts", """\
[mail]
mail[:2].example.com
www[001:003]
db-[99:101]-node
web[05:01]
ok1
""")
    draft = import_ansible(path)
    assert [n.name for n in draft.nodes] == [
        "mail0.example.com", "mail1.example.com", "mail2.example.com",
        "www001", "www002", "www003", "db-99-node", "db-100-node", "db-101-node", "ok1"]
    assert draft.warnings == ["line 5: skipped 'web[05:01]': bad host range in 'web[05:01]'"]


def test_kubernetes_style_groups_become_head_and_workers(tmp_path: Path) -> None:
    """[control_plane] / [nodes] under a parent group: `--on head` works on the import, the
    parent names the cluster, and extra control-plane hosts become control nodes."""
    path = write(tmp_path, "hosts", """\
[control_plane]
cp1
cp2

[nodes]
n1
n2

[agents]
a1

[k8s_lab:children]
control_plane
nodes
agents
""")
    draft = import_ansible(path)
    roles = {n.name: n.roles for n in draft.nodes}
    assert roles == {"cp1": ["head"], "cp2": ["control"], "n1": ["worker"],
                     "n2": ["worker"], "a1": ["worker"]}
    assert draft.warnings == ["line 3: 'cp2' is in a head group too; a saf cluster has one "
                              "head ('cp1'), so it becomes a control node"]
    inv = draft.validate(draft.to_toml("ansible"))
    assert inv.cluster.name == "k8s_lab"
    assert [n.name for n in select(inv, "head")] == ["cp1"]
    assert [n.name for n in select(inv, "workers")] == ["n1", "n2", "a1"]


@pytest.mark.parametrize(("group", "role"), [("masters", "head"), ("master", "head"),
                                         ("controller", "head"), ("head", "head"),
                                         ("workers", "worker"), ("worker", "worker"),
                                         ("compute", "worker"), ("agents", "worker"),
                                         ("kube_node", "worker"), ("control", "control")])
def test_common_group_names_become_roles(tmp_path: Path, group: str, role: str) -> None:
    draft = import_ansible(write(tmp_path, "hosts", f"[{group}]\nh1\n"))
    assert draft.nodes[0].roles == [role]
    assert draft.cluster_name is None  # a lone role group is no cluster's name


@pytest.mark.parametrize(("text", "line", "words"), [
    ("[web]\nansible_host=10.0.0.1\n", 2, "no host name"),
    ("[web]\nweb1 ansible_port=99999\n", 2, "port from 1 to 65535"),
    ("[web]\nweb1\n\n[web:vars]\nansible_port=ssh\n", 5, "port from 1 to 65535"),
    ("[web]\nweb1 ansible_host=''\n", 2, "ansible_host for web1 is empty"),
    ("[web]\nweb1 ansible_host='{{ lookup(\"env\", \"IP\") }}'\n", 2, "Jinja template"),
    ("[web]\nweb1 oops\n", 2, "expected key=value"),
    ("[web:foo]\nweb1\n", 1, "unknown section type"),
    ("[web\nweb1\n", 1, "bad section header"),
    ("[a:children]\nb\n\n[b:children]\na\n\n[a]\nh1\n", 1, "its own ancestor"),
    ("all:\n  hosts:\n    web1:\n", 1, "YAML inventory"),
    ("# nothing here\n[web]\n", None, "no hosts found"),
    ("[web]\nfe80::1\n", 2, "IPv6"),
    ("[web]\nweb1 'unclosed\n", 2, "cannot read host line"),
    ("[web]\nweb/1\n", 2, "cannot be a saf node name"),
])
def test_ansible_errors_name_the_line(tmp_path: Path, text: str, line: int | None,
                                      words: str) -> None:
    error = ansible_error(tmp_path, text)
    assert words in error.detail
    assert error.line == line
    assert str(error).startswith(str(tmp_path / "hosts.ini") + (f":{line}:" if line else ":"))


# -- Ray -------------------------------------------------------------------------------------

def test_ray_full_example_becomes_a_loadable_inventory(tmp_path: Path) -> None:
    result = saf("import", "ray", str(FIXTURES / "ray-onprem-full.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    inv = load_inventory(tmp_path / "saf.toml")
    assert inv.cluster.name == "saf-lab"
    assert inv.head is not None
    assert inv.head.host == "192.168.1.172"
    workers = [n for n in inv.nodes if "worker" in n.roles]
    assert [w.host for w in workers] == ["192.168.1.173", "192.168.1.174",
                                         "gpu-box.lab.internal"]
    assert all(n.user == "ops" and n.identity == "~/.ssh/id_ed25519" for n in inv.nodes)
    assert inv.defaults.user == "ops"


def test_ray_minimal_with_external_head_ip(tmp_path: Path) -> None:
    draft = import_ray(FIXTURES / "ray-minimal-manual.yaml")
    inv = draft.validate(draft.to_toml("ray"))
    assert inv.cluster.name == "minimal-manual"
    assert inv.head is not None
    assert inv.head.host == "head.example.org"
    assert inv.head.vars == {"ray_head_ip": "10.0.0.1"}
    assert [n.host for n in inv.nodes[1:]] == ["10.0.0.2", "10.0.0.3"]
    assert all(n.user == "ubuntu" and n.identity is None for n in inv.nodes)


BASE = "cluster_name: c\nprovider:\n  type: local\n"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("cluster_name: c\nprovider: {type: local\n", 3, "YAML syntax error"),
    ("cluster_name: c\nprovider:\n  type: local\n  head_ip: [a\n", 5, "YAML syntax error"),
    (BASE + "  worker_ips: [10.0.0.2]\n", 2, "provider.head_ip is missing"),
    (BASE + "  head_ip: ''\n", 4, "provider.head_ip is missing"),
    (BASE + "  head_ip: 10.0.0.1\n  worker_ips: [10.0.0.2, null]\n", 5, "not an address"),
    (BASE + "  head_ip: 10.0.0.1\n  worker_ips:\n    - 10.0.0.2\n    -\n", 7, "not an address"),
    (BASE + "  head_ip: 10.0.0.1\n  worker_ips: 10.0.0.2\n", 5, "must be a list"),
    (BASE + "  head_ip: 10.0.0.1\n  worker_ips: [10.0.0.2, 10.0.0.1]\n", 5, "listed twice"),
    (BASE + "  head_ip: 10.0.0.1\nauth:\n  ssh_user: 7\n", 6, "auth.ssh_user"),
    ("cluster_name: c\nprovider:\n  type: aws\n  region: us-west-2\n", 3, "provider type"),
    ("cluster_name: c\n", 1, "no provider section"),
    ("- just\n- a list\n", 1, "is a mapping"),
    (BASE + "  coordinator_address: '10.0.0.9:1234'\n", 4, "coordinator"),
])
def test_ray_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    error = ray_error(tmp_path, text)
    assert words in error.detail
    assert error.line == line
    assert str(error).startswith(f"{tmp_path / 'cluster.yaml'}:{line}:")


# -- writing ---------------------------------------------------------------------------------

def test_import_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "saf.toml"
    target.write_text("# mine\n")
    result = saf("import", "ray", str(FIXTURES / "ray-onprem-full.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "saf.toml: already exists; pass --force" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == "# mine\n"

    result = saf("import", "ray", str(FIXTURES / "ray-onprem-full.yaml"), "--force",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_inventory(target).cluster.name == "saf-lab"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saf.toml"]  # no temp file left


def test_import_error_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path, "cluster.yaml", BASE + "  worker_ips: [10.0.0.2]\n")
    result = saf("import", "ray", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"saf: {bad}:2: provider.head_ip is missing: saf needs "
                                     "the head node's address")
    assert not (tmp_path / "saf.toml").exists()

    result = saf("import", "ansible", str(tmp_path / "missing.ini"), cwd=tmp_path)
    assert result.returncode == 2
    assert "missing.ini: no such file" in result.stderr


def test_import_to_stdout(tmp_path: Path) -> None:
    result = saf("import", "ansible", str(FIXTURES / "kolla-multinode.ini"), "-o", "-",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Imported by `saf import ansible` from kolla-multinode")
    assert 'name = "compute02"' in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_ray_example_placeholders_are_refused_with_each_line(tmp_path: Path) -> None:
    """Ray's own local example, unfilled: refused, every placeholder named with its line,
    and no saf.toml written."""
    path = write(tmp_path, "cluster.yaml", """\
cluster_name: default
provider:
    type: local
    head_ip: YOUR_HEAD_NODE_HOSTNAME
    # external_head_ip: YOUR_HEAD_PUBLIC_IP
    worker_ips: [WORKER_NODE_1_HOSTNAME, WORKER_NODE_2_HOSTNAME, ... ]
auth:
    ssh_user: YOUR_USERNAME
""")
    with pytest.raises(ConfigError) as info:
        import_ray(path)
    assert info.value.line == 4
    assert info.value.detail == (
        "5 placeholder(s) from Ray's example are still in this file (line 4: provider.head_ip "
        "= YOUR_HEAD_NODE_HOSTNAME; line 6: worker_ips[0] = WORKER_NODE_1_HOSTNAME; line 6: "
        "worker_ips[1] = WORKER_NODE_2_HOSTNAME; line 6: worker_ips[2] = ...; line 8: "
        "auth.ssh_user = YOUR_USERNAME); put in your machines' addresses and user first")
    result = saf("import", "ray", str(path), "-o", "saf.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "placeholder" in result.stderr
    assert not (tmp_path / "saf.toml").exists()


@pytest.mark.parametrize("args", [
    "-o ProxyJump=ops@bastion.lab:2222",
    "-o ProxyJump ops@bastion.lab:2222",
    "-oProxyJump=ops@bastion.lab:2222",
    "-o StrictHostKeyChecking=no -J ops@bastion.lab:2222",
    "-Jops@bastion.lab:2222 -o ProxyJump=other",
    "-o proxyjump=ops@bastion.lab:2222",
])
def test_ansible_proxyjump_becomes_the_nodes_jump(tmp_path: Path, args: str) -> None:
    """The ProxyJump in ansible_ssh_common_args is the node's `jump` in saf.toml (it only
    warned while the inventory had no key for it), read back by the loader as one hop; the
    args stay a node var as before."""
    path = write(tmp_path, "hosts.ini",
                 "[gpu]\n"
                 f"gpu1 ansible_host=10.0.0.5 ansible_ssh_common_args='{args}'\n"
                 "gpu2 ansible_host=10.0.0.6\n")
    draft = import_ansible(path)
    assert draft.warnings == []
    assert draft.nodes[0].vars["ansible_ssh_common_args"] == args
    text = draft.to_toml("ansible")
    assert 'jump = "ops@bastion.lab:2222"' in text
    gpu1, gpu2 = draft.validate(text).nodes
    assert gpu2.jump is None
    assert gpu1.jump is not None
    (hop,) = gpu1.jump
    assert (hop.host, hop.port, hop.user) == ("bastion.lab", 2222, "ops")


def test_an_ansible_jump_through_an_imported_host_names_that_node(tmp_path: Path) -> None:
    """[all:vars] gives every host the same -J: the host it names (by name or address) is
    a node, so the others name it (one connection to it, shared) and it is reached
    directly; a bare host name that is not a node is written ssh://NAME."""
    path = write(tmp_path, "hosts.ini",
                 "[edge]\ngate ansible_host=192.0.2.1\n\n"
                 "[gpu]\ngpu1 ansible_host=10.0.0.5\n"
                 "gpu2 ansible_host=10.0.0.6 ansible_ssh_common_args='-J jumpbox'\n\n"
                 "[all:vars]\nansible_ssh_common_args='-o ProxyJump=192.0.2.1'\n")
    draft = import_ansible(path)
    assert [(n.name, n.jump) for n in draft.nodes] == [
        ("gate", None), ("gpu1", "gate"), ("gpu2", "ssh://jumpbox")]
    inventory = draft.validate(draft.to_toml("ansible"))
    gate = inventory.node("gate")
    assert inventory.node("gpu1").jump == (gate,)
    assert [h.host for h in inventory.node("gpu2").jump or ()] == ["jumpbox"]


def test_an_ansible_jump_saf_cannot_read_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.ini", "[gpu]\ngpu1 ansible_host=10.0.0.5 "
                 "ansible_ssh_common_args='-J ops@[fe80::1'\ngpu2\n")
    draft = import_ansible(path)
    with pytest.raises(ConfigError) as info:
        draft.validate(draft.to_toml("ansible"))
    assert str(info.value) == (
        f"{path}:2: node 'gpu1': jump 'ops@[fe80::1' is neither a node's name nor "
        "[user@]host[:port] hops separated by commas: 'ops@[fe80::1': '[' without a matching "
        "']'")


def test_ansible_ssh_args_without_a_jump_say_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.ini", "[gpu]\ngpu1 ansible_host=10.0.0.5 "
                 "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o Port=22'\n")
    assert import_ansible(path).warnings == []
