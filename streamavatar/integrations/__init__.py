"""Integrations of the streamavatar engine with voice-agent frameworks (optional extras).

* :mod:`streamavatar.integrations.livekit` — a LiveKit Agents avatar (``pip install "streamavatar[livekit]"``):
  in-process (``QueueAudioOutput`` + ``AvatarRunner``) or as a remote worker per room started by a dispatcher.
* pipecat: :mod:`streamavatar.serve.pipecat_service` (``pip install "streamavatar[pipecat]"``).

Importing this package needs neither extra; each integration module raises a clear ``ImportError`` naming its
extra when the framework is missing.
"""
