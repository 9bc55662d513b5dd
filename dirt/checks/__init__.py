"""Checks: probes for steady state and verification (HTTP, commands,
Kubernetes objects, alerts, PromQL).  They only read, except ``controllers.responsive``, whose
canary Deployment is created and deleted again."""
