"""The interactive server: live talk/listen avatars over WebRTC, with a WebSocket protocol and a web client.

Entry point: ``streamavatar serve`` (:mod:`streamavatar.serve.cli`). The server depends only on the generator
Protocols in :mod:`streamavatar.serve.generator`; see ``docs/server.md`` for the protocol.
"""
