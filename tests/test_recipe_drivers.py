"""The driver, tuning and shared-storage recipes against recorded machines.

Each node is a real SSH server on loopback whose tools are recorded-output players of a real
machine (tests/helpers/recorded.py, tests/fixtures/machines/README.md): an Ubuntu 24.04 box
with an RTX 3090 before the driver, with the driver waiting for a reboot, after it, and with
a Secure Boot key waiting; an Ubuntu box with an Arc A770 before and after Intel's runtime; a
Mac Studio. `--check` must say what each recipe would do there, and run nothing but facts:
the players log every call, and a tool that would change the machine has no recording.
No GPU is pretended: where saf asks NVML through its agent, the agent runs on this machine.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from saf.errors import UsageError
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from tests.helpers.recorded import RecordedNodes

RECIPES = Path(__file__).parent.parent / "recipes"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="become steps need root (CI has it)")

# Calls a --check may make: the facts. Anything else (apt-get, usermod, nvidia-smi -pm...)
# would change the machine.
FACT_CALLS = ("uname ", "ubuntu-drivers devices", "mokutil --sb-state", "mokutil --list-new",
              "modprobe -n -v ", "nvidia-smi -L", "nvidia-smi --query-gpu=", "clinfo -l",
              "su -l ", "system_profiler -json ", "pmset -g", "mdutil -s ", "python -c ",
              "getcap ")


class Ran:
    def __init__(self, status: str, events: list[Event]) -> None:
        self.status = status
        self.events = events

    def step(self, index: int, node: str = "n") -> NodeStepFinished:
        return next(e for e in self.events if isinstance(e, NodeStepFinished)
                    and e.step == index and e.node == node)

    def statuses(self, node: str = "n") -> list[str]:
        return [e.status for e in self.events
                if isinstance(e, NodeStepFinished) and e.node == node]


def run(nodes: RecordedNodes, recipe: str, *, check: bool = True, **variables: str) -> Ran:
    async def go() -> Ran:
        events: list[Event] = []
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            prepared = await prepare(load_recipe(RECIPES / f"{recipe}.toml"), fleet,
                                     variables, None)
            status = await Runner(prepared, fleet, events.append, run_id="t",
                                  check=check).run()
        return Ran(status, events)
    return asyncio.run(go())


@pytest.fixture
def machine(tmp_path: Path):
    started: list[RecordedNodes] = []

    def start(name: str, **kw) -> RecordedNodes:
        nodes = RecordedNodes(tmp_path / f"m{len(started)}", {"n": name}, **kw)
        started.append(nodes)
        return nodes
    yield start
    for nodes in started:
        nodes.close()


def only_facts(nodes: RecordedNodes) -> None:
    changes = [c for c in nodes.calls() if not c.startswith(FACT_CALLS)]
    assert not changes, f"--check ran commands that change the machine: {changes}"


# -- driver-nvidia ---------------------------------------------------------------------------
def test_nvidia_driver_skips_a_node_without_an_nvidia_device(machine) -> None:
    """The Arc box has no 10de: vendor on its PCI bus: the node leaves the recipe, every step
    skipped with the reason, instead of failing on ubuntu-drivers (or, past it, on nvidia-smi);
    the RTX 3090 box (10de) still plans it."""
    arc = machine("ubuntu2404-arc-a770-before")
    ran = run(arc, "driver-nvidia")
    assert ran.status == "ok"
    for index in range(5):  # the reboot, nvidia-smi and NVML steps skip it too
        step = ran.step(index)
        assert step.status == "skipped", (index, step.message)
        assert step.message.startswith("no NVIDIA device (no 10de: vendor"), step.message
    only_facts(arc)
    rtx = machine("ubuntu2404-rtx3090-before")
    assert run(rtx, "driver-nvidia").step(0).status == "changed"


def test_nvidia_check_before_the_driver(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-before")
    ran = run(nodes, "driver-nvidia")
    assert ran.status == "ok"
    driver, reboot, persistence, power, gpu = (ran.step(i) for i in range(5))
    assert driver.status == "changed"
    assert driver.would == [
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -- nvidia-driver-570"]
    assert "would install nvidia-driver-570" in driver.message  # headers are there already
    assert reboot.status == "changed"
    assert "kernel module nvidia will not load" in reboot.message
    assert "--var reboot=true" in reboot.message
    assert persistence.status == "changed"
    assert persistence.would == ["nvidia-smi -pm 1"]
    assert power.status == "skipped"  # no power_limit asked for
    assert gpu.status == "skipped"
    assert "nvidia-smi -L failed" in gpu.message
    assert "not found" in gpu.message
    only_facts(nodes)
    assert "ubuntu-drivers devices" in nodes.calls()


def test_nvidia_named_driver_and_power_limit(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-before")
    ran = run(nodes, "driver-nvidia", driver="550-open", power_limit="300")
    assert ran.step(0).would == [
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -- nvidia-driver-550-open"]
    assert "ubuntu-drivers devices" not in nodes.calls()  # a named driver needs no advice
    assert ran.step(3).would == ["nvidia-smi -pl 300"]


def test_nvidia_refuses_a_driver_that_is_not_one(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-before")
    # Not a package name at all: refused before anything runs, naming the variable.
    with pytest.raises(UsageError, match="--var driver: the value is not a Debian package"):
        run(nodes, "driver-nvidia", driver="latest; reboot")
    ran = run(nodes, "driver-nvidia", driver="latest")  # a name, but not a driver
    assert ran.status == "failed"
    assert "driver must be 'recommended'" in ran.step(0).message


def test_nvidia_check_after_the_driver(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-after")
    ran = run(nodes, "driver-nvidia", power_limit="300")
    driver, reboot, persistence, power, gpu = (ran.step(i) for i in range(5))
    assert driver.status == "skipped"
    assert "has nvidia-driver-570" in driver.message
    assert reboot.status == "skipped"
    assert reboot.message == "no reboot needed"
    assert persistence.would == ["nvidia-smi -pm 1"]  # recorded: Disabled
    assert power.would == ["nvidia-smi -pl 300"]      # recorded: 350 W
    # nvidia-smi is the recording; NVML is asked of saf's agent on this machine, which has
    # no NVIDIA GPU (unless it does): the step says both.
    assert "GPU 0: NVIDIA GeForce RTX 3090" in gpu.message
    assert "NVML" in gpu.message
    only_facts(nodes)


def test_nvidia_power_limit_already_set(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-after")
    assert run(nodes, "driver-nvidia", power_limit="350").step(3).status == "skipped"


def test_needs_a_reboot_is_a_named_state(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-needs-reboot")
    ran = run(nodes, "driver-nvidia", check=False)
    assert ran.status == "failed"
    assert ran.step(0).status == "skipped"
    reboot = ran.step(1)
    assert reboot.status == "failed"
    assert reboot.message.startswith("needs a reboot: the system says a reboot is required")
    assert "nvidia-dkms-570" in reboot.message
    assert "(next: reboot the node)" in reboot.message
    assert "kernel module nvidia will not load (modprobe: FATAL: Module nvidia not found" \
        in reboot.message
    assert "--var reboot=true" in reboot.message
    assert ran.statuses() == ["skipped", "failed"]  # the run stops there
    assert not any(c.startswith("systemctl") for c in nodes.calls())


def test_secure_boot_key_pending(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-mok-pending")
    reboot = run(nodes, "driver-nvidia").step(1)
    assert "Secure Boot is on and a Machine Owner Key enrollment is pending" in reboot.message
    assert "Enroll MOK" in reboot.message
    nodes2 = machine("ubuntu2404-rtx3090-mok-pending")
    reboot = run(nodes2, "driver-nvidia", check=False).step(1)
    assert reboot.status == "failed"
    assert "Key was rejected by service" in reboot.message
    assert "not signed for Secure Boot" in reboot.message


def test_reboot_waits_for_ssh_and_checks_again(machine) -> None:
    """--var reboot=true: saf runs the reboot command (here a player the test watches), the
    test takes the node's SSH server down and brings it back as the machine after the reboot
    (new boot id, the module loaded); saf waits, reconnects and checks again."""
    nodes = machine("ubuntu2404-rtx3090-needs-reboot")
    rebooted = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "systemctl reboot" in nodes.calls():
                nodes.restart("n", "ubuntu2404-rtx3090-after", down_for=1.5)
                rebooted.set()
                return
            time.sleep(0.05)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ran = run(nodes, "driver-nvidia", check=False, reboot="true")
    watcher.join(5)
    assert rebooted.is_set()
    reboot = ran.step(1)
    assert reboot.status == "changed", reboot.message
    assert reboot.message.startswith("rebooted; SSH back after")
    persistence = ran.step(2)
    assert persistence.status == "changed"  # ran on the machine that came back
    assert "GPU 0: NVIDIA GeForce RTX 3090" in ran.step(4).message
    assert nodes.calls().count("systemctl reboot") == 1


def test_reboot_that_never_happens_times_out(machine, tmp_path: Path) -> None:
    nodes = machine("ubuntu2404-rtx3090-needs-reboot")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[steps]]\nkind = "reboot"\nallow = "true"\nwait = 3\nbecome = true\n')

    async def go() -> NodeStepFinished:
        events: list[Event] = []
        async with Fleet(load_inventory(nodes.inventory)) as fleet:
            prepared = await prepare(load_recipe(recipe), fleet, {}, None)
            await Runner(prepared, fleet, events.append, run_id="t").run()
        return next(e for e in events if isinstance(e, NodeStepFinished))
    result = asyncio.run(go())
    assert result.status == "failed"
    assert "did not come back with a new boot id within 3 s" in result.message


# -- driver-intel-arc ------------------------------------------------------------------------
INTEL = ("libze-intel-gpu1 libze1 intel-metrics-discovery intel-opencl-icd clinfo intel-gsc "
         "libze-dev intel-ocloc")


def test_intel_check_before_the_runtime(machine) -> None:
    nodes = machine("ubuntu2404-arc-a770-before")
    ran = run(nodes, "driver-intel-arc")
    runtime, group, clinfo = (ran.step(i) for i in range(3))
    assert runtime.would == ["add-apt-repository -y ppa:kobuk-team/intel-graphics",
                             "apt-get update",
                             f"DEBIAN_FRONTEND=noninteractive apt-get install -y -- {INTEL}"]
    assert group.status == "changed"
    assert "usermod -aG render" in group.would[0]
    assert "chmod" not in " ".join(runtime.would + group.would)
    assert clinfo.status == "skipped"  # it only reads: never "would change"
    assert clinfo.message.startswith("--check: not run (not yet: clinfo -l as ")
    tools, perfmon = ran.step(3), ran.step(4)
    assert tools.would == ["DEBIAN_FRONTEND=noninteractive apt-get install -y -- intel-gpu-tools"]
    # CAP_PERFMON on intel_gpu_top alone, not perf_event_paranoid for every program.
    assert perfmon.would == ["setcap cap_perfmon=ep /usr/bin/intel_gpu_top && getcap "
                             "/usr/bin/intel_gpu_top"]
    assert "getcap /usr/bin/intel_gpu_top" in nodes.calls()
    assert "perf_event_paranoid" not in " ".join(tools.would + perfmon.would)
    only_facts(nodes)


def test_intel_check_after_the_runtime(machine) -> None:
    nodes = machine("ubuntu2404-arc-a770-after")
    ran = run(nodes, "driver-intel-arc", user="ada", expect="A770")
    assert ran.step(0).status == "skipped"
    clinfo = ran.step(2)
    assert clinfo.status == "ok"
    assert clinfo.message == "clinfo -l as ada lists Arc A770 (Intel(R) Graphics [0x56a0])"
    assert "su -l ada -c clinfo -l" in nodes.calls()  # a fresh login as that user
    assert [ran.step(3).status, ran.step(4).status] == ["skipped", "skipped"]
    only_facts(nodes)


# -- apple-check, macos-tuning ---------------------------------------------------------------
def test_apple_check_reports_the_chip(machine) -> None:
    nodes = machine("macstudio-m2ultra", os_of={"n": "macos"})
    ran = run(nodes, "apple-check", check=False)
    chip, mlx = ran.step(0), ran.step(1)
    assert chip.status == "ok"
    assert chip.message == ("Apple M2 Ultra (Mac Studio Mac14,14), 60 GPU cores, 64 GB unified "
                            "memory")
    assert mlx.status == "failed"
    assert "MLX does not import" in mlx.message


MACMON = ("for b in \"$(command -v brew)\" /opt/homebrew/bin/brew /usr/local/bin/brew; do "
          "[ -x \"$b\" ] && exec \"$b\" install macmon; done; echo 'Homebrew is not installed "
          "(https://brew.sh): install it, then rerun apple-check'; exit 1")


def test_apple_check_would_install_macmon(machine) -> None:
    """The Mac Studio has no macmon: --check says it would `brew install macmon` (as the login
    user, not root), and calls no brew."""
    nodes = machine("macstudio-m2ultra", os_of={"n": "macos"})
    ran = run(nodes, "apple-check")
    macmon = ran.step(2)
    assert macmon.status == "changed"
    assert macmon.would == [MACMON]
    assert not [c for c in nodes.calls() if c.startswith("brew")]
    only_facts(nodes)


def test_apple_check_leaves_an_installed_macmon(machine) -> None:
    nodes = machine("macstudio-m2ultra", os_of={"n": "macos"})
    on_path = nodes.root / "bin" / "n-macstudio-m2ultra" / "macmon"
    on_path.symlink_to(Path(__file__).parent / "fixtures" / "machines" / "player.py")
    assert run(nodes, "apple-check").step(2).status == "skipped"
    assert not [c for c in nodes.calls() if c.startswith(("brew", "macmon"))]


def test_apple_check_mlx_sees_the_gpu(machine) -> None:
    nodes = machine("macstudio-m2ultra", os_of={"n": "macos"})
    venv = nodes.root / "homes" / "n" / ".saf" / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(Path(__file__).parent / "fixtures" / "machines" / "player.py")
    ran = run(nodes, "apple-check", check=False)
    assert ran.step(1).status == "ok"
    assert ran.step(1).message.endswith("MLX sees Device(gpu, 0)")


def test_macos_tuning_check(machine) -> None:
    nodes = machine("macstudio-m2ultra", os_of={"n": "macos"})
    (nodes.root / "homes" / "n" / "models").mkdir(parents=True)
    ran = run(nodes, "macos-tuning")
    sleep, nap, spotlight = (ran.step(i) for i in range(3))
    assert sleep.status == "changed"
    assert sleep.would[0].startswith("pmset -a sleep 0 disksleep 0")
    assert nap.status == "changed"
    assert nap.would[0].startswith("pmset -a powernap 0")
    assert spotlight.status == "changed"
    assert "mdutil -i off" in spotlight.would[0]
    only_facts(nodes)


# -- linux-tuning ----------------------------------------------------------------------------
def test_linux_tuning_check(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-after")
    ran = run(nodes, "linux-tuning")
    settings, governor, persistence, grub, reboot = (ran.step(i) for i in range(5))
    assert settings.message == ("would set kernel.numa_balancing 1 -> 0, vm.swappiness 60 -> 10")
    assert settings.would[1] == 'sysctl -p "${SAF_FACTS_ROOT:-}"/etc/sysctl.d/90-saf-tuning.conf'
    assert governor.status == "changed"  # recorded: powersave
    assert persistence.would == ["nvidia-smi -pm 1"]
    assert grub.status == "skipped"      # no isolcpus asked for
    assert reboot.status == "skipped"
    only_facts(nodes)


def test_linux_tuning_isolated_cores_need_a_reboot(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-after")
    ran = run(nodes, "linux-tuning", isolcpus="2-7", hugepages="1024")
    assert "vm.nr_hugepages 0 -> 1024" in ran.step(0).message
    assert ran.step(3).status == "changed"
    assert "update-grub" in ran.step(3).would[0]
    assert "for a in isolcpus=2-7 nohz_full='' " in ran.step(3).would[0]
    reboot = ran.step(4)
    assert "the running kernel lacks isolcpus=2-7 on its command line" in reboot.message
    assert "flag" not in reboot.message  # only the command line counts here
    only_facts(nodes)


def test_linux_tuning_kernel_arguments_of_the_nvidia_seed(machine) -> None:
    """nohz_full, rcu_nocbs, iommu=pt, boot-time 1G hugepages and transparent hugepages with
    isolcpus, and vm.overcommit_memory: --check says each, the real run edits the recorded
    machine's /etc/default/grub (every other line kept, a backup made) and calls update-grub,
    and the reboot step then wants every argument on the running kernel."""
    nodes = machine("ubuntu2404-rtx3090-after")
    root = nodes.facts_root("n")
    (root / "proc/sys/vm/overcommit_memory").write_text("0\n")
    asked = {"isolcpus": "2-15", "nohz_full": "2-15", "rcu_nocbs": "2-15", "iommu": "pt",
             "boot_hugepages": "64", "transparent_hugepage": "never", "overcommit": "1"}
    ran = run(nodes, "linux-tuning", **asked)
    assert "vm.overcommit_memory 0 -> 1" in ran.step(0).message
    grub, reboot = ran.step(3), ran.step(4)
    assert grub.status == "changed"
    assert grub.would[0].startswith('f="${SAF_FACTS_ROOT:-}"/etc/default/grub\n')
    assert "for a in isolcpus=2-15 nohz_full=2-15 rcu_nocbs=2-15 iommu=pt " \
           "transparent_hugepage=never default_hugepagesz=$([ -n 64 ] && printf %s 1G) " \
           "hugepagesz=$([ -n 64 ] && printf %s 1G) hugepages=64; do" in grub.would[0]
    assert reboot.message.startswith(
        "needs a reboot: the running kernel lacks isolcpus=2-15 nohz_full=2-15 rcu_nocbs=2-15 "
        "iommu=pt transparent_hugepage=never hugepages=64")
    only_facts(nodes)
    before = (root / "etc/default/grub").read_text()
    # For real, with the other steps left with nothing to do (sysctl and nvidia-smi -pm are
    # players without a recording too): the settings as recorded, the governor already set.
    asked.update(overcommit="", numa_balancing="1", swappiness="60", persistence="false")
    for cpu in (root / "sys/devices/system/cpu").glob("cpu*/cpufreq/scaling_governor"):
        cpu.write_text("performance\n")
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "etc/sysctl.d/90-saf-tuning.conf").write_text(
        "# written by saf\nkernel.numa_balancing = 1\nvm.swappiness = 60\n")
    done = run(nodes, "linux-tuning", check=False, **asked)
    assert done.statuses()[:3] == ["skipped"] * 3
    after = (root / "etc/default/grub").read_text()
    line = ('GRUB_CMDLINE_LINUX_DEFAULT="isolcpus=2-15 nohz_full=2-15 rcu_nocbs=2-15 iommu=pt '
            'transparent_hugepage=never default_hugepagesz=1G hugepagesz=1G hugepages=64"')
    assert line in after.splitlines()
    assert [x for x in after.splitlines() if x != line] == \
        [x for x in before.splitlines() if not x.startswith("GRUB_CMDLINE_LINUX_DEFAULT=")]
    assert (root / "etc/default/grub.saf-backup").read_text() == before
    assert "update-grub" in nodes.calls()  # a player without a recording: the step fails
    assert done.step(3).status == "failed"
    # Asked again with the file as it now is: the arguments are there; the running kernel
    # still lacks them, and the reboot step says so.
    again = run(nodes, "linux-tuning", **asked)
    assert again.step(3).status == "skipped"
    assert again.step(4).message.startswith("needs a reboot: the running kernel lacks isolcpus")
    # A changed value replaces the old one, it is not added beside it.
    run(nodes, "linux-tuning", check=False, **{**asked, "iommu": "on"})
    edited = (root / "etc/default/grub").read_text()
    assert edited.count("iommu=") == 1
    assert " iommu=on " in edited


def test_linux_tuning_writes_its_sysctl_file_where_it_read_it(machine) -> None:
    """On a recorded machine (SAF_FACTS_ROOT) the sysctl step writes its file under that root,
    as it reads it: it once wrote the test machine's own /etc/sysctl.d."""
    nodes = machine("ubuntu2404-rtx3090-after")
    root = nodes.facts_root("n")
    real = Path("/etc/sysctl.d/90-saf-tuning.conf")
    there_before = real.exists()
    (root / "etc/sysctl.d").mkdir(parents=True)
    try:
        done = run(nodes, "linux-tuning", check=False, persistence="false", governor="")
        assert done.step(0).status == "failed"  # sysctl is a player without a recording
        assert (root / "etc/sysctl.d/90-saf-tuning.conf").read_text() == (
            "# written by saf\nkernel.numa_balancing = 0\nvm.swappiness = 10\n")
        assert real.exists() == there_before
    finally:
        if real.exists() and not there_before:
            real.unlink()


def test_linux_tuning_already_tuned(machine) -> None:
    nodes = machine("ubuntu2404-rtx3090-after")
    root = nodes.facts_root("n")
    (root / "proc/sys/kernel/numa_balancing").write_text("0\n")
    (root / "proc/sys/vm/swappiness").write_text("10\n")
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "etc/sysctl.d/90-saf-tuning.conf").write_text(
        "# written by saf\nkernel.numa_balancing = 0\nvm.swappiness = 10\n")
    for cpu in (root / "sys/devices/system/cpu").glob("cpu*/cpufreq/scaling_governor"):
        cpu.write_text("performance\n")
    ran = run(nodes, "linux-tuning", persistence="false")
    assert ran.statuses() == ["skipped"] * 5


# -- nfs-models ------------------------------------------------------------------------------
def test_nfs_models_check(tmp_path: Path) -> None:
    nodes = RecordedNodes(tmp_path, {"box": "ubuntu2404-rtx3090-after",
                                     "arc": "ubuntu2404-arc-a770-after",
                                     "mac": "macstudio-m2ultra"},
                          os_of={"mac": "macos"}, head="box")
    try:
        models = str(tmp_path / "srv-models")
        ran = run(nodes, "nfs-models", models=models)
        assert ran.step(0, "box").would == [
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -- nfs-kernel-server"]
        assert ran.step(2, "box").status == "changed"  # not exported yet
        assert ran.step(3, "arc").status == "changed"   # nfs-common not installed
        assert ran.step(3, "mac").status == "skipped"   # macOS has its NFS client
        mount_arc, mount_mac = ran.step(4, "arc"), ran.step(4, "mac")
        assert mount_arc.status == mount_mac.status == "changed"
        assert "/etc/fstab" in mount_arc.would[0]
        assert "auto_nfs" in mount_mac.would[0]
        assert {ran.step(6, n).status for n in ("arc", "mac")} == {"changed"}
        only_facts(nodes)
    finally:
        nodes.close()
