"""The `make bench` harness: the mock against a bare reference app on the same server stack.

This package is a development tool. It is not part of the installed distribution.
"""
