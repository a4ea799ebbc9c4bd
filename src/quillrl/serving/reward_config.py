"""``serve-reward``'s typed config, and how a request's label becomes a sample to score.

The judge, mode, swap, strategy (``reward:``) and the mixer (``mix:``) are the very sections of
``train policy``'s config, built into a judge and a ``GroupRewards`` by the same function
(:func:`~quillrl.scoring.build.build_group_rewards`), so the server and the trainer score a
group alike. Example (``configs/serve_reward.yaml``)::

    http: {host: 127.0.0.1, port: 8100, token_env: QUILLRL_REWARD_TOKEN}
    reward: {judge: "genrm:local:smollm2-135m-instruct", mode: verdict, strategy: pivot}
    mix: {method: rlmr, margin: 0.5}
    group: {size: 8, timeout_s: 120}
    constraints: {source: tasks, tasks: data/tasks.jsonl}

Where a sample's constraints come from (``constraints.source``):

* ``label``: the request carries them: a list of ``{"id", "kwargs"}``, or an object
  ``{"constraints": [...], "prompt"?, "reference"?, "principle"?, "criteria"?}``, either as JSON
  or as a JSON string (what a
  dataset column of verl's ``ground_truth``, OpenRLHF's ``--data.label_key`` or slime's
  ``--label-key`` holds);
* ``tasks``: the label is a task id (or ``{"id": ...}``) in the ``constraints.tasks`` file, which
  also gives the writing prompt the judge sees, the reference text and the task's principle.

A principle and criteria are rendered into the judge's one principle text by
:func:`quillrl.data.render_principle`, as ``train policy`` renders a task's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import StageConfig
from ..errors import ConfigError, ConstraintError
from ..scoring.config import MixSection, RewardSection
from ..httpserve.http import HTTPSection


class GroupSection(StageConfig):
    """The group barrier (docs/design.md, "Group barrier")."""

    size: int = Field(4, ge=1, le=4096, description="group size n (the engine's rollout.n / "
                      "n_samples_per_prompt); a request's group_size overrides it")
    timeout_s: float = Field(120.0, gt=0, description="an incomplete group is scored among the "
                             "members present after this long, and flagged partial")
    judge_on_arrival: bool = Field(False, description="judge a comparison as soon as both of its "
                                   "members are in, and check constraints as each member arrives; "
                                   "false: judge the whole group once it is complete. The same "
                                   "rewards either way; faster only where the judge has idle time "
                                   "while groups fill (docs/design.md, \"Judging while the group "
                                   "arrives\")")


class ConstraintsSection(StageConfig):
    """Where each sample's constraints (and prompt, reference) come from."""

    source: Literal["label", "tasks"] = Field("label", description="label: the request's label "
                                              "holds them; tasks: the label is a task id")
    tasks: str | None = Field(None, description="writing tasks JSONL (id, prompt, constraints), "
                              "for source: tasks")


class BatchSection(StageConfig):
    """Cross-client batching of judge calls."""

    max_batch: int = Field(64, ge=1, description="most pairs in one compare_many call on the judge")
    max_wait_s: float = Field(0.02, ge=0, description="how long a batch waits for more pairs")
    judge_retries: int = Field(1, ge=0, description="retries of a failed or invalid judgment, "
                               "after which the writing reward is missing (filled, flagged)")
    scoring_threads: int = Field(64, ge=1, description="groups scored at once (their judge calls "
                                 "are merged by the batcher)")


class TextSection(StageConfig):
    """How engine requests that carry token-decoded text are cleaned."""

    strip_suffixes: list[str] = Field(
        default_factory=lambda: ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<|end|>"],
        description="special tokens removed from the end of a response (OpenRLHF decodes "
                    "with skip_special_tokens=False)")


class RewardServerConfig(StageConfig):
    """``quillrl serve-reward`` config (YAML)."""

    http: HTTPSection = HTTPSection()
    reward: RewardSection = RewardSection()
    mix: MixSection = MixSection()
    seed: int = Field(0, description="seed of the pivot choice")
    group: GroupSection = GroupSection()
    constraints: ConstraintsSection = ConstraintsSection()
    batch: BatchSection = BatchSection()
    text: TextSection = TextSection()

    @model_validator(mode="after")
    def _room_for_a_group(self) -> "RewardServerConfig":
        if self.group.size > self.http.max_inflight:
            raise ValueError(f"group.size ({self.group.size}) must not exceed http.max_inflight "
                             f"({self.http.max_inflight}): single-sample clients of one group must all fit")
        if self.http.request_timeout_s <= self.group.timeout_s:
            raise ValueError(f"http.request_timeout_s ({self.http.request_timeout_s:g}) must exceed "
                             f"group.timeout_s ({self.group.timeout_s:g}): a member held until its group "
                             "times out would get 504 before its reward; raise http.request_timeout_s "
                             "or lower group.timeout_s")
        return self


class BadRequest(ValueError):
    """A request the server refuses (400, or 409 for a conflict with its group); ``field`` names
    the part of the body at fault."""

    def __init__(self, message: str, field: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


@dataclass(frozen=True)
class Sample:
    """One completion to score, as :class:`GroupRewards` takes it."""

    prompt: str
    response: str
    constraints: str  # JSON list of {"id", "kwargs"}, the training dataset's column form
    reference: str | None = None
    prompt_truncated: bool = False  # the engine cut the prompt (see split_query)
    principle: str | None = None  # the rendered principle the judge is conditioned on

    @property
    def digest(self) -> str:
        """What makes two samples members of one group: prompt, constraints, reference and
        principle (left out when there is none, so principle-less digests are unchanged)."""
        identity = {"prompt": self.prompt, "constraints": self.constraints, "reference": self.reference}
        if self.principle is not None:
            identity["principle"] = self.principle
        return _sha(identity)

    @property
    def response_digest(self) -> str:
        return _sha(self.response)


def _sha(value: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:32]


MIN_PROMPT_OVERLAP = 16


def split_query(query: str, prompt: str, field: str) -> tuple[str, bool]:
    """``(response, prompt_truncated)`` from an engine's ``query`` = prompt + response.

    OpenRLHF cuts long prompts on the left (``prompt_max_len``) before generating, then sends the
    decoded *truncated* prompt plus the response as the query, and the full prompt beside it. The
    rule (docs/design.md, "Group identity"): the response is what follows the prompt when the
    query starts with it; otherwise what follows the longest suffix of the prompt that the query
    starts with, if that suffix is at least :data:`MIN_PROMPT_OVERLAP` characters (or the whole
    prompt, when shorter), and the sample is flagged ``prompt_truncated``. Anything else is a
    :class:`BadRequest` naming the mismatch: scoring the query as the response would grade the
    prompt's own words as the policy's.

    >>> split_query("Tell me a story. Once upon a time", "Tell me a story. ", "query[0]")
    ('Once upon a time', False)
    >>> split_query("e about the sea, in ten words. Waves.", "Write about the sea, in ten words. ", "q")
    ('Waves.', True)
    """
    if query.startswith(prompt):
        return query[len(prompt):], False
    head = query.lstrip("\ufffd")  # a multi-byte character cut by the truncation decodes as U+FFFD
    overlap = _longest_suffix_prefix(prompt, head)
    if overlap >= min(MIN_PROMPT_OVERLAP, len(prompt)) and overlap > 0:
        return head[overlap:], True
    raise BadRequest(f"{field} does not start with its prompt (nor with a suffix of it of at least "
                     f"{MIN_PROMPT_OVERLAP} characters): query begins {query[:40]!r}, prompt ends "
                     f"{prompt[-40:]!r}", field)


def _longest_suffix_prefix(prompt: str, query: str) -> int:
    """Length of the longest suffix of ``prompt`` that is a prefix of ``query`` (KMP's prefix
    function over ``query + NUL + prompt``, linear time)."""
    text = query[:len(prompt)] + "\0" + prompt
    pi = [0] * len(text)
    for i in range(1, len(text)):
        k = pi[i - 1]
        while k and text[i] != text[k]:
            k = pi[k - 1]
        if text[i] == text[k]:
            k += 1
        pi[i] = k
    return pi[-1] if text else 0


class LabelResolver:
    """Turn a request's label into (prompt or None, constraints JSON, reference or None,
    rendered principle or None)."""

    def __init__(self, section: ConstraintsSection):
        self.source = section.source
        self.tasks: dict[str, Any] = {}
        if section.source == "tasks":
            if not section.tasks:
                raise ConfigError("constraints.source is 'tasks' but constraints.tasks names no file")
            from ..constraints import read_tasks
            from ..data import resolve_tasks_path

            path = resolve_tasks_path(section.tasks)
            self.tasks = {t.id: t for t in read_tasks(path).records}
            if not self.tasks:  # every request would be refused: refuse once, at start
                raise ConfigError(f"constraints.tasks: {path} holds no task")

    def resolve(self, label: Any, field: str,
                constraints: list | None = None) -> tuple[str | None, str, str | None, str | None]:
        """``constraints``, when a request sends them beside its label, replace the label's own
        and keep the rest of it (prompt, reference, principle, criteria)."""
        if isinstance(label, str) and label.strip()[:1] in ("[", "{"):
            try:
                label = json.loads(label)
            except json.JSONDecodeError as exc:
                raise BadRequest(f"{field} is not valid JSON: {exc.msg}", field) from None
        if constraints is not None:
            if self.source == "tasks":
                raise BadRequest("constraints.source is 'tasks': send the task id as the label",
                                 field.rsplit(".", 1)[0] + ".constraints")
            label = {**(label if isinstance(label, dict) else {}), "constraints": constraints}
        if self.source == "tasks":
            task_id = label.get("id") if isinstance(label, dict) else label
            task = self.tasks.get(str(task_id)) if task_id is not None else None
            if task is None:
                raise BadRequest(f"{field}: no task with id {task_id!r} in the tasks file", field)
            constraints = [c.model_dump() for c in task.constraints]
            return task.prompt, json.dumps(constraints), task.reference, task.judge_principle()
        if label is None or label == "":
            return None, "[]", None, None
        if isinstance(label, list):
            label = {"constraints": label}
        if not isinstance(label, dict) or not isinstance(label.get("constraints", []), list):
            raise BadRequest(f"{field} must be a list of constraints or an object with a "
                             "'constraints' list", field)
        constraints = label.get("constraints", [])
        _check_constraints(constraints, field)
        prompt, reference = label.get("prompt"), label.get("reference")
        for name, value in (("prompt", prompt), ("reference", reference)):
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"{field}.{name} must be a string", f"{field}.{name}")
        return prompt, json.dumps(constraints), reference, _principle(label, field)


def _principle(label: dict, field: str) -> str | None:
    """A label's ``principle`` and ``criteria``, validated as a task's are, rendered to one text."""
    if label.get("principle") is None and label.get("criteria") is None:
        return None
    from pydantic import ValidationError

    from ..data.records import WritingTask

    try:
        task = WritingTask.model_validate({"id": "label", "prompt": "", "principle": label.get("principle"),
                                           "criteria": label.get("criteria")})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = f"{field}." + ".".join(str(x) for x in error["loc"])
        raise BadRequest(f"{where}: {error['msg']}", where) from None
    return task.judge_principle()


def _check_constraints(constraints: list, field: str) -> None:
    from ..constraints import Constraint

    for i, item in enumerate(constraints):
        where = f"{field}.constraints[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object {{'id', 'kwargs'}}", where)
        try:
            Constraint.model_validate(item)
        except (ConstraintError, ValueError) as exc:
            raise BadRequest(f"{where}: {str(exc).splitlines()[0]}", where) from None


def strip_suffixes(text: str, suffixes: list[str]) -> str:
    """``text`` without any of ``suffixes`` repeated at its end (and the whitespace around them).

    >>> strip_suffixes("The end.<|im_end|>\\n<|endoftext|>", ["<|im_end|>", "<|endoftext|>"])
    'The end.'
    """
    changed = True
    while changed:
        changed = False
        text = text.rstrip()
        for suffix in suffixes:
            if suffix and text.endswith(suffix):
                text, changed = text[: -len(suffix)], True
    return text
