"""Code generation: SymPy → Numba source (printer, templates, math helpers, emission, hash)."""
