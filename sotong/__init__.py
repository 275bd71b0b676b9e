"""The command line, the local stack and the benchmarks: the top of the dependency tree.

It may import every service; nothing imports it.
"""
