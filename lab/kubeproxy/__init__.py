"""kube-proxy: Services and EndpointSlices → the node's rules for the ClusterIPs.

- model.py: what both modes are made of (ServicePortRules, Endpoint, ProxyState),
  the interface a mode offers (ProxyMode) and kube-proxy's iptables chain names;
- iptables.py: iptables mode (CIP- chains, `iptables-restore --noflush`);
- nftables.py: nftables mode (the `ip cip-kube-proxy` table, one `nft -f`);
- proxier.py: the sync loop, at most once per min-sync period, in either mode.

What it is fed comes from lab/sources/kubeproxy.py (the informers' objects).
NetworkPolicies are not kube-proxy's: the CNI enforces them (lab/cni/).
"""
