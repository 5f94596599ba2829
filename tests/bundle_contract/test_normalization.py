"""The normalization's metadata form: what compile writes, the HailoRT backend reads back unchanged."""

import pytest

from bundle_contract.normalization import Normalization, NormalizationError, normalization_from

MEAN = (0.12, -0.08, 9.78, 0.002, -0.001, 0.003, 22.4, -8.7, 43.2)
STD = (3.92, 3.87, 2.45, 1.24, 1.31, 0.98, 28.5, 31.2, 24.8)


def test_what_is_written_reads_back() -> None:
    written = Normalization(MEAN, STD, "model_config.json").to_metadata()
    assert written == {
        "method": "z_score_per_channel",
        "mean": list(MEAN),
        "std": list(STD),
        "channel_order": ["ax", "ay", "az", "gx", "gy", "gz", "mx", "my", "mz"],
        "source": "model_config.json",
    }
    assert normalization_from(written, "bundle") == Normalization(MEAN, STD, "bundle")


def test_a_model_config_may_leave_out_method_and_channel_order() -> None:
    assert normalization_from({"mean": list(MEAN), "std": list(STD)}, "cfg") == Normalization(
        MEAN, STD, "cfg"
    )


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        (None, "normalization must be an object"),
        ({"method": "min_max", "mean": list(MEAN), "std": list(STD)}, "'min_max' is not supported"),
        ({"mean": list(MEAN[:8]), "std": list(STD)}, "normalization.mean must be a list of 9 finite numbers"),
        (
            {"mean": list(MEAN), "std": [*STD[:8], float("inf")]},
            "normalization.std must be a list of 9 finite",
        ),
        ({"mean": [*MEAN[:8], 1e39], "std": list(STD)}, "normalization.mean must be a list of 9 finite"),
        ({"mean": list(MEAN), "std": [*STD[:8], 0]}, "normalization.std must be > 0 for every channel"),
        ({"mean": list(MEAN), "std": list(STD), "channel_order": list("abcdefghi")}, "channel_order"),
    ],
)
def test_an_unusable_normalization_is_named(section: object, reason: str) -> None:
    with pytest.raises(NormalizationError, match=reason):
        normalization_from(section, "bundle")
