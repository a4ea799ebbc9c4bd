"""Decoding helpers of the local backend: where a generated row ends, stop strings matched on
the generated text alone, and log-probabilities recorded before temperature and top-p (see
:mod:`quillrl.backends.local` for why each departs from plain ``model.generate``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import BackendError
from .prompts import cut_at_stop


def finish_row(token_ids: list[int], *, eos_ids: set[int], pad_id: int, max_new_tokens: int,
               stop: Sequence[str], decode: Any) -> tuple[str, str, int]:
    """``(text, finish_reason, tokens_generated)`` for one row of ``model.generate`` output.

    The row ends at the first EOS (counted as generated, not shown) or where its trailing run of
    pad tokens begins (a row that met a stop string is padded while the rest of the batch goes
    on); the text is then cut at the earliest stop string. A pad token the model wrote *inside*
    the text is one of its tokens, as ``model.generate`` and lm-eval treat it, so it does not
    end the row. A row cut at a stop string ends with the token that completed it: what
    follows is padding, even where the pad token is the EOS token.
    "length" means the token budget ran out, "stop" anything else.
    """
    end, hit_eos = len(token_ids), False
    for j, t in enumerate(token_ids):
        if t in eos_ids:
            end, hit_eos = j, True
            break
    if not hit_eos:
        while end > 0 and token_ids[end - 1] == pad_id:
            end -= 1
    text, hit_stop = cut_at_stop(decode(token_ids[:end]), stop)
    n = end + 1 if hit_eos and not hit_stop else end
    reason = "length" if not (hit_eos or hit_stop) and n >= max_new_tokens else "stop"
    return text, reason, n


class StopStrings:
    """Stopping criterion: a row is done once its generated text contains a stop string.

    Only the last few generated tokens are decoded each step (a stop string of L characters
    spans at most L tokens, plus one for a partial character), so the cost stays flat however
    long the completion grows; the final text is cut by :func:`cut_at_stop`.
    """

    def __init__(self, stop: Sequence[str], prompt_width: int, tokenizer: Any):
        self.stop = [s for s in stop if s]
        self.prompt_width = prompt_width
        self.tokenizer = tokenizer
        self.window = max(map(len, self.stop)) + 1

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        start = max(self.prompt_width, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        done = [any(s in tail for s in self.stop) for tail in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class RowsGone:
    """Stopping criterion: row ``r`` is done once ``gone(r)`` (its request was abandoned)."""

    def __init__(self, gone: Any):
        self.gone = gone

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = [bool(self.gone(r)) for r in range(input_ids.shape[0])]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class LogprobRecorder:
    """Records, per decoding step, the top-k log-probabilities and the chosen token's.

    Passed as a custom logits processor, it runs before transformers' temperature/top-p
    warpers, so it sees the model's own distribution. The token chosen at step t is only known
    at step t+1 (it is the last column of ``input_ids`` then), so the previous step's log-softmax
    is kept until then; :meth:`collect` reads the last step's choice from the output.
    """

    def __init__(self, k: int):
        self.k = k
        self.chosen: list[Any] = []
        self.top: list[tuple[Any, Any]] = []
        self._prev = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        logp = torch.log_softmax(scores.float(), dim=-1)
        if self._prev is not None:
            self.chosen.append(self._prev.gather(1, input_ids[:, -1:]).squeeze(1))
        k = min(self.k, logp.shape[-1])
        self.top.append(logp.topk(k, dim=-1) if k else (logp[:, :0], input_ids[:, :0]))
        self._prev = logp
        return scores

    def collect(self, new_tokens: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(chosen, top_values, top_ids)`` as arrays of shape ``(steps, batch[, k])``."""
        import torch

        if self._prev is None or len(self.top) != new_tokens.shape[1]:
            raise BackendError("internal: logprob recorder saw a different number of decoding "
                               f"steps ({len(self.top)}) than tokens generated ({new_tokens.shape[1]})")
        self.chosen.append(self._prev.gather(1, new_tokens[:, -1:]).squeeze(1))
        self._prev = None
        chosen = torch.stack(self.chosen).cpu().numpy()
        values = torch.stack([v for v, _ in self.top]).cpu().numpy()
        ids = torch.stack([i for _, i in self.top]).cpu().numpy()
        return chosen, values, ids
