"""The package's version, in a module of its own: setup.cfg reads it statically and every module
may import it without importing the package face (which imports the tasks)."""

__version__ = "0.3.0"
