"""Checks: read-only probes for steady state and verification (HTTP, commands,
Kubernetes objects, alerts, PromQL)."""
