"""Symbolic core: declarations (`spec`, `dsl`), derivation (`derive`), mpmath truth (`numeric`)."""
