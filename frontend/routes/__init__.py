"""The frontend's HTTP routes: the pages, their JSON twins, and the probes."""
