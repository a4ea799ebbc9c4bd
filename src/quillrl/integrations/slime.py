"""slime: a custom reward function for ``--custom-rm-path quillrl.integrations.slime.reward``.

slime calls the function at ``--custom-rm-path`` as ``await fn(args, sample)`` per sample, or,
with ``--group-rm``, as ``await fn(args, samples)`` with one whole group
(``slime/rollout/rm_hub/__init__.py`` at THUDM/slime@624b824: ``async_rm`` and
``batched_async_rm``). Both go to ``serve-reward``'s native ``POST /v1/rewards`` at ``--rm-url``
(its base URL, e.g. ``http://127.0.0.1:8100``; a trailing ``/slime`` is dropped):

* one training sample -> group ``slime:<sample.group_index>`` of size ``--n-samples-per-prompt``,
  slot ``sample.index % n`` (slime's data source numbers the n samples of a prompt consecutively,
  ``slime/rollout/data_source.py``), so a re-sent sample is a replay of its slot, never a second
  member; the server's barrier holds it until the group is whole;
* one eval sample: slime leaves ``group_index`` ``None`` for eval (``eval_rollout_single_dataset``
  in ``slime/rollout/sglang_rollout.py`` numbers them ``index = i * n + j`` per dataset, with
  ``n = n_samples_per_eval_prompt``), so it goes to the group ``slime-eval:<prompt digest>:<index // n>``
  of size n, slot ``index % n``; n is ``--n-samples-per-eval-prompt`` (slime's default 1: a
  singleton, scored at once by the singleton rule), or the dataset's own
  ``metadata_overrides: {n_samples_per_eval_prompt: n}`` when an ``--eval-config`` dataset sets
  its own n (slime does not hand the dataset's n to a reward function any other way);
* a group (``--group-rm``, training only: slime refuses ``--group-rm`` for eval) -> one request,
  scored at once.

The server also computes a digest of each member's prompt and label and refuses (409) a member
whose digest differs from its group's, so a wrong key never mixes prompts.

Each sample's reward is the server's answer object; run slime with ``--reward-key reward`` so it
trains on the mixed reward (``Sample.get_reward_value`` reads ``reward[args.reward_key]``).
Every call opens its own HTTP connection (no shared pool): the barrier needs all n samples of a
group in flight at once, which slime's built-in ``remote_rm`` and its one 64-connection pool
cannot promise (docs/scale.md, "slime"). A token, when the server wants one, is read from
``$QUILLRL_REWARD_TOKEN``.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from .client import RewardClient

TOKEN_ENV = "QUILLRL_REWARD_TOKEN"


async def reward(args: Any, sample: Any, **_: Any) -> Any:
    """The reward of one slime ``Sample`` (or, for ``--group-rm``, a list: one group)."""
    client = RewardClient(str(args.rm_url).rstrip("/").removesuffix("/slime"),
                          token_env=TOKEN_ENV if os.environ.get(TOKEN_ENV) else None, timeout=900.0)
    if isinstance(sample, list):
        body = {"samples": [_payload(s) for s in sample]}
        return (await client.apost("/v1/rewards", body))["results"]
    group_id, n = group_of(args, sample)
    member = _payload(sample)
    if sample.index is not None:
        member["slot"] = int(sample.index) % n
    # "group_key" is the contract's alias of "group_id" (the name servers before it know too)
    body = {"group_key": group_id, "attempt": 0, "group_size": n, "samples": [member]}
    return (await client.apost("/v1/rewards", body))["results"][0]


def group_of(args: Any, sample: Any) -> tuple[str, int]:
    """(group id, group size) of one slime sample: its ``group_index`` in training, else eval's."""
    if sample.group_index is not None:
        return f"slime:{sample.group_index}", int(args.n_samples_per_prompt)
    from ..scoring.reward_funcs import prompt_text  # on first use: the scoring stack is heavy

    metadata = sample.metadata if isinstance(getattr(sample, "metadata", None), dict) else {}
    n = int(metadata.get("n_samples_per_eval_prompt") or getattr(args, "n_samples_per_eval_prompt", None) or 1)
    position = int(sample.index) // n if sample.index is not None else "x"
    return f"slime-eval:{_digest(prompt_text(sample.prompt), sample.label)}:{position}", n


def _payload(sample: Any) -> dict:
    """slime's ``sample.prompt`` is a string, or chat messages (the last user turn is the prompt)."""
    from ..scoring.reward_funcs import prompt_text

    return {"prompt": prompt_text(sample.prompt), "response": sample.response, "label": sample.label}


def _digest(prompt: str, label: Any) -> str:
    return hashlib.sha256(f"{prompt}\x00{label}".encode()).hexdigest()[:24]
