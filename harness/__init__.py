"""crossgrad's core: cases, runner, comparison and reports. Imports no framework, ever."""

__version__ = "0.1.0"
