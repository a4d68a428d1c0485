"""Throwaway MariaDB and Redis: the code lives in localservers/ (the bench uses it too)."""

from localservers.servers import MariaDB, Redis, mariadb_binaries, redis_binary

__all__ = ["MariaDB", "Redis", "mariadb_binaries", "redis_binary"]
