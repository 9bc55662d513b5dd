"""The bottom layer: what every other part of dirt may use and nothing of dirt's own.

``errors`` (the one error tree, its exit codes and the verdict map), ``durations``,
``templating`` (``{{ name }}`` placeholders), ``redact`` (secrets out of every
file and terminal line) and ``families`` (the guardrail vocabulary of faults).
"""
