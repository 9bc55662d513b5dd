//go:build tools

// Package tools pins the Velero server, its CLI and the S3-compatible object store the
// sandbox runs for Velero (gofakes3), so `go build` in this folder builds them from
// their published modules.
package tools

import (
	_ "github.com/johannesboyne/gofakes3/cmd/gofakes3"
	_ "github.com/vmware-tanzu/velero/cmd/velero"
)
