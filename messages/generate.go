// Package messages holds drip's wire protocol: the protobuf messages that
// callers, buckets and the timer actor exchange, locally or over remote.
package messages

// Regenerate drip.pb.go with protoc 3.21 (Debian: protobuf-compiler) and
// protoc-gen-go v1.36.12 (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12).
//
//go:generate protoc --go_out=. --go_opt=paths=source_relative drip.proto
