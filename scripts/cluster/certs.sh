#!/usr/bin/env bash
# Makes the cluster's PKI in $PKI (a CA, serving certs for the apiserver and kubelet, one client
# cert per component, the service-account key pair) and a kubeconfig per client in $STATE.
# EC P-256 keys: quick to make, and every component here accepts them. Skipped when present.
source "$(dirname "$0")/lib.sh"
mkdir -p "$PKI"; chmod 700 "$PKI"
[ -f "$KUBECONFIG_ADMIN" ] && exit 0
cd "$PKI"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=pyro-cluster-ca" -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# cert NAME SUBJECT USAGE [SAN]
cert() {
  local name="$1" subj="$2" usage="$3" san="${4:-}"
  openssl ecparam -name prime256v1 -genkey -noout -out "$name.key" 2>/dev/null
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
svc_ip="${SERVICE_CIDR%.*}.1"
cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert kubelet-serving "/CN=system:node:$NODE_NAME/O=system:nodes" serverAuth "IP:127.0.0.1,DNS:$NODE_NAME"
cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters" clientAuth
cert admin "/CN=pyro-cluster-admin/O=system:masters" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kubelet "/CN=system:node:$NODE_NAME/O=system:nodes" clientAuth
cert agent-sandbox "/CN=agent-sandbox-controller" clientAuth
openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key

# kubeconfig NAME OUT: certificates embedded, so the file can be copied anywhere on this host.
kubeconfig() {
  local name="$1" out="$2"
  cat >"$out.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: pyro-cluster
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$name.crt")
    client-key-data: $(base64 -w0 "$name.key")
contexts:
- name: pyro-cluster
  context:
    cluster: pyro-cluster
    user: $name
    namespace: $NAMESPACE
current-context: pyro-cluster
KC
  chmod 600 "$out.tmp"; mv "$out.tmp" "$out"
}
kubeconfig controller-manager "$STATE/controller-manager.kubeconfig"
kubeconfig scheduler "$STATE/scheduler.kubeconfig"
kubeconfig kubelet "$STATE/kubelet.kubeconfig"
kubeconfig agent-sandbox "$STATE/agent-sandbox.kubeconfig"
kubeconfig admin "$KUBECONFIG_ADMIN"   # last: its presence means the PKI is complete
