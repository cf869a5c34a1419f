"""The package version, in a module of its own: it imports nothing, so anything can import it."""
__version__ = "0.1.0"
