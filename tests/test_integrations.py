"""Engine adapters against a real serve-reward on loopback, called exactly as the engines call them.

These run in the main venv, so each test sends exactly the arguments or request the engine's
source sends, cited at each test, and checks that what comes back is what it reads. The engines
themselves (verl, OpenRLHF, slime, NeMo Gym) are installed in venvs of their own
(engines/build.sh), where tests/engines/ drives their own code against serve-reward
(tests/test_engines.py runs those).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from quillrl.errors import ConfigError
from quillrl.rewards import mix_rewards
from quillrl.integrations.client import auth_headers
from test_reward_server import FORBID_MOON, TEXTS, _length_judge, make_config, served
from quillrl.scoring.group_rewards import GroupRewards

PROMPT = "Write about the night."
LABEL = json.dumps({"prompt": PROMPT, "constraints": FORBID_MOON})


def expected() -> np.ndarray:
    """What train policy's code gives the whole group (round_robin: order-free)."""
    return GroupRewards(_length_judge(), strategy="round_robin").compute(
        [PROMPT] * 4, TEXTS, [json.dumps(FORBID_MOON)] * 4, 4).rewards


def _match(got: dict[str, float]) -> None:
    want = expected()
    for i, text in enumerate(TEXTS):
        assert got[text] == pytest.approx(want[i])


# -- verl -----------------------------------------------------------------------------------------

def test_verl_compute_score_as_the_naive_reward_manager_calls_it():
    """verl/experimental/reward_loop/reward_manager/naive.py (v0.9.1, run_single): an async
    compute_score is awaited with data_source, solution_str, ground_truth, extra_info (to which
    it adds num_turns and rollout_reward_scores); verl/trainer/ppo/reward.py merges
    reward_kwargs into the call. The n samples of a prompt are in flight together."""
    from quillrl.integrations.verl import compute_score

    with served(make_config()) as server:
        async def rollout():
            calls = [compute_score(data_source="creative", solution_str=text, ground_truth=LABEL,
                                   extra_info={"index": 7, "split": "train", "num_turns": None,
                                               "rollout_reward_scores": {}},
                                   server_url=server.url, group_size=4) for text in TEXTS]
            return await asyncio.gather(*calls)

        results = asyncio.run(rollout())
    _match({t: r["score"] for t, r in zip(TEXTS, results)})
    assert all(isinstance(v, float) for r in results for v in r.values())  # reward_extra_info arrays


def test_verl_constraint_reward_in_process():
    from quillrl.integrations.verl import compute_score

    results = [asyncio.run(compute_score("creative", t, json.dumps(FORBID_MOON), {},
                                         reward_type="constraints")) for t in TEXTS[:2]]
    assert [r["score"] for r in results] == [0.0, 1.0]


def grpo_outcome_advantage(token_level_rewards, response_mask, index, epsilon=1e-6, norm_adv_by_std_in_grpo=True):
    """verl's ``compute_grpo_outcome_advantage`` (verl/trainer/ppo/core_algos.py, v0.9.1, lines
    268-331), restated for the main venv, which does not hold verl (verl's own venv is
    engines/build.sh's): per group (``index``, verl's uid) subtract the mean and divide by
    ``torch.std`` (unbiased) + epsilon; a lone sample gets mean 0 and std 1."""
    scores = token_level_rewards.sum(dim=-1)
    groups: dict = {}
    for i in range(scores.shape[0]):
        groups.setdefault(index[i], []).append(scores[i])
    stats = {}
    for key, values in groups.items():
        if len(values) == 1:
            stats[key] = (torch.tensor(0.0), torch.tensor(1.0))
        else:
            stacked = torch.stack(values)
            stats[key] = (torch.mean(stacked), torch.std(stacked))
    out = scores.clone()
    for i in range(scores.shape[0]):
        mean, std = stats[index[i]]
        out[i] = (scores[i] - mean) / (std + epsilon) if norm_adv_by_std_in_grpo else scores[i] - mean
    return out.unsqueeze(-1) * response_mask, out.unsqueeze(-1) * response_mask


def test_verl_grpo_advantage_of_rlmr_rewards_is_negative_for_every_violator():
    """No custom advantage estimator: verl's own GRPO normalisation of the served rewards."""
    try:
        from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage as advantage
    except ImportError:
        advantage = grpo_outcome_advantage
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = 8
        writing = rng.normal(size=n) * 3
        passed = rng.random(n) < 0.5
        passed[0], passed[1] = True, False  # a mixed group
        r = mix_rewards(writing, passed)
        tokens = torch.zeros(n, 5)
        tokens[:, -1] = torch.tensor(r, dtype=torch.float32)
        for norm in (True, False):  # GRPO, and Dr.GRPO (no std scaling)
            adv, _ = advantage(tokens, torch.ones(n, 5), np.array(["uid"] * n), norm_adv_by_std_in_grpo=norm)
            assert (adv[~torch.tensor(passed), 0] < 0).all(), (trial, norm)


# -- OpenRLHF -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/openrlhf", "/get_reward"])
def test_openrlhf_remote_rm_request(path):
    """openrlhf/utils/agent.py (v0.11.2): SingleTurnAgentExecutor.execute posts, per rollout,
    {"query": [decode(prompt+response tokens, skip_special_tokens=False)], "prompts": [prompt],
    "labels": [label]} and reads rewards/scores/extra_logs (cli/serve_rm.py answers lists)."""
    templated = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    with served(make_config()) as server, ThreadPoolExecutor(4) as pool:
        def post(text):
            body = {"query": [templated + text + "<|im_end|>"], "prompts": [templated], "labels": [LABEL]}
            return server.post(path, body).json()

        answers = list(pool.map(post, TEXTS))
    for a in answers:
        assert set(a) == {"rewards", "scores", "extra_logs"} and a["rewards"] == a["scores"]
        assert all(isinstance(v, list) and isinstance(v[0], float) for v in a["extra_logs"].values())
    _match({t: a["rewards"][0] for t, a in zip(TEXTS, answers)})


# -- slime ----------------------------------------------------------------------------------------

def sample(text, group_index=3, index=None):
    """The fields of slime's Sample (slime/utils/types.py) that reward functions read; ``index``
    is the sample's place in slime's running count (n per group, consecutive)."""
    index = TEXTS.index(text) + 4 * group_index if index is None else index
    return SimpleNamespace(prompt=PROMPT, response=text, label=LABEL, group_index=group_index, index=index,
                           metadata={})


def test_slime_custom_rm_single_samples_and_group():
    """slime/rollout/rm_hub/__init__.py (THUDM/slime@624b824): async_rm awaits fn(args, sample); with --group-rm,
    batched_async_rm awaits fn(args, samples). The reward is read as reward[args.reward_key]."""
    from quillrl.integrations.slime import reward

    with served(make_config()) as server:
        args = SimpleNamespace(rm_url=server.url, n_samples_per_prompt=4, reward_key="reward")

        async def singles():
            return await asyncio.gather(*(reward(args, sample(t)) for t in TEXTS))

        one_by_one = asyncio.run(singles())
        grouped = asyncio.run(reward(args, [sample(t) for t in TEXTS]))
    _match({t: r[args.reward_key] for t, r in zip(TEXTS, one_by_one)})
    _match({t: r[args.reward_key] for t, r in zip(TEXTS, grouped)})


def test_slime_builtin_remote_rm_payload_groups_by_prompt():
    """slime's remote_rm posts {"prompt", "response", "label"} to --rm-url, with no group key."""
    with served(make_config()) as server, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: server.post("/slime", {"prompt": PROMPT, "response": t,
                                                                 "label": LABEL}).json(), TEXTS))
    _match({t: a["reward"] for t, a in zip(TEXTS, answers)})


def test_slime_chat_prompts_are_their_last_user_turn_in_the_adapter_and_the_server():
    from quillrl.integrations.slime import _payload, group_of

    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
    as_chat = SimpleNamespace(prompt=chat, response=TEXTS[0], label=LABEL, group_index=None, index=0,
                              metadata={"n_samples_per_eval_prompt": 1})
    assert _payload(as_chat)["prompt"] == PROMPT
    assert group_of(SimpleNamespace(), as_chat) == group_of(SimpleNamespace(), SimpleNamespace(**{
        **vars(as_chat), "prompt": PROMPT}))
    with served(make_config()) as server:
        group = [{"prompt": chat if i % 2 else PROMPT, "response": t, "label": LABEL} for i, t in enumerate(TEXTS)]
        answers = server.post("/slime/group", {"samples": group}).json()
    _match({t: a["reward"] for t, a in zip(TEXTS, answers)})


# -- TRL ------------------------------------------------------------------------------------------

def test_remote_group_reward_joins_a_group_split_across_processes():
    """TRL calls a reward function per process on its slice; two 'processes' hold half a group each."""
    from quillrl.integrations.trl import RemoteGroupReward

    with served(make_config()) as server:
        fn = RemoteGroupReward(server.url, group_size=4)
        state = SimpleNamespace(global_step=5)
        prompts = [[{"role": "user", "content": PROMPT}]] * 2
        constraints = [LABEL] * 2

        def process(rank):
            completions = [[{"role": "assistant", "content": t}] for t in TEXTS[2 * rank:2 * rank + 2]]
            return fn(prompts=prompts, completions=completions, constraints=constraints, trainer_state=state)

        with ThreadPoolExecutor(2) as pool:
            halves = list(pool.map(process, [0, 1]))
    _match(dict(zip(TEXTS, halves[0] + halves[1])))


def test_client_never_sends_a_token_over_plain_http_beyond_loopback(monkeypatch):
    monkeypatch.setenv("RM_TOKEN", "t")
    assert auth_headers("http://127.0.0.1:8100", "RM_TOKEN") == {"Authorization": "Bearer t"}
    assert auth_headers("https://rm.example:8100", "RM_TOKEN")["Authorization"] == "Bearer t"
    with pytest.raises(ConfigError, match="plain http"):
        auth_headers("http://10.1.2.3:8100", "RM_TOKEN")
    assert auth_headers("http://10.1.2.3:8100", "RM_TOKEN", allow_insecure=True)
    monkeypatch.delenv("RM_TOKEN")
    with pytest.raises(ConfigError, match="unset"):
        auth_headers("http://127.0.0.1:8100", "RM_TOKEN")
