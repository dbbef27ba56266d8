"""Composed flow kernels: each member kind's code generator and the composer.

`member.py` defines the interface a member kind implements; `compose.py` assembles a
flow's members (in inverse-pass order) and base into one module's functions. The member
kinds: `elementwise.py` (a declared bijector on every coordinate), `affine.py`,
`permute.py`, `conditioned.py` (masked autoregressive and coupling layers, whose
`network.py` conditioners compute a `transformer.py` transformer's parameters), and
`base.py` (the diagonal normal base).
"""
