//go:build tools

// Package tools pins the Kubernetes commands the test cluster builds (scripts/cluster/build-k8s.sh).
// k8s.io/kubernetes replaces its staging modules with local paths, so `go install ...@v1.34.4`
// refuses it; this wrapper module requires it and pins each staging module to its published
// v0.34.4 (the replace block in go.mod), which makes it an ordinary module build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
