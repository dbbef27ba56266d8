"""symflow's version, in one place (hashes and generated headers include it)."""

__version__ = "0.1.0"
