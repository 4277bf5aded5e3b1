//go:build tools

// critest is a Go test binary (go test -c sigs.k8s.io/cri-tools/cmd/critest), which a tool
// directive cannot name. These imports keep its packages, and what they need, in go.mod and
// go.sum when `go mod tidy` runs.
package tools

import (
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "sigs.k8s.io/cri-tools/pkg/common"
	_ "sigs.k8s.io/cri-tools/pkg/framework"
	_ "sigs.k8s.io/cri-tools/pkg/validate"
)
