"""slime: a custom reward function for ``--custom-rm-path quillrl.integrations.slime.reward``.

slime calls the function at ``--custom-rm-path`` as ``await fn(args, sample)`` per sample, or,
with ``--group-rm``, as ``await fn(args, samples)`` with one whole group
(``slime/rollout/rm_hub/__init__.py`` at THUDM/slime@701749b: ``async_rm`` and
``batched_async_rm``). Both go to
``serve-reward`` at ``--rm-url`` (its base URL, e.g. ``http://127.0.0.1:8100``):

* one sample -> ``POST /slime`` with the group key ``slime:<sample.group_index>`` and the group
  size ``--n-samples-per-prompt``: the server's barrier holds it until the group is whole;
* a group -> ``POST /slime/group``: scored at once.

Each sample's reward is the server's answer object; run slime with ``--reward-key reward`` so it
trains on the mixed reward (``Sample.get_reward_value`` reads ``reward[args.reward_key]``).
slime's built-in ``--rm-type remote_rm`` posts ``{"prompt", "response", "label"}`` to
``--rm-url`` with no group key; point it at ``.../slime`` and the server keys the group by the
prompt instead. A token, when the server wants one, is read from ``$QUILLRL_REWARD_TOKEN``.
"""

from __future__ import annotations

import os
from typing import Any

from .client import RewardClient

TOKEN_ENV = "QUILLRL_REWARD_TOKEN"


async def reward(args: Any, sample: Any, **_: Any) -> Any:
    """The reward of one slime ``Sample`` (or, for ``--group-rm``, a list: one group)."""
    client = RewardClient(str(args.rm_url).rstrip("/").removesuffix("/slime"),
                          token_env=TOKEN_ENV if os.environ.get(TOKEN_ENV) else None, timeout=900.0)
    if isinstance(sample, list):
        return await client.apost("/slime/group", {"samples": [_payload(s) for s in sample]})
    body = {**_payload(sample), "group_key": f"slime:{sample.group_index}",
            "group_size": int(args.n_samples_per_prompt)}
    return await client.apost("/slime", body)


def _payload(sample: Any) -> dict:
    return {"prompt": sample.prompt, "response": sample.response, "label": sample.label}
