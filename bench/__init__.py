"""chinwag's benchmark suite: ``python -m bench --help``.

Needs only the standard library and chinwag (uvloop is used by the load
generator when it happens to be installed). See docs/performance.md.
"""
