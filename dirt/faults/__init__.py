"""Faults: the ways a drill breaks things.  One module per family; each fault is a
class with ``plan``, ``inject``, ``verify_injected`` and (when temporary) ``revert``."""
