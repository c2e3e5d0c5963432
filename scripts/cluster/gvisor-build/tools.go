//go:build tools

// Package tools pins containerd-shim-runsc-v1 (gvisor.dev/gvisor/shim) for the test cluster;
// scripts/cluster/build-gvisor.sh copies this module into its cache and replaces
// github.com/containerd/containerd/v2 with a patched copy there (see that script for why).
package tools

import _ "gvisor.dev/gvisor/shim"
