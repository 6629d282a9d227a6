"""Per-session counters and gauges, and their Prometheus text rendering (``GET /metrics``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class SessionMetrics:
    """What one session measures about itself. Times are seconds."""

    frames_emitted: int = 0
    frames_generated: int = 0
    chunks_generated: int = 0
    repeated_frames: int = 0
    dropped_talk_frames: float = 0.0
    late_slots: int = 0
    generation_seconds: float = 0.0
    last_chunk_seconds: float = 0.0
    talk_underrun_chunks: int = 0
    muted_frames: int = 0
    interrupt_dropped_frames: int = 0
    interrupts: int = 0
    utterances_started: int = 0
    utterances_ended: int = 0
    events_dropped: int = 0
    protocol_errors: int = 0
    talk_samples_refused: int = 0
    utterances_refused: int = 0
    listen_samples_dropped: int = 0
    listen_samples_in: int = 0
    talk_samples_in: int = 0
    ttff_last_s: float | None = None
    interrupt_latency_last_s: float | None = None
    queue_talk_samples: int = 0
    queue_output_frames: int = 0
    _emit_times: deque = field(default_factory=lambda: deque(maxlen=51))

    def record_emit(self, now: float) -> None:
        """One slot left the server at loop time ``now``."""
        self.frames_emitted += 1
        self._emit_times.append(now)

    @property
    def fps(self) -> float:
        """Output frames per second over the last ~2 s of slots."""
        t = self._emit_times
        if len(t) < 2 or t[-1] <= t[0]:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])

    def rtf(self, chunk_seconds: float) -> float:
        """Generation real-time factor: compute seconds per second of video (below 1 keeps up)."""
        if not self.chunks_generated:
            return 0.0
        return self.generation_seconds / (self.chunks_generated * chunk_seconds)

    def snapshot(self, chunk_seconds: float) -> dict:
        """A JSON-friendly view (sent as the ``metrics`` event)."""
        d = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        d["fps"] = round(self.fps, 3)
        d["rtf"] = round(self.rtf(chunk_seconds), 4)
        return d


#: (metric name, snapshot key, type, help) of the per-session series exported at /metrics.
PROMETHEUS_SERIES = (
    ("streamavatar_session_fps", "fps", "gauge", "Output frames per second"),
    ("streamavatar_session_rtf", "rtf", "gauge", "Generation seconds per second of video"),
    ("streamavatar_session_ttff_seconds", "ttff_last_s", "gauge",
     "Time to first frame of the last utterance (first agent sample in to first talking frame out)"),
    ("streamavatar_session_interrupt_latency_seconds", "interrupt_latency_last_s", "gauge",
     "Interrupt received to first non-talking frame out, last interrupt"),
    ("streamavatar_session_queue_talk_samples", "queue_talk_samples", "gauge", "Queued agent-voice samples"),
    ("streamavatar_session_queue_output_frames", "queue_output_frames", "gauge", "Generated frames not yet sent"),
    ("streamavatar_session_frames_emitted_total", "frames_emitted", "counter", "Frames sent"),
    ("streamavatar_session_frames_generated_total", "frames_generated", "counter", "Frames generated"),
    ("streamavatar_session_repeated_frames_total", "repeated_frames", "counter",
     "Slots filled by repeating the last frame because generation was late"),
    ("streamavatar_session_dropped_talk_frames_total", "dropped_talk_frames", "counter",
     "Frames' worth of agent speech skipped to stay on time (behind_policy=drop)"),
    ("streamavatar_session_late_slots_total", "late_slots", "counter",
     "Slots the event loop itself sent more than one frame late"),
    ("streamavatar_session_muted_frames_total", "muted_frames", "counter",
     "Generated frames whose agent voice was cut by an interrupt"),
    ("streamavatar_session_interrupt_dropped_frames_total", "interrupt_dropped_frames", "counter",
     "Generated frames discarded by interrupts before they were sent (interrupt_mode=drop)"),
    ("streamavatar_session_talk_underrun_chunks_total", "talk_underrun_chunks", "counter",
     "Chunks generated while an utterance's audio had not arrived yet"),
    ("streamavatar_session_interrupts_total", "interrupts", "counter", "Interrupts received"),
    ("streamavatar_session_protocol_errors_total", "protocol_errors", "counter", "Rejected client messages"),
    ("streamavatar_session_talk_samples_refused_total", "talk_samples_refused", "counter",
     "Agent-voice samples refused because max_talk_queue_s was queued (error queue_full)"),
    ("streamavatar_session_utterances_refused_total", "utterances_refused", "counter",
     "speak_start refused because max_utterances were queued (error queue_full)"),
    ("streamavatar_session_listen_samples_dropped_total", "listen_samples_dropped", "counter",
     "User-voice samples dropped beyond listen_backlog_s (oldest first)"),
)


def render_prometheus(sessions: dict[str, dict], server: dict[str, float]) -> str:
    """Prometheus text exposition of server-wide values and per-session snapshots (label ``session``)."""
    lines = []
    for name, value in server.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        lines += [f"# TYPE {name} {kind}", f"{name} {float(value)}"]
    for name, key, kind, help_text in PROMETHEUS_SERIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for sid, snap in sessions.items():
            value = snap.get(key)
            if value is not None:
                lines.append(f'{name}{{session="{sid}"}} {float(value)}')
    return "\n".join(lines) + "\n"
