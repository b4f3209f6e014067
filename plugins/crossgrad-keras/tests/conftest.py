"""The conformance battery comes from crossgrad's pytest plugin; the adapter is named in pyproject."""

pytest_plugins = ["harness.conformance.pytest_plugin"]
