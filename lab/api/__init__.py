"""The lab's Kubernetes API server: objects as Kubernetes JSON, served to the real kubectl.

storage (objects, resourceVersion, watch), selectors, patch, admission (what the lab
supports), garbage (cascading deletion), printers (Table), discovery, http (the app),
tls (CA, serving certificate, token), kubeconfig, bootstrap (what a new cluster has),
controllers (ReplicaSets per Deployment revision, EndpointSlices), server (start it).
"""
