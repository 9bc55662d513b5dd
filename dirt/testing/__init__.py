"""Test doubles shipped with dirt: a fake target and ``fake.*`` drivers.

Use them to try scenarios, reports and the pytest plugin without a cluster::

    from dirt.testing import FakeTarget
    target = FakeTarget()

or in dirt.yaml: ``targets: {fake: {provider: fake}}``.
"""

from dirt.testing.target import FakeTarget

__all__ = ["FakeTarget"]
