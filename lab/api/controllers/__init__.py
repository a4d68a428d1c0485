"""Root-free controllers that watch the store and write to it, as kube-controller-manager's do.

Each is level-triggered: any event on what it watches makes it reconcile everything it
owns (the lab's cluster is small), and a write that changes nothing is not a new version,
so the loops settle.
"""
