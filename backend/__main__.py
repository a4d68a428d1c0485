"""`python -m backend`: serve the API (the container's command)."""

from backend.main import run

run()
