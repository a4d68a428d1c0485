"""Throwaway MariaDB, Redis and app processes on free loopback ports.

Shared by the tests and by `make bench`, so the benchmark does not import
the test suite.
"""
