"""Reaching a server: TLS and certificate pinning, LAN discovery, invite codes.

These helpers sit beside the layers of docs/architecture.md rather than inside
them: the composition roots (``chinwag.cli``) use them to build what the server
and the clients take as plain arguments (an ``ssl.SSLContext``, a host and a
port), so ``server/`` and ``client/`` never import this package.

- :mod:`chinwag.net.tls`: self-signed certificates, TLS contexts, fingerprints.
- :mod:`chinwag.net.pins`: the client's ``known_hosts`` file.
- :mod:`chinwag.net.discovery`: DNS-SD/mDNS announce and browse (``_chinwag._tcp``).
- :mod:`chinwag.net.invites`: ``chinwag://`` links, compact codes, sign-up tokens.
- :mod:`chinwag.net.connect`: what ``chinwag chat ARG`` means, and whom to trust.
"""
