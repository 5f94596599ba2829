"""Turn a debootstrapped tree into something that boots systemd cleanly as a container (idempotent).

Every container started from the image must get its own identity, so the machine-id is emptied (systemd makes
a fresh one at boot) and the SSH host keys are removed (a unit in the Pi image generates them at first boot).
"""

from pathlib import Path

# No consoles, no udev (docker manages /dev), no kernel-level setup a container cannot do.
MASKED_UNITS = (
    "getty.target",
    "console-getty.service",
    "getty@tty1.service",
    "serial-getty@.service",
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-remount-fs.service",
    "systemd-modules-load.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "systemd-firstboot.service",
)


def _replace_with_empty(path: Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.touch(mode=0o444)


def prepare_systemd_tree(root: Path) -> None:
    _replace_with_empty(root / "etc/machine-id")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
        dbus_id.symlink_to("/etc/machine-id")

    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()

    systemd_dir = root / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = systemd_dir / unit
        if link.is_symlink() and str(link.readlink()) == "/dev/null":
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")

    # The fleet sits on an internal network: a remote Debian source would make every `apt update` fail there.
    # Roles bring their packages through local file: repositories instead.
    sources = root / "etc/apt/sources.list"
    sources.write_text("# simfleet: no remote sources (the simulated fleet has no route off this machine)\n")
