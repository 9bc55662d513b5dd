//go:build tools

// Package tools pins what a kind node image needs beyond the sandbox's own binaries:
// kubeadm (which makes the node's cluster) and kube-proxy (its Service rules). A module of
// its own, so its extra requirements never change how the sandbox's binaries are built.
// It is never compiled; it only keeps the requirements in go.mod.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
