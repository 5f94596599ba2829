"""Pis grouped into kinds of release: one runtime per architecture and CPython, wheels for the kind's oldest
glibc, so a mixed bookworm/trixie fleet gets exactly two runtimes and each Pi the one its interpreter runs."""

from release_targets import release_kind, release_kinds

BOOKWORM = {"platform": "aarch64", "python": "3.11", "glibc": "2.36", "os": "Debian GNU/Linux 12 (bookworm)"}
TRIXIE = {"platform": "aarch64", "python": "3.13", "glibc": "2.41", "os": "Debian GNU/Linux 13 (trixie)"}


def test_a_kind_is_named_by_architecture_and_cpython():
    assert release_kind(BOOKWORM) == "aarch64-cp311"
    assert release_kind(TRIXIE) == "aarch64-cp313"
    assert release_kind({**TRIXIE, "platform": "x86_64"}) == "x86_64-cp313"


def test_a_mixed_fleet_gets_one_release_per_kind():
    kinds = release_kinds([TRIXIE, BOOKWORM, TRIXIE, BOOKWORM, {**BOOKWORM, "platform": "x86_64"}])
    assert kinds == [
        {"kind": "aarch64-cp311", "platform": "aarch64", "python": "3.11", "glibc": "2.36"},
        {"kind": "aarch64-cp313", "platform": "aarch64", "python": "3.13", "glibc": "2.41"},
        {"kind": "x86_64-cp311", "platform": "x86_64", "python": "3.11", "glibc": "2.36"},
    ]
    assert release_kinds([]) == []


def test_a_kind_gets_wheels_for_its_oldest_glibc():
    # glibc compared as numbers: 2.9 is older than 2.36 (as strings it would sort after it).
    kinds = release_kinds([{**BOOKWORM, "glibc": "2.36"}, {**BOOKWORM, "glibc": "2.9"}, BOOKWORM])
    assert [kind["glibc"] for kind in kinds] == ["2.9"]
