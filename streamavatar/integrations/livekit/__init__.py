"""streamavatar as a LiveKit Agents avatar (``pip install "streamavatar[livekit]"``; docs/livekit.md).

* :class:`StreamAvatarVideoGenerator` — the ``VideoGenerator`` over one engine session.
* :class:`LocalAvatar` — in-process: ``QueueAudioOutput`` + ``AvatarRunner`` in the agent's process.
* :class:`StreamAvatarSession` — remote, agent side: asks a dispatcher (``streamavatar livekit-worker``) to send
  a worker into the room and streams the voice to it; :func:`run_room` is that worker.
* :class:`UserAudioFeed` — the user's microphone → the avatar's listening input.
"""

from streamavatar.integrations.livekit.generator import GeneratorMetrics, StreamAvatarVideoGenerator
from streamavatar.integrations.livekit.listen import UserAudioFeed
from streamavatar.integrations.livekit.local import LocalAvatar
from streamavatar.integrations.livekit.remote import DispatcherError, StreamAvatarSession
from streamavatar.integrations.livekit.tokens import check_avatar_token, mint_avatar_token
from streamavatar.integrations.livekit.worker import run_room

__all__ = ["StreamAvatarVideoGenerator", "GeneratorMetrics", "LocalAvatar", "StreamAvatarSession",
           "DispatcherError", "UserAudioFeed", "run_room", "mint_avatar_token", "check_avatar_token"]
