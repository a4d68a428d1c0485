"""The lab tests that need root: each starts a whole lab (network namespaces, iptables or
nftables, the container engine) and drives it as a user would."""
