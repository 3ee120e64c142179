"""Mutation testing of the core: small bugs planted one at a time, and whether a test notices.

``make mutation`` (``python -m tests.mutation``) runs, in an environment of its own:

- mutmut on the Python modules of :mod:`tests.mutation.targets`, each in a staging folder under
  ``.local/mutation/`` with only the tests that cover that module;
- the one-line mutations of the Lua scripts listed in ``lua-mutants.toml``, each applied to a
  staged copy of its package and checked by the tests named for its script.

A mutant that no test kills is either equivalent (no behaviour can tell it from the original),
and then explained in ``equivalent.toml`` or ``lua-mutants.toml``, or a gap in the tests.
"""
