#!/usr/bin/env bash
# Creates the cluster's objects (idempotent, server-side apply): the namespace, RuntimeClass
# gvisor, a default StorageClass served by the controller-manager's hostPath provisioner, and the
# agent-sandbox CRDs from its Go module with RBAC for its controller.
source "$(dirname "$0")/lib.sh"
apply() { kctl apply --server-side --force-conflicts --field-manager pyro-cluster -f - >/dev/null; }
apply <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $NAMESPACE}
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: gvisor}
handler: runsc
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: pyro-hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
YAML
# The CRDs name a conversion webhook (v1alpha1 <-> v1beta1) that the controller serves only with
# --enable-webhook; we run it without, so serve v1beta1 alone and convert nothing.
mod="$(cat "$AS_BIN/module-dir")"
for f in "$mod"/k8s/crds/*.yaml; do
  kctl create --dry-run=client -o json -f "$f" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const crd = JSON.parse(s);
      crd.spec.versions = crd.spec.versions.filter((v) => v.name === "v1beta1");
      if (crd.spec.versions.length !== 1) throw new Error(`${crd.metadata.name}: no v1beta1 version`);
      crd.spec.conversion = { strategy: "None" };
      process.stdout.write(JSON.stringify(crd));
    });' | apply
done
for f in rbac.generated.yaml extensions-rbac.generated.yaml; do apply <"$mod/k8s/$f"; done
apply <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pyro-cluster-agent-sandbox}
subjects: [{kind: User, name: agent-sandbox-controller, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: agent-sandbox-controller, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pyro-cluster-agent-sandbox-extensions}
subjects: [{kind: User, name: agent-sandbox-controller, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: agent-sandbox-controller-extensions, apiGroup: rbac.authorization.k8s.io}
YAML
for crd in sandboxes.agents.x-k8s.io sandboxclaims.extensions.agents.x-k8s.io \
           sandboxtemplates.extensions.agents.x-k8s.io sandboxwarmpools.extensions.agents.x-k8s.io; do
  kctl wait --for condition=Established --timeout 60s "crd/$crd" >/dev/null
done
