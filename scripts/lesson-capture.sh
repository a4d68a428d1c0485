#!/usr/bin/env bash
# Re-capture every lab output docs/lesson.md shows, and its screenshots and rule-chain
# picture: brings the lab up, three nodes as `make lab` makes it, in iptables then nftables
# mode (the lesson's step 8 in the first; root, about four minutes),
# writes docs/captures/*.txt and docs/img/lab-*.png, then pastes the captures into the
# lesson. `sudo make lesson-capture` runs this; docs/lessoncapture/run.py does the work.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m docs.lessoncapture.run "$@"
