"""The engine: phases, journal, registries and the live display.  No Kubernetes here."""
