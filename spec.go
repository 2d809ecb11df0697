// Package latchkey holds the project's contract, openapi.yaml, so the binary
// can serve it byte for byte.
package latchkey

import _ "embed"

// OpenAPIYAML is openapi.yaml as written.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
