"""``quillrl serve-reward``: one group-aware reward server for verl, OpenRLHF, slime and TRL.

Every endpoint turns its engine's request into samples with a group key, and hands them to one
:class:`~quillrl.serving.barrier.GroupBarrier`. With ``group.judge_on_arrival: true`` (opt-in;
false by default) each comparison is queued as soon as both of its members are in, and each
member's constraints are checked as it arrives (:mod:`.arrival`); a group, once whole (or timed
out), is scored by
``GroupRewards.compute`` — the code ``train policy`` runs — in a worker thread, given what was
judged and checked, with judge calls merged across groups by
:class:`~quillrl.serving.batcher.BatchingJudge`. Each sample's
answer carries its mixed ``reward`` plus ``writing``, ``passed``, ``lambda``, ``reason`` (the
first failing constraint), ``writing_missing``, ``partial`` and ``singleton`` (docs/design.md,
"Group barrier"). ``lambda`` is the group's RLMR λ (0 where no member or every member violates);
in a group of one (``singleton: true``) it is the singleton rule's ``mix.singleton_penalty`` when
the member violates (docs/design.md, "Group identity").

Group identity (docs/design.md, "Group identity"; :mod:`.barrier`): a group is ``(group_id,
attempt)`` with ``group_size`` places; every member's prompt, constraints, reference and
principle (from its label or task) are digested, and a member that disagrees with its group is
refused with 409; a member naming its ``slot`` is found again by it (a client retry gets the
same answer); a group of one is scored at once by the singleton rule; a timed-out group is
scored among the members present, ``partial``.

Endpoints (request shapes from the engines' own clients; see docs/scale.md):

* ``POST /v1/rewards`` (native): ``{"samples": [{"prompt", "response", "constraints"?,
  "label"?, "reference"?, "slot"?}], "group_id"? (alias ``group_key``), "attempt"?,
  "group_size"?}``; without a group id the samples are one whole group. A sample's
  ``constraints`` replace its label's and keep the rest of the label (prompt, reference,
  principle, criteria): NeMo Gym sends both.
* ``POST /openrlhf`` (alias ``/get_reward``): OpenRLHF's remote RM, ``{"query", "prompts",
  "labels"}`` as ``openrlhf/utils/agent.py`` (``_fetch_rewards_via_http``, v0.11.2) posts it,
  answered ``{"rewards", "scores", "extra_logs"}`` as its ``cli/serve_rm.py`` does; the group
  id is a digest of the prompt and the label, the size is ``group.size``; a query that does not
  start with its prompt is split by :func:`~.reward_config.split_query`.
* ``POST /slime``: slime's ``remote_rm`` payload ``{"prompt", "response", "label"}``
  (``slime/rollout/rm_hub/__init__.py`` at THUDM/slime@624b824), plus ``group_id``,
  ``group_size``, ``slot`` from our adapter, answered with a JSON object (run slime with
  ``--reward-key reward``); ``POST /slime/group``: ``{"samples": [...]}``, one whole group, for
  ``--group-rm``.
* ``GET /health`` (no token needed), ``GET /metrics`` (Prometheus text).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from .arrival import ArrivalJudging, order_salt
from .barrier import Group, GroupAbandoned, GroupBarrier, GroupConflict, GroupKey, Member
from .metrics import RewardMetrics
from .reward_config import BadRequest, LabelResolver, RewardServerConfig, Sample, split_query, strip_suffixes

MAX_SAMPLES = 4096
CLOSE_LIMIT_S = 30.0  # at shutdown, how long the groups being scored may still take


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class NativeSample(_Body):
    prompt: str | None = None  # may come from the label's task instead
    response: str
    constraints: list[dict] | None = None  # replace the label's constraints, keep the rest of it
    label: Any = None  # resolved like an engine's label (prompt, reference, principle, criteria)
    reference: str | None = None
    slot: int | None = Field(None, ge=0, le=MAX_SAMPLES)


class NativeRequest(_Body):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    samples: list[NativeSample] = Field(min_length=1, max_length=MAX_SAMPLES)
    group_id: str | None = Field(None, max_length=1024, validation_alias=AliasChoices("group_id", "group_key"))
    attempt: int = Field(0, ge=0, le=2**31)
    group_size: int | None = Field(None, ge=1, le=MAX_SAMPLES)


class OpenRLHFRequest(_Body):
    query: list[str] = Field(min_length=1, max_length=MAX_SAMPLES)
    prompts: list[str] | None = None
    labels: list[Any] | None = None


class SlimeSample(_Body):
    prompt: str | list[dict]
    response: str
    label: Any = None
    group_id: str | None = Field(None, max_length=1024, validation_alias=AliasChoices("group_id", "group_key"))
    attempt: int = Field(0, ge=0, le=2**31)
    group_size: int | None = Field(None, ge=1, le=MAX_SAMPLES)
    slot: int | None = Field(None, ge=0, le=MAX_SAMPLES)


class SlimeGroupRequest(_Body):
    samples: list[SlimeSample] = Field(min_length=1, max_length=MAX_SAMPLES)


class RewardService:
    """The judge, the barrier and the metrics behind the endpoints; one per server."""

    def __init__(self, config: RewardServerConfig, group_rewards: Any = None):
        from ..scoring.build import build_group_rewards
        from .batcher import BatchingJudge

        self.config = config
        self.metrics = RewardMetrics()
        b = config.batch

        def batching(judge: Any) -> BatchingJudge:
            return BatchingJudge(judge, b.max_batch, b.max_wait_s, b.judge_retries, self.metrics.judge_batch)

        if group_rewards is None:
            group_rewards = build_group_rewards(config.reward, config.mix, config.seed, batching)
        elif not isinstance(group_rewards.judge, BatchingJudge):
            group_rewards.judge = batching(group_rewards.judge)
        self.group_rewards = group_rewards
        self.labels = LabelResolver(config.constraints)
        self._pool = ThreadPoolExecutor(b.scoring_threads, thread_name_prefix="quillrl-score")
        self.arrival = ArrivalJudging(group_rewards, self._pool) if config.group.judge_on_arrival else None
        self.barrier = GroupBarrier(self._score, config.group.timeout_s, self.metrics.group_closed,
                                    self.metrics.member, self.arrival.arrived if self.arrival else None)
        self.metrics.open_groups(lambda: len(self.barrier.open))

    # -- scoring one group ---------------------------------------------------------------------
    async def _score(self, group: Group) -> list[dict]:
        """The trainer's ``compute`` on the members present, given what was judged and checked
        as they arrived (:mod:`.arrival`); the same rewards as judging it all now. One answer
        per member; its ``lambda`` is the group's λ, or ``mix.singleton_penalty`` for a
        violator alone in its group (``singleton``), the λ of the singleton rule."""
        samples: list[Sample] = group.samples
        n, partial = len(samples), group.partial
        judged, checked = None, None
        if group.work is not None:
            judged, checked, unused = await self.arrival.collect(group)
            group.work = None  # a closed group is remembered for replays: keep its answers only
            self.metrics.comparisons_unused(unused)
        batch = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: self.group_rewards.compute(
                [s.prompt for s in samples], [s.response for s in samples],
                [s.constraints for s in samples], group_size=n, group_ids=[order_salt(group)],
                references=[s.reference for s in samples], judged=judged, checked=checked,
                principles=[s.principle for s in samples]))
        lam = batch.lambdas[0] if batch.lambdas else 0.0  # the group's λ (0: no violator, or all)
        self.metrics.group_scored(int(batch.writing_missing.sum()), batch.judge_invalid)
        return [{"reward": float(batch.rewards[i]), "writing": float(batch.writing[i]),
                 "passed": bool(batch.passed[i]), "lambda": float(lam),
                 "reason": batch.reasons[i], "writing_missing": bool(batch.writing_missing[i]),
                 "partial": partial, "singleton": n == 1, "group_size": n,
                 "group_id": group.key.id, "attempt": group.key.attempt, "slot": m.slot,
                 "prompt_truncated": m.sample.prompt_truncated}
                for i, m in enumerate(group.members)]

    # -- from requests to samples ----------------------------------------------------------------
    def sample(self, prompt: str | None, response: str, label: Any, field: str,
               constraints: list[dict] | None = None, reference: str | None = None,
               prompt_truncated: bool = False) -> Sample:
        task_prompt, spec, task_reference, principle = self.labels.resolve(label, f"{field}.label", constraints)
        reference = reference or task_reference
        if self.group_rewards.strategy == "reference" and not reference:
            raise BadRequest("strategy 'reference' needs a reference text for every sample",
                             f"{field}.reference")
        prompt = task_prompt or prompt
        if prompt is None:
            raise BadRequest("no writing prompt: send one, or a label that names a task", f"{field}.prompt")
        return Sample(prompt, strip_suffixes(response, self.config.text.strip_suffixes), spec, reference,
                      prompt_truncated, principle)

    async def join(self, group_id: str | None, size: int | None, samples: list[Sample],
                   attempt: int = 0, slots: list[int | None] | None = None) -> list[dict]:
        """The answers of ``samples`` as members of group ``(group_id, attempt)``; without a
        group id they are one whole group. A conflict with the group is a 409."""
        if group_id is None:  # a whole group in one request
            group_id, size = f"anonymous:{self.barrier.opened}", len(samples)
        elif size is not None and size > self.config.http.max_inflight:
            # its members' requests could never all be held at once: the group would only time out
            raise BadRequest(f"group_size {size} exceeds http.max_inflight "
                             f"({self.config.http.max_inflight}), the requests this server holds at "
                             "once: send a smaller group, or raise http.max_inflight", "group_size")
        slots = slots or [None] * len(samples)
        members = [Member(s, s.digest, s.response_digest, slot) for s, slot in zip(samples, slots)]
        try:
            results = await self.barrier.join(GroupKey(group_id, attempt), size or self.config.group.size,
                                              members)
        except GroupConflict as exc:
            raise BadRequest(str(exc), exc.field, 409) from None
        except GroupAbandoned as exc:
            raise BadRequest(str(exc), "group_id", 503) from None
        if any(r["partial"] for r in results):  # its group's timeout closed it: counted by name
            self.metrics.answered_partial()
        return results

    async def aclose(self, limit_s: float = CLOSE_LIMIT_S) -> None:
        """Shut down (the app's lifespan): score every open group, wait up to ``limit_s`` for
        the scorings (and the judgments they queued) to end, then :meth:`close`."""
        await self.barrier.close(limit_s)
        self.close()

    def close(self) -> None:
        """Free the scoring threads and the judge (the barrier must be idle: see :meth:`aclose`)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.group_rewards.judge.close()


def create_app(config: RewardServerConfig, service: RewardService | None = None,
               token: str | None = None) -> Any:
    """The ASGI app (FastAPI behind :class:`~quillrl.httpserve.http.Guard`)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    from ..httpserve.http import error_body, guarded
    from ..scoring.reward_funcs import prompt_text

    service = service or RewardService(config)

    @asynccontextmanager
    async def lifespan(_app: Any):
        yield
        await service.aclose()

    app = FastAPI(title="quillrl serve-reward", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service

    @app.exception_handler(BadRequest)
    async def bad_request(_request: Request, exc: BadRequest) -> Response:
        return Response(error_body(exc.status, str(exc), exc.field), exc.status, media_type="application/json")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "open_groups": len(service.barrier.open)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/v1/rewards")
    async def native(body: NativeRequest) -> dict:
        samples = [service.sample(s.prompt, s.response, s.label, f"samples[{i}]", s.constraints, s.reference)
                   for i, s in enumerate(body.samples)]
        results = await service.join(body.group_id, body.group_size, samples, body.attempt,
                                     [s.slot for s in body.samples])
        return {"rewards": [r["reward"] for r in results], "results": results}

    async def openrlhf(body: OpenRLHFRequest) -> dict:
        n = len(body.query)
        prompts, labels = body.prompts or [None] * n, body.labels or [None] * n
        if len(prompts) != n or len(labels) != n:
            raise BadRequest(f"query, prompts and labels must have one entry each; got {n}, "
                             f"{len(prompts)}, {len(labels)}", "prompts" if len(prompts) != n else "labels")
        samples = []
        for i, (query, prompt, label) in enumerate(zip(body.query, prompts, labels)):
            # OpenRLHF sends prompt + response decoded as one string; it may have cut the prompt
            response, truncated = split_query(query, prompt, f"query[{i}]") if prompt else (query, False)
            samples.append(service.sample(prompt, response, label, f"query[{i}]", prompt_truncated=truncated))
        # OpenRLHF names no group: its samples of one prompt and label are one group
        results = await asyncio.gather(*(service.join(f"openrlhf:{s.digest}", None, [s]) for s in samples))
        flat = [r[0] for r in results]
        rewards = [r["reward"] for r in flat]
        logs = {k: [float(r[k]) for r in flat] for k in ("writing", "passed", "lambda", "writing_missing",
                                                            "partial", "singleton", "prompt_truncated")}
        return {"rewards": rewards, "scores": rewards, "extra_logs": logs}

    app.post("/openrlhf")(openrlhf)
    app.post("/get_reward")(openrlhf)  # the path of OpenRLHF's own serve_rm

    @app.post("/slime")
    async def slime(body: SlimeSample) -> dict:
        prompt = prompt_text(body.prompt)  # a string, or chat messages: the last user turn
        sample = service.sample(prompt, body.response, body.label, "body")
        group_id = body.group_id or f"slime:{sample.digest}"  # slime's built-in remote_rm names none
        return (await service.join(group_id, body.group_size, [sample], body.attempt, [body.slot]))[0]

    @app.post("/slime/group")
    async def slime_group(body: SlimeGroupRequest) -> list:
        samples = [service.sample(prompt_text(s.prompt), s.response, s.label, f"samples[{i}]")
                   for i, s in enumerate(body.samples)]
        return await service.join(None, None, samples)

    return guarded(app, config.http, token, service.metrics.request)
