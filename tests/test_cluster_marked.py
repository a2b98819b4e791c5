"""saf up's mark on the services it installs, read back from the files each manager keeps
(rendered by saf's own writers): only a marked service of this cluster is listed, so a
service a plain `saf run` installed (no mark) or another cluster's is never an orphan."""

from __future__ import annotations

from saf.cluster.detached import spec_json
from saf.cluster.marked import Marked, parse
from saf.cluster.units import ServiceSpec, render_launchd, render_systemd

HEAD = "@@saf-marked-file@@ "


def _spec(name: str, up: str | None) -> ServiceSpec:
    return ServiceSpec(name=name, argv=("/usr/bin/python3", "-m", "http.server"), up=up)


def test_only_this_cluster_s_marked_services_are_listed() -> None:
    output = "".join([
        f"{HEAD}/etc/systemd/system/saf-web.service\n"
        + render_systemd(_spec("web", "lab 100%"), system=True) + "\n",
        f"{HEAD}/home/u/.config/systemd/user/saf-mine.service\n"
        + render_systemd(_spec("mine", None), system=False) + "\n",
        f"{HEAD}/home/u/.config/systemd/user/saf-theirs.service\n"
        + render_systemd(_spec("theirs", "other"), system=False) + "\n",
        f"{HEAD}/Users/u/Library/LaunchAgents/saf-model-tiny.plist\n"
        + render_launchd(_spec("model-tiny", "lab 100%"), daemon=False,
                         home="/Users/u").decode() + "\n",
        f"{HEAD}/home/u/.saf/services/beat/spec.json\n"
        + spec_json(_spec("beat", "lab 100%")) + "\n",
        f"{HEAD}/home/u/.saf/services/hand/spec.json\n" + spec_json(_spec("hand", None)),
        f"{HEAD}/home/u/.saf/services/broken/spec.json\n{{not json\n",
    ])
    assert parse(output, "lab 100%") == [
        Marked("web", "systemd"), Marked("model-tiny", "launchd-agent"),
        Marked("beat", "detached")]
    assert parse(output, "other") == [Marked("theirs", "systemd-user")]


def test_an_unmarked_unit_renders_as_before() -> None:
    assert "X-Saf-Up" not in render_systemd(_spec("web", None), system=True)
    assert '"up"' not in spec_json(_spec("web", None))
    assert "X-Saf-Up=lab" in render_systemd(_spec("web", "lab"), system=True).splitlines()
