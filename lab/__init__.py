"""The ClusterIP lab: the app's real tiers in network namespaces behind kube-proxy's rules.

No cluster and no container engine: each pod is a network namespace with its own
IP, joined to the host (the lab's one "node") by a veth pair, running the real
process of its tier. Each Service gets a virtual IP and the iptables chains
kube-proxy writes in iptables mode. What runs is read from the rendered
`k8s/` manifests. See docs/lab.md.
"""
