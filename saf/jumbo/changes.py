"""The commands that change a node's MTU (and macOS media), the ones that put it back, and
the ones that keep it over a reboot, per OS. Pure: facts in, command lines out."""

from __future__ import annotations

from dataclasses import dataclass, field

from saf.jumbo.facts import NodeNet
from saf.shell import quote


@dataclass(frozen=True)
class Change:
    apply: list[str]
    restore: list[str]
    persist: list[str] = field(default_factory=list)
    persist_note: str = ""
    what: list[str] = field(default_factory=list)  # "MTU 1500 -> 9000 on eth0"


def media_words(media: str) -> list[str]:
    """"10Gbase-T <full-duplex>" or "10Gbase-T full-duplex" -> networksetup's arguments
    (the subtype, then its options)."""
    subtype, _, rest = media.strip().partition(" ")
    options = rest.replace("<", " ").replace(">", " ").replace(",", " ").split()
    return [subtype, *options]


def _same_media(current: str | None, wanted: str) -> bool:
    return current is not None and media_words(current) == media_words(wanted)


def change(net: NodeNet, mtu: int, *, media: str | None = None,
           nm_connection: str | None = None, persist: bool = True) -> Change | None:
    """What must run on the node to reach `mtu` (and `media`), or None when it already has."""
    iface = net.found.interface
    apply: list[str] = []
    restore: list[str] = []
    what: list[str] = []
    if net.os == "macos":
        port = quote(net.found.port or iface.name)
        if media and not _same_media(iface.media, media):
            apply.append(f"networksetup -setMedia {port} "
                         + " ".join(quote(w) for w in media_words(media)))
            restore.append(f"networksetup -setMedia {port} "
                           + " ".join(quote(w) for w in media_words(iface.media or "autoselect")))
            what.append(f"media {iface.media or '?'} -> {media} on {net.found.port}")
        if iface.mtu != mtu:
            apply.append(f"networksetup -setMTU {port} {mtu}")
            restore.insert(0, f"networksetup -setMTU {port} {iface.mtu}")
            what.insert(0, f"MTU {iface.mtu} -> {mtu} on {net.found.port} ({iface.name})")
        if not apply:
            return None
        # networksetup keeps its settings in the system configuration: they last by themselves.
        return Change(apply, restore, [], "networksetup's settings last over a reboot", what)
    if iface.mtu == mtu:
        return None
    dev = quote(iface.name)
    apply = [f"ip link set dev {dev} mtu {mtu}"]
    restore = [f"ip link set dev {dev} mtu {iface.mtu}"]
    if iface.up:
        # A link taken down meanwhile comes back with the old MTU.
        restore.append(f"ip link set dev {dev} up")
    what = [f"MTU {iface.mtu} -> {mtu} on {iface.name}"]
    persist_cmds: list[str] = []
    if not persist:
        note = "not made persistent (persist = false): back to the old MTU at the next reboot"
    elif net.manager == "networkmanager" and nm_connection:
        persist_cmds = [f"nmcli connection modify {quote(nm_connection)} "
                        f"802-3-ethernet.mtu {mtu}"]
        note = f"kept by NetworkManager (connection {nm_connection})"
    elif net.manager == "netplan":
        persist_cmds = ["netplan set " + quote(f"ethernets.{iface.name}.mtu={mtu}")]
        note = "kept by netplan"
    elif net.manager == "networkmanager":
        note = (f"NetworkManager runs but manages no connection on {iface.name}: "
                "back to the old MTU at the next reboot")
    else:
        note = "no netplan or NetworkManager found: back to the old MTU at the next reboot"
    return Change(apply, restore, persist_cmds, note, what)
