"""`python -m frontend`: serve the page (the container's command)."""

from frontend.main import run

run()
