"""verl 0.9.1's own reward path against a real ``quillrl serve-reward`` (run in the verl engine venv).

The code path, every step verl's own code unless marked *restated*:

1. the config: Hydra composes verl's ``trainer/config/ppo_trainer.yaml`` with the override block
   of docs/verl.md (read between its marker comments), the server's URL and the tiny tokenizer;
2. the data: ``RLHFDataset`` on small parquet files (``raw_prompt``, ``extra_info``, ``index``),
   ``collate_fn``, ``DataProto.from_single_dict``; a uid per prompt (*restated*, one line of
   ``RayPPOTrainer.fit`` / ``_validate``), ``RayPPOTrainer._get_gen_batch``,
   ``DataProto.repeat(n, interleave=True)``; for validation ``pad_dataproto_to_divisor``;
   ``priority`` = position in the batch (*restated*, one line of
   ``AgentLoopManager.generate_sequences``);
3. generation is replaced by fixed responses (no model): an ``AgentLoopOutput`` per sample with
   the tiny tokenizer's ids, ``extra_fields["raw_prompt"]`` set as ``_agent_loop_postprocess``
   sets it (*restated*, one line), then ``AgentLoopWorker._compute_score`` (verl's method, on a
   worker object with no processor) builds the one-sample ``DataProto`` and awaits
   ``RewardLoopWorker.compute_score`` (verl's class, called directly instead of through Ray),
   which built its reward manager with ``load_reward_manager`` / ``get_custom_reward_fn`` /
   ``resolve_reward_manager_cls`` (``verl/trainer/ppo/reward.py``) and calls its ``run_single``:
   ``QuillRewardManager`` (docs/verl.md) or verl's ``NaiveRewardManager``; either awaits
   ``quillrl.integrations.verl.compute_score``, which posts to the server;
4. the advantage: ``compute_grpo_outcome_advantage`` (``verl/trainer/ppo/core_algos.py``) with
   ``index`` = uid.

All samples of a batch are in flight at once and reach the server in a shuffled order (rollouts
finish in any order). Every scenario asserts, per uid group, that each constraint violator is
below its group's mean reward (groups of more than one) and gets a negative advantage, and prints
one JSON line with its rewards, advantages and seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("verl")

from _server import reward_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FORBID_MOON = [{"id": "creative:forbid_words", "kwargs": {"words": ["moon"]}}]
PROMPTS = ["Write about the night.", "Write about the sea.", "Write about a fox.", "Write about rain."]
# per prompt: the violator (mentions the moon) is the longest, so the length judge ranks it first
RESPONSES = [
    ["the moon rose over the long dark silent sea again tonight and stayed", "a short calm",
     "a middling story of a fox in the night", "quiet"],
    ["waves and the moon, the moon and waves, on and on and on for ever", "salt",
     "the tide came in and went out twice", "blue water under a grey sky"],
    ["the moon and a fox", "the moon watched the fox run home", "a red fox under the moon",
     "the fox slept in the warm dry den all winter"],
    ["rain on the roof all night long", "drops", "the moon hid behind the rain clouds for hours and hours",
     "grey streets shining"],
]


# -- the config, from docs/verl.md -------------------------------------------------------------------

def doc_overrides() -> list[str]:
    """The override lines of docs/verl.md between its marker comments (the doc's exact keys)."""
    text = (REPO / "docs" / "verl.md").read_text()
    block = re.search(r"<!-- verl-overrides:begin -->(.*?)<!-- verl-overrides:end -->", text, re.S)
    assert block, "docs/verl.md lost its verl-overrides markers"
    lines = [line.strip().rstrip("\\").strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("```")]


def verl_config(url: str, tokenizer_dir: Path, *extra: str):
    """verl's ppo_trainer config with the doc's overrides, composed by Hydra as main_ppo does."""
    import verl
    from hydra import compose, initialize_config_dir

    overrides = []
    for line in doc_overrides():
        key, _, value = line.partition("=")
        if key.lstrip("+") == "reward.custom_reward_function.reward_kwargs.server_url":
            value = url  # the doc's example URL -> this test's server
        overrides.append(f"{key}={value}")
    overrides += [f"actor_rollout_ref.model.path={tokenizer_dir}", *extra]
    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


# -- data as verl's RLHFDataset gives it -------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    from quillrl.testing import build_tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-tokenizer")
    build_tiny_tokenizer().save_pretrained(path)
    return path


def write_parquet(path: Path, prompts: list[str], split: str, prompt_in_label: bool = False) -> str:
    """Rows as verl's preprocessing scripts write them, each file indexed from 0."""
    import pandas as pd

    rows = []
    for i, prompt in enumerate(prompts):
        label = {"constraints": FORBID_MOON, **({"prompt": prompt} if prompt_in_label else {})}
        rows.append({"data_source": "creative", "prompt": [{"role": "user", "content": prompt}],
                     "ability": "writing",
                     "reward_model": {"style": "rule", "ground_truth": json.dumps(label)},
                     "extra_info": {"split": split, "index": i}})
    pd.DataFrame(rows).to_parquet(path)
    return str(path)


def dataset_batch(files: list[str], tokenizer):
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 256, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1, "cache_dir": str(Path(files[0]).parent)})
    dataset = RLHFDataset(data_files=files, tokenizer=tokenizer, config=config)
    return DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))


def generation_batch(batch, n: int, pad_to: int | None = None):
    """What the agent loop receives: uid per prompt, repeated n times; optionally padded."""
    from verl.protocol import pad_dataproto_to_divisor
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    gen = RayPPOTrainer._get_gen_batch(None, batch).repeat(repeat_times=n, interleave=True)
    pad = 0
    if pad_to:
        gen, pad = pad_dataproto_to_divisor(gen, pad_to)
    gen.non_tensor_batch["priority"] = np.arange(len(gen), dtype=np.int64)  # AgentLoopManager.generate_sequences
    return gen, pad


# -- verl's reward path --------------------------------------------------------------------------------

async def score_rollouts(config, gen, responses: list[str], seed: int = 0, sends=None) -> list[dict]:
    """Each sample through AgentLoopWorker._compute_score -> RewardLoopWorker.compute_score,
    all in flight at once, started in a shuffled order. ``sends`` lists sample indices to send
    (default: each once; an index twice is a sample sent twice)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput, AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    reward_worker = RewardLoopWorker(config)  # inside the running loop, as in verl's async actor
    tokenizer = reward_worker.input_tokenizer
    agent_worker = AgentLoopWorker.__new__(AgentLoopWorker)
    agent_worker.processor, agent_worker.mm_processor_kwargs = None, None
    agent_worker.reward_loop_worker_handles = [SimpleNamespace(
        compute_score=SimpleNamespace(remote=reward_worker.compute_score))]

    async def one(i: int, delay: float) -> dict:
        await asyncio.sleep(delay)
        kwargs = {k: v[i] for k, v in gen.non_tensor_batch.items()}  # AgentLoopWorker.generate_sequences
        prompt_ids = tokenizer.apply_chat_template(list(kwargs["raw_prompt"]), add_generation_prompt=True,
                                                   tokenize=True, return_dict=False)
        response_ids = tokenizer.encode(responses[i], add_special_tokens=False) + [tokenizer.eos_token_id]
        output = AgentLoopOutput(prompt_ids=prompt_ids, response_ids=response_ids,
                                 response_mask=[1] * len(response_ids), num_turns=2, metrics=AgentLoopMetrics())
        output.extra_fields["raw_prompt"] = kwargs["raw_prompt"]  # AgentLoopWorker._agent_loop_postprocess
        await AgentLoopWorker._compute_score(agent_worker, [output], kwargs=kwargs)
        return {"score": float(output.reward_score), **output.extra_fields["reward_extra_info"]}

    order = list(sends if sends is not None else range(len(gen)))
    random.Random(seed).shuffle(order)
    answers = await asyncio.gather(*(one(i, 0.03 * k) for k, i in enumerate(order)))
    by_index: dict[int, list[dict]] = {}
    for i, answer in zip(order, answers):
        by_index.setdefault(i, []).append(answer)
    return [by_index.get(i, []) for i in range(len(gen))]


def grpo_check(name: str, uids, responses, rewards, seconds: float, extra: dict | None = None) -> np.ndarray:
    """verl's GRPO advantage per uid; every violator below its group mean and negative."""
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    scores = torch.tensor(rewards, dtype=torch.float32)
    advantages, _ = compute_grpo_outcome_advantage(scores.unsqueeze(-1), torch.ones(len(rewards), 1),
                                                   np.array(uids, dtype=object))
    adv = advantages[:, 0].numpy()
    print(json.dumps({"scenario": name, "rewards": [round(float(r), 4) for r in rewards],
                      "advantages": [round(float(a), 4) for a in adv],
                      "violator": ["moon" in r for r in responses], "seconds": round(seconds, 3),
                      **(extra or {})}))
    for uid in dict.fromkeys(uids):
        members = [i for i, u in enumerate(uids) if u == uid]
        mean = float(np.mean([rewards[i] for i in members]))
        for i in members:
            if "moon" in responses[i]:
                if len(members) > 1:
                    assert rewards[i] < mean, (name, uid, i, rewards[i], mean)
                assert adv[i] < 0, (name, uid, i, float(adv[i]), [rewards[j] for j in members])
    return adv


def flat(responses_per_prompt: list[list[str]]) -> list[str]:
    return [text for group in responses_per_prompt for text in group]


def run(coro):
    return asyncio.run(coro)


# -- scenarios -----------------------------------------------------------------------------------------

def test_doc_overrides_are_the_keys_verl_composes(tokenizer_dir):
    """The doc's block composes onto verl's schema (a wrong key or a missing '+' fails here)."""
    config = verl_config("http://127.0.0.1:1", tokenizer_dir)
    assert config.reward.reward_manager.source == "importlib"
    assert config.reward.custom_reward_function.path == "pkg://quillrl.integrations.verl"
    assert config.reward.custom_reward_function.reward_kwargs.server_url == "http://127.0.0.1:1"


def test_clean_groups(tmp_path, tokenizer_dir):
    """Four prompts, n=4, QuillRewardManager: each uid is one server group."""
    from transformers import AutoTokenizer

    files = [write_parquet(tmp_path / "train.parquet", PROMPTS, "train")]
    responses = flat(RESPONSES)
    with reward_server(tmp_path, group_size=4, timeout_s=60) as url:
        config = verl_config(url, tokenizer_dir)
        gen, _ = generation_batch(dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir)), 4)
        start = time.monotonic()
        answers = run(score_rollouts(config, gen, responses))
        seconds = time.monotonic() - start
    rewards = [a[0]["score"] for a in answers]
    assert not any(a[0]["partial"] for a in answers)
    assert [a[0]["passed"] for a in answers] == [float("moon" not in r) for r in responses]
    grpo_check("clean_groups", list(gen.non_tensor_batch["uid"]), responses, rewards, seconds)
    assert seconds < 30  # whole groups are scored at once, never after the timeout


@pytest.mark.parametrize("manager", ["quill", "naive"])
def test_two_prompts_with_the_same_index_in_flight(tmp_path, tokenizer_dir, manager):
    """Two train files, each indexed from 0: prompts 0 of both share extra_info.index = 0 (and
    the prompt sits in the label, as the old docs said). With the old key
    ``verl:<data_source>:<index>`` their samples were mixed into one server group. The manager
    keys by uid; compute_score alone (verl's naive manager) keys by index plus a prompt digest."""
    from transformers import AutoTokenizer

    files = [write_parquet(tmp_path / "a.parquet", PROMPTS[:2], "train", prompt_in_label=True),
             write_parquet(tmp_path / "b.parquet", PROMPTS[2:], "train", prompt_in_label=True)]
    responses = flat(RESPONSES)
    extra = [] if manager == "quill" else ["reward.reward_manager.source=register",
                                           "reward.reward_manager.name=naive",
                                           "+reward.custom_reward_function.reward_kwargs.group_size=4"]
    with reward_server(tmp_path, group_size=4, timeout_s=20) as url:
        config = verl_config(url, tokenizer_dir, *extra)
        batch = dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir))
        assert list(batch.non_tensor_batch["index"]) == [0, 1, 0, 1]
        gen, _ = generation_batch(batch, 4)
        start = time.monotonic()
        answers = run(score_rollouts(config, gen, responses, seed=1))
        seconds = time.monotonic() - start
    rewards = [a[0]["score"] for a in answers]
    assert not any(a[0]["partial"] for a in answers)
    grpo_check(f"same_index_{manager}", list(gen.non_tensor_batch["uid"]), responses, rewards, seconds)


def test_validation_with_n_1_and_a_padding_copy(tmp_path, tokenizer_dir):
    """val_kwargs.n=1 (rollout.n=4): the manager sends group_size 1 for 'test' rows; the server
    scores each at once by the singleton rule (a violator below a compliant sample). Three rows
    padded to agent.num_workers=2 add a copy of row 0 (same uid, position 3), which must not wait
    or join anything. Needs the server's singleton rule (coordinator's branch)."""
    from transformers import AutoTokenizer

    prompts = PROMPTS[:3]
    files = [write_parquet(tmp_path / "test.parquet", prompts, "test")]
    responses = [RESPONSES[0][0], RESPONSES[1][1], RESPONSES[2][1], RESPONSES[0][3]]  # 4th: the copy's
    with reward_server(tmp_path, group_size=4, timeout_s=20) as url:
        config = verl_config(url, tokenizer_dir, "actor_rollout_ref.rollout.val_kwargs.n=1")
        gen, pad = generation_batch(dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir)), 1,
                                    pad_to=2)
        assert pad == 1 and gen.non_tensor_batch["uid"][3] == gen.non_tensor_batch["uid"][0]
        start = time.monotonic()
        answers = run(score_rollouts(config, gen, responses))
        seconds = time.monotonic() - start
    answers = [a[0] for a in answers][: len(gen) - pad]  # verl unpads
    rewards = [a["score"] for a in answers]
    uids = list(gen.non_tensor_batch["uid"][: len(gen) - pad])
    grpo_check("validation_n1", uids, responses[:3], rewards, seconds,
               {"singleton": [a["singleton"] for a in answers]})
    assert seconds < 10  # no group waits for its timeout
    assert all(a["singleton"] == 1.0 and a["partial"] == 0.0 for a in answers)
    compliant = [r for r, t in zip(rewards, responses) if "moon" not in t]
    assert max(r for r, t in zip(rewards, responses) if "moon" in t) < min(compliant)


def test_a_sample_sent_twice(tmp_path, tokenizer_dir):
    """verl's RewardLoopManager.compute_rm_score pads its batch with copies of the first samples
    (pad_dataproto_to_divisor) and scores them too: the same sample (same uid, position and
    response) reaches the server twice. The copy names the same slot and must get the same
    answer, without taking a second place in the group. Needs the server's slot replay
    (coordinator's branch)."""
    from transformers import AutoTokenizer

    files = [write_parquet(tmp_path / "train.parquet", PROMPTS[:1], "train")]
    responses = RESPONSES[0]
    with reward_server(tmp_path, group_size=4, timeout_s=15) as url:
        config = verl_config(url, tokenizer_dir)
        gen, _ = generation_batch(dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir)), 4)
        start = time.monotonic()
        answers = run(score_rollouts(config, gen, responses, seed=2, sends=[0, 1, 2, 3, 0]))
        seconds = time.monotonic() - start
    first, copy = answers[0]
    assert copy == first  # the replayed slot's answer
    rewards = [a[0]["score"] for a in answers]
    assert not any(a[0]["partial"] for a in answers)
    grpo_check("sent_twice", list(gen.non_tensor_batch["uid"]), responses, rewards, seconds)
    assert seconds < 10


def test_a_partial_group_is_flagged(tmp_path, tokenizer_dir):
    """A rollout is lost (3 of n=4 samples arrive): after group.timeout_s the server scores the
    three and every answer has partial = 1.0 in reward_extra_info, for the user to mask."""
    from transformers import AutoTokenizer

    files = [write_parquet(tmp_path / "train.parquet", PROMPTS[:1], "train")]
    responses = RESPONSES[0]
    with reward_server(tmp_path, group_size=4, timeout_s=2) as url:
        config = verl_config(url, tokenizer_dir)
        gen, _ = generation_batch(dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir)), 4)
        start = time.monotonic()
        answers = run(score_rollouts(config, gen, responses, sends=[0, 1, 2]))
        seconds = time.monotonic() - start
    got = [a[0] for a in answers[:3]]
    assert all(a["partial"] == 1.0 for a in got)
    grpo_check("partial", list(gen.non_tensor_batch["uid"][:3]), responses[:3], [a["score"] for a in got],
               seconds, {"partial": [a["partial"] for a in got]})


@pytest.mark.parametrize("form", ["pkg", "file"])
def test_both_loading_forms(tmp_path, tokenizer_dir, form):
    """verl's get_custom_reward_fn and resolve_reward_manager_cls (load_extern_object) load the
    module as pkg://quillrl.integrations.verl and as a file path (an anonymous module: relative
    imports fail there); the naive manager with the prompt only in raw_prompt (not in the label)."""
    import quillrl.integrations.verl as module
    from transformers import AutoTokenizer

    where = "pkg://quillrl.integrations.verl" if form == "pkg" else module.__file__
    extra = [f"reward.custom_reward_function.path={where}", f"reward.reward_manager.module.path={where}"]
    files = [write_parquet(tmp_path / "train.parquet", PROMPTS[:2], "train")]
    responses = flat(RESPONSES[:2])
    with reward_server(tmp_path, group_size=4, timeout_s=20) as url:
        config = verl_config(url, tokenizer_dir, *extra)
        from verl.trainer.ppo.reward import get_custom_reward_fn, resolve_reward_manager_cls

        assert get_custom_reward_fn(config) is not None
        assert resolve_reward_manager_cls(config).__name__ == "QuillRewardManager"
        gen, _ = generation_batch(dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir)), 4)
        start = time.monotonic()
        answers = run(score_rollouts(config, gen, responses, seed=3))
        seconds = time.monotonic() - start
    grpo_check(f"load_{form}", list(gen.non_tensor_batch["uid"]), responses, [a[0]["score"] for a in answers],
               seconds)


def test_naive_manager_reads_the_prompt_from_raw_prompt(tmp_path, tokenizer_dir):
    """verl's own naive manager + compute_score alone: the label has no prompt; verl's agent loop
    puts the chat messages in extra_info['raw_prompt'] (tool_extra_fields), and the writing prompt
    is their last user turn (the server refuses a sample with no prompt)."""
    from transformers import AutoTokenizer

    files = [write_parquet(tmp_path / "train.parquet", PROMPTS[:2], "train")]
    responses = flat(RESPONSES[:2])
    with reward_server(tmp_path, group_size=4, timeout_s=20) as url:
        config = verl_config(url, tokenizer_dir, "reward.reward_manager.source=register",
                             "reward.reward_manager.name=naive")
        gen, _ = generation_batch(dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir)), 4)
        start = time.monotonic()
        answers = run(score_rollouts(config, gen, responses, seed=4))
        seconds = time.monotonic() - start
    assert not any(a[0]["partial"] for a in answers)
    grpo_check("naive_raw_prompt", list(gen.non_tensor_batch["uid"]), responses,
               [a[0]["score"] for a in answers], seconds)


def test_what_the_manager_sends(tmp_path, tokenizer_dir, monkeypatch):
    """The request body (docs/design.md, "Group identity"), captured at the client: the group is
    verl's uid (plus the block of n positions), the slot is the position within it, the size is
    rollout.n, and the prompt is raw_prompt's last user turn (the label carries none)."""
    import quillrl.integrations.verl as module
    from transformers import AutoTokenizer

    bodies = []

    class Recorder:
        async def apost(self, path, body):
            bodies.append(body)
            return {"results": [{"reward": 0.0, "writing": 0.0, "passed": True, "lambda": 0.0,
                                 "writing_missing": False, "partial": False}]}

    monkeypatch.setattr(module, "_client", lambda *args: Recorder())
    files = [write_parquet(tmp_path / "train.parquet", PROMPTS[:2], "train")]
    config = verl_config("http://127.0.0.1:1", tokenizer_dir)
    gen, _ = generation_batch(dataset_batch(files, AutoTokenizer.from_pretrained(tokenizer_dir)), 4)
    run(score_rollouts(config, gen, flat(RESPONSES[:2])))
    uids = gen.non_tensor_batch["uid"]
    by_response = {b["samples"][0]["response"]: b for b in bodies}
    for i, text in enumerate(flat(RESPONSES[:2])):
        body = by_response[text]
        assert body["group_id"] == body["group_key"] == f"verl:{uids[i]}:{i // 4}"
        assert (body["attempt"], body["group_size"], body["samples"][0]["slot"]) == (0, 4, i % 4)
        assert body["samples"][0]["prompt"] == PROMPTS[i // 4]
        assert json.loads(body["samples"][0]["label"]) == {"constraints": FORBID_MOON}
