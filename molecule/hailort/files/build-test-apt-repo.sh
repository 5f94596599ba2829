#!/bin/sh
# Builds a flat apt repository of TEST PACKAGES standing in for Raspberry Pi's HailoRT packages, which this machine
# cannot download. They are empty: no driver, no library, no hailortcli, no device. They exist so the hailort role's
# real apt path (source config, version pin, hold) runs against a real repository.
# Usage: build-test-apt-repo.sh DIR
set -eu
repo=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo"

build() {
    name=$1 version=$2 depends=$3
    root="$work/$name-$version"
    mkdir -p "$root/DEBIAN"
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

build hailort 4.23.0-1 ""
build hailo-dkms 4.23.0-1 ""
build python3-hailort 4.23.0-1 "hailort (= 4.23.0-1)"
build hailo-all 4.23.0 "hailort (= 4.23.0-1), hailo-dkms (= 4.23.0-1), python3-hailort (= 4.23.0-1)"
# Newer than the pin, as the Pi repo will be one day: the pin, not "newest", must decide what gets installed.
build hailort 4.99.0-1 ""
build hailo-all 4.99.0 "hailort (= 4.99.0-1)"

for deb in "$repo"/*.deb; do
    dpkg-deb --field "$deb"
    echo "Filename: ./$(basename "$deb")"
    echo "Size: $(stat -c %s "$deb")"
    echo "SHA256: $(sha256sum "$deb" | cut -d ' ' -f 1)"
    echo
done >"$repo/Packages"
