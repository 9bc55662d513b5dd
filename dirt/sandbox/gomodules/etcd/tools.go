//go:build tools

// Package tools pins the etcd commands that dirt's sandbox builds. It is never
// compiled; it only keeps the requirements in go.mod.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
