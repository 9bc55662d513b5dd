"""dirt: disaster-recovery testing for Kubernetes.

Scenario files describe disasters; the engine injects them into a target, checks
the expected alerts fire, drives recovery, verifies everything came back, and
renders a report linked to the playbook.  Heavy modules are imported lazily so
that ``dirt --help`` and ``dirt validate`` start fast.
"""

__version__ = "0.2.0"
