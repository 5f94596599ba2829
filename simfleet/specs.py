"""What goes into each simulated machine's root filesystem."""

from simfleet.rootfs import RootfsSpec

# Raspberry Pi OS stand-in: what a provisioned Pi has that the roles rely on (python3-apt for ansible's apt
# module, python3-venv for the release venvs, python3-debian for deb822 sources, acl for become_user,
# docker for EdgeInfer).
PI_ROOTFS = RootfsSpec(
    name="pi",
    packages=(
        "acl",
        "ca-certificates",
        "curl",
        "dbus",
        "docker.io",
        "iproute2",
        "iptables",
        "kmod",
        "openssh-server",
        "procps",
        "python3",
        "python3-apt",
        "python3-debian",
        "python3-venv",
        "rsync",
        "sudo",
        "systemd",
        "systemd-sysv",
    ),
)

# The EdgeInfer stand-in only needs an interpreter for its stdlib server; small, because every Pi loads it.
STANDIN_ROOTFS = RootfsSpec(name="edgeinfer-standin", packages=("python3",))
