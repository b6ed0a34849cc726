"""TokenForge: multi-chain token launch platform."""

__version__ = "0.1.0"
