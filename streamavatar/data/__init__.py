"""Training data: the synthetic interactive-avatar corpus and the clip dataset.

avatar (identity sampling) · speech (espeak-ng) · conversation (two-party timeline) · behaviour (talk / listen /
idle controls from audio) · render (2D upper-body renderer) · video_io (mp4 read/write) · synthetic (clip
assembly, on-disk format, splits) · dataset (torch Dataset over the corpus and real videos) · contact_sheet ·
cli (``streamavatar data synth|check|sheet``).
"""
