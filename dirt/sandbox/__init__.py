"""The sandbox: a real local Kubernetes control plane (no Docker) with Prometheus and
Alertmanager beside it, managed through ``kwokctl --runtime binary``."""
