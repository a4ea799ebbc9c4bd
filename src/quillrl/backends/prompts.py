"""Prompt rendering, choice tokenization and stop-string cutting shared by the backends.

The local backend, the vLLM backend and ``quillrl serve`` must turn the same prompt into the
same token ids, or a judge scored through a server would disagree with the same judge run
in-process. Conventions, matching vLLM's OpenAI server:

* A raw string is tokenized with the tokenizer's special tokens (``add_special_tokens=True``,
  as vLLM's ``/v1/completions`` does), so a BOS-prepending tokenizer gets its BOS.
* A :class:`ChatPrompt` is rendered with the tokenizer's chat template
  (``add_generation_prompt=True``) followed by ``assistant_prefix``, and tokenized *without*
  special tokens: the template already wrote them (adding them again would give Llama-style
  models a double BOS), as vLLM's ``/v1/chat/completions`` does.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import BackendError, ConfigError
from .base import ChatPrompt, Prompt


def render(tokenizer: Any, prompt: Prompt) -> tuple[str, bool]:
    """``(text, add_special_tokens)`` for a prompt, as the model will read it."""
    if isinstance(prompt, str):
        return prompt, True
    if not isinstance(prompt, ChatPrompt):
        raise ConfigError(f"a prompt must be a str or a ChatPrompt, not {type(prompt).__name__}")
    if not getattr(tokenizer, "chat_template", None):
        raise BackendError(
            "this model's tokenizer has no chat template, so ChatPrompt cannot be rendered; "
            "pass raw string prompts or use a model with a chat template"
        )
    text = tokenizer.apply_chat_template(
        [dict(m) for m in prompt.messages], tokenize=False, add_generation_prompt=True
    )
    return text + prompt.assistant_prefix, False


def encode(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt (see the module docstring for the special-token rule)."""
    text, special = render(tokenizer, prompt)
    ids = list(tokenizer(text, add_special_tokens=special)["input_ids"])
    if not ids:
        raise ConfigError("an empty prompt has no last position to continue from; pass some text")
    return ids


def choice_token_ids(tokenizer: Any, prompt: Prompt, prompt_ids: Sequence[int],
                     choices: Sequence[str]) -> list[int]:
    """The id of each choice's first token as it would follow this prompt.

    We tokenize ``prompt_text + choice`` and take the first token after the prompt's own ids,
    so a choice is read exactly as the model would write it there: ``"A"`` after
    ``"<verdict>"`` is the token for ``"A"``, and a leading space is never added or removed
    (pass ``" Yes"`` if the answer follows a space). When BPE merges the prompt's last token
    with the choice (the joint ids do not start with the prompt's ids), the model cannot emit
    that merged token from this prompt anyway, so we fall back to the choice tokenized on its
    own, which spells the choice from exactly this prompt's last token.
    """
    text, special = render(tokenizer, prompt)
    for choice in choices:
        if not choice:
            raise ConfigError("choices must be non-empty strings (got an empty choice)")
    joint = tokenizer([text + c for c in choices], add_special_tokens=special)["input_ids"]
    n = len(prompt_ids)
    out = []
    for choice, ids in zip(choices, joint):
        if len(ids) > n and list(ids[:n]) == list(prompt_ids):
            out.append(int(ids[n]))
        else:
            alone = tokenizer(choice, add_special_tokens=False)["input_ids"]
            out.append(int(alone[0]))
    return out


def encode_choices(tokenizer: Any, prompts: Sequence[Prompt],
                   choices: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
    """``choice_probs``'s inputs, as every backend reads them: each prompt's token ids
    (:func:`encode`) and, per prompt, each choice's first-token id (:func:`choice_token_ids`)."""
    if not choices:
        raise ConfigError("choice_probs needs at least one choice")
    encoded = [encode(tokenizer, p) for p in prompts]
    ids = [choice_token_ids(tokenizer, p, e, choices) for p, e in zip(prompts, encoded)]
    return encoded, ids


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string (excluded); say whether one was found.

    >>> cut_at_stop("a cat</verdict> more", ["</verdict>", "cat"])
    ('a ', True)
    >>> cut_at_stop("no stop here", ["END"])
    ('no stop here', False)
    """
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    if not hits:
        return text, False
    return text[: min(hits)], True

