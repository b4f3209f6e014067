"""crossgrad's conformance battery on this adapter: one test item per check."""

from harness.conformance.pytest_plugin import assert_conforms


def test_conformance(crossgrad_result):
    assert_conforms(crossgrad_result)
