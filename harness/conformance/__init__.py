"""The conformance battery an adapter author runs (`crossgrad check-adapter`): its cases, its checks, the table, and its pytest plugin."""
