"""NeMo Gym: a resources server whose ``/verify`` scores each rollout with ``quillrl serve-reward``.

NeMo Gym (0.7.0) verifies one rollout per ``POST /verify``: its agent posts the dataset row it ran
(every column, plus NeMo RL's group coordinates ``_ng_group_id``, ``_ng_group_attempt``,
``_ng_rollout_index``) with the policy's ``response`` added (``responses_api_agents/simple_agent/
app.py``, ``verify_payload = body.model_dump() | {"response": ...}``). A pairwise GenRM and the RLMR
mix need the whole group, so this server forwards the one sample to ``serve-reward``'s
``POST /v1/rewards`` with

* the group: ``group_key`` = ``nemo_gym:<_ng_group_id>`` (``group_key`` is the alias of the
  server's ``group_id``), ``attempt`` = ``_ng_group_attempt``, ``group_size`` = this server's
  ``group_size`` (NeMo RL's generations per prompt), the member's ``slot`` = ``_ng_rollout_index``;
* the sample: ``response`` = the response's output text (reasoning items left out), ``prompt`` =
  the row's ``prompt`` or else the last user message of ``responses_create_params.input``,
  ``constraints`` / ``label`` / ``reference`` from the row's columns of those names.

``serve-reward`` holds the request until the group is whole, scores it as ``train policy`` does, and
the answer becomes NeMo Gym's verify response: ``reward`` = the mixed reward, plus ``writing``,
``passed``, ``constraint_lambda``, ``reason``, ``writing_missing``, ``partial``. A sample whose
reward is not a valid measurement gets ``mask_sample: true`` with NeMo Gym's ``failure_kind`` /
``failure_reason`` (``nemo_gym/base_resources_server.py``, ``BaseVerifyResponse``):

* the group timed out and was scored among the members present (``partial``): the reward is
  returned but masked, ``failure_kind: cohort_incomplete``;
* a conflicting member (HTTP 409: another response already holds this slot, or the prompt differs
  from its group's): reward 0, masked, ``quillrl:group_conflict``;
* the server timed out, was unreachable or failed (5xx, 408, 429): reward 0, masked,
  ``transport_timeout`` / ``transport_unreachable`` / ``verifier_error``.

A request the server refuses as malformed (400, 401, 403, 413, 422: a bad row, a bad token) is an
error, not a masked sample: the rollout fails loudly, as a bug in the data or config should.

Run it with NeMo Gym's launcher (docs/scale.md, "NeMo Gym"; ``configs/nemo_gym_quillrl.yaml``). The
group state lives in ``serve-reward``, so this server keeps none and may run several workers.
This module imports NeMo Gym (Python >= 3.13.14) at import time; ``quillrl`` itself does not.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

try:
    from fastapi import HTTPException
    from nemo_gym.base_resources_server import (
        BaseResourcesServerConfig,
        BaseVerifyRequest,
        BaseVerifyResponse,
        ReverifyMode,
        SimpleResourcesServer,
    )
    from nemo_gym.global_config import ROLLOUT_INDEX_KEY_NAME, TASK_INDEX_KEY_NAME
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("quillrl.integrations.nemo_gym needs NeMo Gym: pip install nemo-gym "
                      "(Python >= 3.13.14); the rest of quillrl does not") from exc
from pydantic import ConfigDict, Field, PrivateAttr

from .client import RewardClient, RewardServerError

# NeMo RL's group coordinates (resources_servers/genrm_compare/app.py names the first two; the
# rollout and task indices are nemo_gym.global_config's).
GROUP_ID_KEY = "_ng_group_id"
GROUP_ATTEMPT_KEY = "_ng_group_attempt"

# Statuses that mean "this sample's reward could not be measured" (mask it) rather than "the request
# is wrong" (raise): a conflict, a timeout, overload, a server failure.
_MASKED_STATUSES = {408, 409, 429, 499}


class QuillRLResourcesServerConfig(BaseResourcesServerConfig):
    """The ``resources_servers.quillrl`` block of a NeMo Gym config (``configs/nemo_gym_quillrl.yaml``)."""

    # A group-relative reward cannot be recomputed from one rollout alone.
    REVERIFY_MODE: ClassVar[ReverifyMode] = ReverifyMode.UNSUPPORTED

    name: str = "quillrl"
    reward_server_url: str = Field(description="base URL of `quillrl serve-reward`, e.g. http://127.0.0.1:8100")
    group_size: int = Field(ge=1, description="rollouts per prompt (NeMo RL's num_generations_per_prompt); "
                            "the group is scored once this many slots have arrived")
    token_env: str | None = Field(None, description="environment variable holding serve-reward's bearer token")
    allow_insecure: bool = Field(False, description="allow sending the token over plain http beyond loopback")
    request_timeout_s: float = Field(900.0, gt=0, allow_inf_nan=False,
                                     description="how long one /verify waits for its group's answer; keep it "
                                     "above serve-reward's group.timeout_s plus the time to judge a group")


class QuillRLVerifyRequest(BaseVerifyRequest):
    """A rollout to score: NeMo Gym's verify request, the task's columns, the group coordinates."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    group_id: str | None = Field(None, alias=GROUP_ID_KEY)
    group_attempt: int = Field(0, alias=GROUP_ATTEMPT_KEY, ge=0)
    rollout_index: int | None = Field(None, alias=ROLLOUT_INDEX_KEY_NAME, ge=0)
    task_index: int | None = Field(None, alias=TASK_INDEX_KEY_NAME)
    prompt: str | None = None  # else the last user message of responses_create_params.input
    constraints: list[dict] | None = None  # [{"id", "kwargs"}]
    label: Any = None  # a task id or constraints, resolved by serve-reward's constraints.source
    reference: str | None = None


class QuillRLVerifyResponse(BaseVerifyResponse):
    """NeMo Gym's verify response with quillrl's per-sample fields and the group coordinates."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    group_id: str | None = Field(None, alias=GROUP_ID_KEY)
    group_attempt: int = Field(0, alias=GROUP_ATTEMPT_KEY, ge=0)
    rollout_index: int | None = Field(None, alias=ROLLOUT_INDEX_KEY_NAME)
    writing: float | None = None
    passed: bool | None = None
    constraint_lambda: float | None = None  # RLMR's λ for the group (serve-reward's "lambda")
    reason: str | None = None  # the first failing constraint's reason
    writing_missing: bool = False
    partial: bool = False
    group_size: int | None = None  # members the group was scored with


class QuillRLResourcesServer(SimpleResourcesServer):
    """``/verify`` = one sample to ``serve-reward``'s group barrier; everything else NeMo Gym's defaults."""

    config: QuillRLResourcesServerConfig
    _client: RewardClient | None = PrivateAttr(default=None)

    @property
    def client(self) -> RewardClient:
        if self._client is None:
            c = self.config
            self._client = RewardClient(c.reward_server_url, token_env=c.token_env,
                                        timeout=c.request_timeout_s, allow_insecure=c.allow_insecure)
        return self._client

    async def verify(self, body: QuillRLVerifyRequest) -> QuillRLVerifyResponse:
        n = self.config.group_size
        if body.rollout_index is not None and body.rollout_index >= n:
            raise HTTPException(422, f"{ROLLOUT_INDEX_KEY_NAME}={body.rollout_index} is outside the group's "
                                f"slots 0..{n - 1} (group_size {n} in the quillrl resources server config)")
        prompt = body.prompt if body.prompt is not None else last_user_text(body.responses_create_params.input)
        sample = {"prompt": prompt, "response": body.response.output_text, "constraints": body.constraints,
                  "label": body.label, "reference": body.reference, "slot": body.rollout_index}
        request = {"group_key": self.group_key(body, prompt), "attempt": body.group_attempt,
                   "group_size": n, "samples": [sample]}
        try:
            result = (await self.client.apost("/v1/rewards", request))["results"][0]
        except RewardServerError as exc:
            return self.failed(body, exc)
        fields = {"reward": float(result["reward"]), "writing": result["writing"], "passed": result["passed"],
                  "constraint_lambda": result["lambda"], "reason": result.get("reason"),
                  "writing_missing": result["writing_missing"], "partial": result["partial"],
                  "group_size": result.get("group_size")}
        if result["partial"]:
            fields |= _mask(body, "cohort_incomplete", f"the group timed out in serve-reward and was scored "
                            f"among the {result.get('group_size')} of {n} rollouts present")
        return QuillRLVerifyResponse.model_validate(body.model_dump() | fields)

    @staticmethod
    def group_key(body: QuillRLVerifyRequest, prompt: str | None) -> str:
        """NeMo RL's group id; without one, the task index and a digest of the prompt and label
        (the rollouts of one prompt share both), as docs/design.md's group identity allows."""
        if body.group_id is not None:
            return f"nemo_gym:{body.group_id}"
        digest = hashlib.sha256(json.dumps([prompt, body.constraints, body.label, body.reference],
                                           sort_keys=True, default=str).encode()).hexdigest()[:32]
        return f"nemo_gym:task:{body.task_index}:{digest}"

    @staticmethod
    def failed(body: QuillRLVerifyRequest, exc: RewardServerError) -> QuillRLVerifyResponse:
        """A sample whose reward could not be measured: reward 0, masked, the reason kept."""
        status = exc.status
        if status is not None and status < 500 and status not in _MASKED_STATUSES:
            raise HTTPException(502, f"serve-reward refused the request (not masked: fix the data or "
                                f"config): {exc}") from exc
        if status == 409:
            kind = "quillrl:group_conflict"
        elif status is None:
            kind = "transport_timeout" if "Timeout" in str(exc) else "transport_unreachable"
        else:
            kind = "verifier_error"
        fields = {"reward": 0.0} | _mask(body, kind, str(exc)[:2000])
        return QuillRLVerifyResponse.model_validate(body.model_dump() | fields)


def _mask(body: QuillRLVerifyRequest, kind: str, reason: str) -> dict:
    # instance_config.mask_sample as well: older NeMo RL consumers read it there (nemo_gym/judge.py,
    # judge_failsafe, sets both).
    instance_config = (body.model_extra or {}).get("instance_config")
    return {"mask_sample": True, "failure_kind": kind, "failure_reason": reason,
            "instance_config": {**(instance_config if isinstance(instance_config, dict) else {}),
                                "mask_sample": True}}


def last_user_text(messages: Any) -> str | None:
    """The text of the last user message of a Responses API ``input`` (a string is one user message).

    >>> last_user_text([{"role": "user", "content": "Write a haiku."}])
    'Write a haiku.'
    """
    if isinstance(messages, str):
        return messages
    text = None
    for item in messages or []:
        item = item.model_dump(mode="json") if hasattr(item, "model_dump") else item
        if not isinstance(item, dict) or item.get("type", "message") != "message" or item.get("role") != "user":
            continue
        content = item.get("content") or ""
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content
                              if isinstance(part, dict) and part.get("type") == "input_text")
        text = str(content)
    return text


if __name__ == "__main__":  # NeMo Gym's launcher runs a server's entrypoint as a script
    QuillRLResourcesServer.run_webserver()
