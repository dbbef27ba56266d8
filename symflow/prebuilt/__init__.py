"""Cache entries shipped with symflow: the catalog's kernel modules and their meta data.

Written by `python -m symflow generate` (checked by `--check` and by the test suite), read
by `symflow.runtime.loader.read_entry` when the user's cache folder has no entry for a
key: a catalog bijector then costs a file copy on first use instead of its derivation and
verification (seconds). The modules are imported from the cache folder, not from here.
"""
