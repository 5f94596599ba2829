"""What goes into each simulated machine's root filesystem."""

from simfleet.rootfs import RootfsSpec

# Raspberry Pi OS stand-in: what a provisioned Pi has that the roles rely on (python3-apt for ansible's apt
# module, python3-venv for the release venvs, python3-debian for deb822 sources, acl for become_user,
# docker for EdgeInfer).
PI_PACKAGES = (
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
)

# Both Raspberry Pi OS releases in the field: bookworm (Debian 12, CPython 3.11) and trixie (Debian 13,
# CPython 3.13, what a Pi flashed today runs). Trixie split the docker client out of docker.io (docker-cli,
# only recommended, which debootstrap does not install).
PI_EXTRA_PACKAGES = {"bookworm": (), "trixie": ("docker-cli",)}
PI_ROOTFS = {
    suite: RootfsSpec(name="pi", packages=PI_PACKAGES + extra, suite=suite)
    for suite, extra in PI_EXTRA_PACKAGES.items()
}

# The EdgeInfer stand-in only needs an interpreter for its stdlib server. Every new Pi `docker load`s it at
# first boot, which dominates a cold `up`, so what a running stdlib HTTP server never touches is dropped.
STANDIN_ROOTFS = RootfsSpec(
    name="edgeinfer-standin",
    packages=("python3",),
    drop=(
        "usr/bin/perl",
        "usr/bin/perl5.36.0",
        "usr/lib/x86_64-linux-gnu/perl-base",
        "usr/share/perl5",
        "usr/lib/x86_64-linux-gnu/gconv",
        "usr/share/zoneinfo",
        "usr/share/i18n",
        "usr/lib/python3.11/test",
        "usr/lib/python3.11/pydoc_data",
        "usr/lib/python3.11/lib2to3",
        "usr/lib/python3.11/idlelib",
        "var/cache/debconf",
    ),
)
