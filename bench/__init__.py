"""`make bench`: throughput, latency, memory and start-up of every tier, as ratios.

Every figure sits beside a bare FastAPI endpoint measured in the same round
on the same server settings: these machines are shared and noisy, so only
ratios within one run mean anything.
"""
