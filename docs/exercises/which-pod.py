"""Ask the backend Service N times, each on a new connection: which pod, on which node, answered.

The lesson runs it inside a frontend pod, whose image has Python but no curl:
    kubectl -n clusterip-demo exec -i <frontend pod> -- python - TAG N < docs/exercises/which-pod.py
Each request carries the request id TAG-1 … TAG-N, so the backend's access log can be
searched for it. Only the standard library: it runs in the frontend's image as it is.
"""

import json
import os
import sys
import urllib.request

URL = "http://backend:8000/api/info"


def main(tag: str, count: int) -> None:
    # The Downward API gives every pod of this app its own name, address and node.
    print("from", os.environ["POD_NAME"], os.environ["POD_IP"], "on", os.environ["NODE_NAME"])
    for i in range(1, count + 1):
        request = urllib.request.Request(URL, headers={"X-Request-ID": f"{tag}-{i}"})
        try:
            # urllib opens a new connection for each request: the kernel picks a pod each time.
            with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310
                info = json.load(answer)
        except OSError as exc:
            print(f"{tag}-{i}", "no answer:", getattr(exc, "reason", exc))
            continue
        print(f"{tag}-{i}", info["pod_name"], info["pod_ip"], "on", info["node_name"])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
