//go:build tools

// Package tools pins kube-state-metrics, which dirt's sandbox runs so that
// workload and node alerts behave as on a real cluster. Never compiled.
package tools

import (
	_ "k8s.io/kube-state-metrics/v2"
)
