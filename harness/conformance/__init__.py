"""The conformance battery an adapter author runs (`crossgrad check-adapter`), and its pytest plugin."""
