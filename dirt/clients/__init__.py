"""The only code that talks to the outside: the Kubernetes API (``kube``), Prometheus and
Alertmanager (``monitoring``), plain HTTP (``http``) and other programs (``commands``).

Each turns its library's failures into dirt's own errors, one line each, with no
response bodies (a Secret's data never reaches a log through an error), and
import-linter keeps ``kubernetes`` and ``requests`` out of every other package.
"""
