"""The ASGI middleware both tiers run around every request, one job each
(common/request_middleware.py puts them in order)."""
