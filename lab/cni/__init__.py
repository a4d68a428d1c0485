"""The CNI plugin's NetworkPolicy half: policies → the node's iptables rules, in either proxy mode.

- policy.py: NetworkPolicies, pods and namespaces → the CIP-NP-* chains and
  the rules of them and of CIP-NETPOL (pure);
- rules.py: the CNI's own chains around them (CIP-CNI-FORWARD, hooked from
  FORWARD) as `iptables-restore` text, and which chains are the CNI's (pure);
- applier.py: writes them on each change of the node's objects, with its own
  small loop, and removes and lists them for `lab down` and `lab check`.

What it is fed comes from lab/sources/cni.py (the informers' objects).
"""
