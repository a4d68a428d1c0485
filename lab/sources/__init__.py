"""What each node component reads from the API objects, as its informers do.

Pure translations from the Kubernetes objects the lab's API server stores (dicts,
exactly as lab/api keeps them) to each component's own model; no I/O:

- kube-proxy (kubeproxy.py): Services with a ClusterIP and the EndpointSlices
  labelled with their name → one ServicePortRules per Service port;
- the cluster DNS (dns.py): every Service, and the ready endpoints of the headless
  ones with their hostnames → DnsService;
- the CNI's NetworkPolicy half (cni.py): NetworkPolicies, Pods with an address and
  Namespaces' labels → what lab/cni/policy.py compiles;
- the kubelet: Services → the service-link variables of a pod's namespace
  (envvars.py); ConfigMaps and Secrets → decoded data per namespace (configdata.py).
"""

from typing import Any

# An API object as the store keeps it (lab.api.storage.Obj), without importing the server.
Obj = dict[str, Any]
