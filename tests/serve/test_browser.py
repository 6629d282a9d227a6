"""The shipped web page in real headless Chromium (Debian package) driven by Playwright, with a WAV file as
the fake microphone: connect, decode video, listening while the mic speaks, interrupt an agent utterance."""

from __future__ import annotations

import asyncio

import numpy as np
import playwright.async_api as playwright_api
import pytest
import soundfile as sf

from tests.serve.chromium import find_or_install_chromium
from tests.serve.helpers import API_KEY, fake_config, running_server


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return find_or_install_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def _write_wavs(tmp_path):
    rng = np.random.default_rng(0)
    sr = 48000
    t = np.arange(int(6.0 * sr)) / sr
    voice = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    voice += 0.05 * rng.standard_normal(t.size)
    voice[: int(1.5 * sr)] = 0.0  # the user is silent at first, then speaks
    sf.write(tmp_path / "mic.wav", voice.astype(np.float32), sr, subtype="PCM_16")
    tts = 0.4 * np.sin(2 * np.pi * 180 * np.arange(int(4.0 * 16000)) / 16000)
    sf.write(tmp_path / "agent.wav", tts.astype(np.float32), 16000, subtype="PCM_16")
    return tmp_path / "mic.wav", tmp_path / "agent.wav"


async def _scenario(tmp_path, chromium: str) -> None:
    mic, agent = _write_wavs(tmp_path)
    async with running_server(fake_config(fake_size=256, video_codec="h264")) as (base, _app):
        async with playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}", "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required"])
            try:
                page = await browser.new_page()
                await page.goto(f"http://{base}/")
                await page.fill("#apiKey", API_KEY)
                await page.set_input_files("#voiceFile", str(agent))
                await page.click("#start")
                # decodable video whose pixels carry the server's increasing frame counter
                await page.wait_for_function("window.sa.framesDecoded > 25 && window.sa.lastFrameCode > 0",
                                             timeout=20000)
                assert await page.is_visible("#frameCodeRow")  # fake model: the frame-code row is shown
                first = await page.evaluate("window.sa.lastFrameCode")
                await page.wait_for_function(f"window.sa.lastFrameCode > {first + 10}", timeout=10000)
                # the fake microphone starts speaking after 1.5 s: the avatar switches to listening
                await page.wait_for_function("window.sa.states.includes('listening')", timeout=15000)
                states = await page.evaluate("window.sa.states")
                assert "idle" in states[:states.index("listening")], states  # silent mic first, then speech
                # the agent speaks, then the user interrupts it
                await page.click("#speak")
                await page.wait_for_function(
                    "window.sa.events.some(e => e.type === 'speak_started')", timeout=10000)
                await page.click("#interrupt")
                await page.wait_for_function(
                    "window.sa.events.some(e => e.type === 'speak_ended' && e.interrupted)", timeout=5000)
                await page.wait_for_function(
                    "window.sa.events.some(e => e.type === 'interrupt_done')", timeout=5000)
                events = await page.evaluate("window.sa.events.filter(e => e.type !== 'metrics')")
                ended = next(e for e in events if e["type"] == "speak_ended")
                assert ended["interrupted"] and 0 < ended["played_ms"] < 4000
                done = next(e for e in events if e["type"] == "interrupt_done")
                assert done["latency_s"] <= 1.0 + 0.04
                after = [e["state"] for e in events if e["type"] == "state" and e["frame"] >= done["frame"]]
                assert after and after[0] == "listening", events
            finally:
                await browser.close()


def test_browser_client(tmp_path, chromium):
    asyncio.run(asyncio.wait_for(_scenario(tmp_path, chromium), 90))
