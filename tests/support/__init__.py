"""Helpers the test suites share: throwaway servers and app processes."""
