#!/bin/sh
# Builds a flat apt repository of TEST PACKAGES standing in for Raspberry Pi's HailoRT packages, which this machine
# cannot download. They hold no driver, no library, no hailortcli, no device. They exist so the hailort role's
# real apt path (source config, version pin, hold) runs against a real repository. The test hailort 4.23.0 also
# ships a TEST hailort.service where Hailo's package puts its own (lib/systemd/system, with
# /etc/default/hailort_service): a listener on Hailo's default socket /tmp/hailort_uds.sock that answers nothing.
# Usage: build-test-apt-repo.sh DIR
set -eu
repo=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo"

build() {
    name=$1 version=$2 depends=$3 service=${4:-}
    root="$work/$name-$version"
    mkdir -p "$root/DEBIAN"
    if [ -n "$service" ]; then add_test_service "$root"; fi
    {
        echo "Package: $name"
        echo "Version: $version"
        echo "Architecture: all"
        echo "Maintainer: hailo_pipeline tests <tests@invalid>"
        if [ -n "$depends" ]; then echo "Depends: $depends"; fi
        echo "Description: test package, not Hailo's"
        echo " Empty stand-in for $name, built by hailo_pipeline's Molecule scenario."
    } >"$root/DEBIAN/control"
    dpkg-deb --build --root-owner-group "$root" "$repo/${name}_${version}_all.deb" >/dev/null
}

add_test_service() {
    mkdir -p "$1/lib/systemd/system" "$1/etc/default" "$1/usr/local/bin"
    cat >"$1/lib/systemd/system/hailort.service" <<'UNIT'
[Unit]
Description=TEST stand-in for the HailoRT service (hailo_pipeline Molecule), not Hailo's

[Service]
Type=simple
EnvironmentFile=/etc/default/hailort_service
ExecStart=/usr/local/bin/hailort_service
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
    echo '# TEST stand-in for /etc/default/hailort_service' >"$1/etc/default/hailort_service"
    cat >"$1/usr/local/bin/hailort_service" <<'SERVICE'
#!/usr/bin/python3
"""TEST stand-in for hailort_service: listens where libhailort dials, world-connectable like Hailo's."""
import os
import socket

path = os.environ.get("HAILORT_SERVICE_ADDRESS", "unix:///tmp/hailort_uds.sock").removeprefix("unix://")
if os.path.exists(path):
    os.unlink(path)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o606)
server.listen()
while True:
    server.accept()[0].close()
SERVICE
    chmod 0755 "$1/usr/local/bin/hailort_service"
    echo /etc/default/hailort_service >"$1/DEBIAN/conffiles"
}

build hailort 4.23.0-1 "" with-service
build hailo-dkms 4.23.0-1 ""
build hailofw 4.23.0-1 ""
build python3-hailort 4.23.0-1 "hailort (= 4.23.0-1)"
build hailo-all 4.23.0 "hailort (= 4.23.0-1), hailofw (= 4.23.0-1), python3-hailort (= 4.23.0-1)"
# Older than the ceiling: the newest at or under it must win, not the first or the oldest.
build hailort 4.22.0-1 ""
# Newer than the ceiling, as the Pi repo will be one day: the ceiling, not "newest", decides what gets installed.
build hailort 4.99.0-1 ""
build hailofw 4.99.0-1 ""
build hailo-all 4.99.0 "hailort (= 4.99.0-1)"

for deb in "$repo"/*.deb; do
    dpkg-deb --field "$deb"
    echo "Filename: ./$(basename "$deb")"
    echo "Size: $(stat -c %s "$deb")"
    echo "SHA256: $(sha256sum "$deb" | cut -d ' ' -f 1)"
    echo
done >"$repo/Packages"
