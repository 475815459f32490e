"""Helpers shared by several test packages, in one place.

- `support.hub`: the hub in-process (real store file, local bus, real hasher)
  with recording outlets, for tests that run in milliseconds.
- `support.peers`: log a raw peer in to a server on loopback.
- `support.cli`: run ``python -m chinwag`` as a subprocess.

``tests/`` is on ``sys.path`` (pytest puts the rootdir conftest's directory
there), so test modules import these as ``from support.hub import ...``.
"""
