//go:build tools

// This file pins the code generators the module runs with `go run`, so that
// their versions are recorded in go.mod and go.sum. It is never built.
package latchkey

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)
