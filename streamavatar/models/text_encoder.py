"""The fixed text prompt of a real Wan checkpoint, encoded once with umT5 from a local directory.

StreamAvatar fixes the prompt (the paper conditions on audio, not text), but Wan2.x checkpoints were trained with
umT5-XXL prompt embeddings, so feeding them all-zero text is off their training distribution. The prompt is
encoded once (``transformers.UMT5EncoderModel`` + its tokenizer, from a directory: no download) and stored with
the model (:meth:`~streamavatar.models.avatar_model.AvatarModel.set_prompt`); the DiT's text cross-attention
keys/values are then computed once per stream from it.

As in Wan (``wan/modules/t5.py`` ``T5EncoderModel.__call__`` keeps each prompt's real tokens; ``WanModel.forward``
zero-pads the context to ``text_len`` = 512) and diffusers' ``WanPipeline._get_t5_prompt_embeds``: the encoder's
last hidden states of the real tokens, zeros for the padding up to :data:`~streamavatar.constants.WAN_TEXT_LEN`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from streamavatar import constants as K
from streamavatar.errors import UserInputError


@torch.no_grad()
def encode_prompt(directory: str | Path, prompt: str, *, text_len: int = K.WAN_TEXT_LEN,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Prompt embedding ``[1, text_len, d_model]`` (float32, on the CPU) from a local umT5 encoder directory
    (``config.json`` + weights of a ``UMT5EncoderModel``/``UMT5Model`` and its tokenizer files)."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise UserInputError(f"umT5 directory {directory} does not exist")
    if not prompt.strip():
        raise UserInputError("the prompt is empty")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        encoder = UMT5EncoderModel.from_pretrained(str(directory), local_files_only=True,
                                                   dtype=torch.float32).to(device).eval()
    except (OSError, ValueError) as exc:
        raise UserInputError(f"cannot load a umT5 encoder and tokenizer from {directory}: "
                             f"{str(exc).splitlines()[0]}") from None
    ids = tokenizer([prompt], padding="max_length", truncation=True, max_length=text_len, add_special_tokens=True,
                    return_tensors="pt")
    mask = ids.attention_mask.to(device)
    hidden = encoder(input_ids=ids.input_ids.to(device), attention_mask=mask).last_hidden_state.float()
    n = int(mask[0].sum())
    context = torch.zeros(1, text_len, hidden.shape[-1])
    context[:, :n] = hidden[:, :n].cpu()
    return context
