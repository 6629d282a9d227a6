"""The fixed prompt: umT5 encoding from a local directory (a tiny random umT5 and tokenizer built here, no
network), stored with the model, fed to the DiT's text cross-attention by the engine."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from streamavatar.errors import UserInputError
from streamavatar.models.avatar_model import AvatarModel
from streamavatar.models.text_encoder import encode_prompt
from streamavatar.streaming.random_model import random_model

WORDS = ["a", "person", "talks", "listens", "calmly"]


@pytest.fixture(scope="module")
def umt5_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    d = tmp_path_factory.mktemp("umt5")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(d)
    torch.manual_seed(0)
    cfg = UMT5Config(vocab_size=len(vocab), d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
                     pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    UMT5EncoderModel(cfg).eval().save_pretrained(d)
    return d


def test_prompt_is_the_encoder_output_of_the_real_tokens_zero_padded(umt5_dir):
    from transformers import UMT5EncoderModel

    ctx = encode_prompt(umt5_dir, "a person talks calmly", text_len=16)
    assert ctx.shape == (1, 16, 32) and ctx.dtype == torch.float32
    enc = UMT5EncoderModel.from_pretrained(umt5_dir).eval()
    ids = torch.tensor([[3, 4, 5, 7, 1]])  # the words and </s>
    with torch.no_grad():
        want = enc(input_ids=ids).last_hidden_state
    torch.testing.assert_close(ctx[:, :5], want, rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(ctx[:, 5:]) == 0
    assert encode_prompt(umt5_dir, "a person talks calmly").shape == (1, 512, 32)  # Wan's text_len


def test_prompt_is_stored_with_the_model_and_used_by_the_engine(umt5_dir, tmp_path):
    from streamavatar.streaming.pipeline import load

    model = random_model()
    assert model.text_context is None  # the tiny models keep the zero prompt
    model.set_prompt(umt5_dir, "a person listens")
    assert model.info["prompt"]["text"] == "a person listens"
    model.save_pretrained(tmp_path / "m")
    back = AvatarModel.from_pretrained(tmp_path / "m")
    torch.testing.assert_close(back.text_context, model.text_context, rtol=1e-2, atol=1e-2)  # saved in bf16

    pipe = load(str(tmp_path / "m"), dtype="fp32", warmup=False, numerics_check=False)
    ref = pipe.encode_reference(np.full((pipe.resolution, pipe.resolution, 3), 128, np.uint8))
    state = pipe.start(ref)
    assert state.context is pipe.bundle.text_context
    text_k, _ = state.cache.text_kv[0]
    assert text_k.shape[1] == 512
    zero = pipe.model.blocks[0].cross_attn.context_kv(pipe.model.text_context(None, 1))[0]
    assert not torch.allclose(text_k[:, :1], zero)  # the prompt, not the zero prompt, reached the cache


def test_bad_prompt_inputs(umt5_dir, tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        encode_prompt(tmp_path / "nope", "hello")
    with pytest.raises(UserInputError, match="cannot load"):
        encode_prompt(tmp_path, "hello")
    with pytest.raises(UserInputError, match="empty"):
        encode_prompt(umt5_dir, "  ")
    model = random_model(dim=64)
    wide = AvatarModel(replace(model.config, dit=replace(model.config.dit, text_dim=48)), model.projector_config)
    with pytest.raises(UserInputError, match="48 wide"):
        wide.set_prompt(umt5_dir, "a person")


def test_set_prompt_command(umt5_dir, tmp_path):
    import subprocess
    import sys

    from streamavatar.streaming.random_model import write_random_model

    folder = write_random_model(tmp_path / "m")
    cmd = [sys.executable, "-m", "streamavatar", "model", "set-prompt", "--model", str(folder), "--umt5"]
    r = subprocess.run([*cmd, str(umt5_dir), "--prompt", "a person talks"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    model = AvatarModel.from_pretrained(folder)
    assert model.text_context.shape == (1, 512, 32) and model.info["prompt"]["text"] == "a person talks"
    bad = subprocess.run([*cmd, str(tmp_path / "none"), "--prompt", "x"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
