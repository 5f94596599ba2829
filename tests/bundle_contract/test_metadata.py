"""The metadata schema's one check: a document lacking a key readers need is refused, naming the key."""

import pytest

from bundle_contract.metadata import Metadata, MetadataError, check_metadata

# A complete document as far as the check looks: every key, whatever the values.
COMPLETE = {key: {} for key in Metadata.__annotations__}


def test_a_complete_document_passes_as_it_is() -> None:
    assert check_metadata(COMPLETE) is COMPLETE


def test_input_ranges_may_be_absent_as_in_bundles_built_before_them() -> None:
    document = {key: value for key, value in COMPLETE.items() if key != "input_ranges"}
    assert check_metadata(document) is document


@pytest.mark.parametrize("key", ["golden", "normalization", "model", "files", "version"])
def test_a_missing_key_is_named(key: str) -> None:
    document = {k: v for k, v in COMPLETE.items() if k != key}
    with pytest.raises(MetadataError, match=f"^lacks '{key}'$"):
        check_metadata(document)


def test_every_missing_key_is_named_on_one_line() -> None:
    with pytest.raises(MetadataError) as error:
        check_metadata({"version": "tcn-0123456789ab"})
    reason = str(error.value)
    assert "\n" not in reason and "'golden'" in reason and "'files'" in reason and "'version'" not in reason


@pytest.mark.parametrize("document", [[1, 2], "text", None])
def test_a_document_that_is_no_object_is_refused(document: object) -> None:
    with pytest.raises(MetadataError, match="must hold a JSON object"):
        check_metadata(document)
