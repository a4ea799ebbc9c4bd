"""Tiny random models for tests: built in a temp dir in about a second, nothing downloaded.

``build_tiny_model(dir)`` writes a Llama- or Qwen2-style causal LM with random weights and a
byte-level BPE tokenizer trained with ``tokenizers`` on a small built-in corpus, plus a ChatML
chat template, so it loads through ``quillrl.models.load`` exactly like a real model.
``serve_process(dir)`` runs a real ``quillrl serve`` on such a model, for loopback tests.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Once upon a time a fox wrote a story about the sea.",
    "<analysis> Coherence: good. Originality: weak. Engagement: fine. </analysis>",
    "<verdict>A</verdict> <verdict>B</verdict> Story A Story B",
    "The knight walked home; the moon was bright and the road was long.",
    "I remember the summer we spent by the lake, writing poems in the sand.",
    "You open the door. She said, \"Hello,\" and smiled. They left at dawn.",
    "Write a haiku about autumn leaves falling on the quiet river.",
    "yes no Yes No 0123456789 , . ! ? : ; ' \" ( ) [ ] - _",
]
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def build_tiny_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer wrapped as a transformers fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>", bos_token=None,
        unk_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(directory: str | Path, arch: str = "llama", seed: int = 0,
                     hidden_size: int = 32, layers: int = 2) -> Path:
    """Write a tiny random causal LM + tokenizer to ``directory`` and return the path."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=2048, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    config = (LlamaConfig if arch == "llama" else Qwen2Config)(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


@contextlib.contextmanager
def serve_process(model_dir: str | Path, name: str = "tiny", timeout: float = 180.0) -> Iterator[str]:
    """Run ``quillrl serve`` on ``model_dir`` in a real process on a free port; yield its base URL
    (read from the JSON line it prints first) and stop it on exit."""
    import json
    import subprocess
    import sys
    import threading

    launch = "import sys; from quillrl.cli import main; sys.argv[0] = 'quillrl'; main()"
    proc = subprocess.Popen([sys.executable, "-c", launch, "serve", "--model", str(model_dir), "--port", "0",
                             "--served-model-name", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=timeout)
        if not (line and line[0].strip()):
            proc.kill()
            raise RuntimeError(f"quillrl serve printed no URL; stderr: {proc.stderr.read()[-2000:]}")
        yield json.loads(line[0])["url"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
