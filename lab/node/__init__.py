"""The lab's node: the kubelet and kube-proxy side, reading the API server over HTTPS."""
