"""Targets: the clusters a drill can run against (sandbox, kind, kubeconfig)."""
