"""The installed version of avrec."""

__version__ = "0.1.0.dev0"
