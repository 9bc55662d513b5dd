"""Recovery: the steps that put a cluster back (restarts, restores, redeploys) and
the backups they restore from."""
