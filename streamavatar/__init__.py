"""streamavatar: streaming diffusion for real-time interactive human avatars (StreamAvatar, arXiv 2512.22065)."""

__version__ = "0.1.0"
