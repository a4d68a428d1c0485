"""The backend's HTTP routes, one module per concern."""
