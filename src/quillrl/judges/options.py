"""How a verb builds a judge from a spec: the options ``judge``, ``eval alignment``,
``eval winrate`` and ``eval policy`` share, typed and checked once.

:class:`JudgeOptions` is both the CLI's options (each field's ``help`` is its flag's help text)
and what a Python caller passes: ``JudgeOptions(mode="verdict").build("genrm:local:...")``.
GenRM-only settings go only to GenRM judges (the others have one way of judging and would
reject them), engine options only to ``genrm:vllm`` judges, and backend settings left unset are
not passed, so each backend keeps its own defaults. An option that none of the given judges
would use is refused, never ignored. Errors name an option by its flag (``--device``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from ..backends.vllm_options import parse_cli_pairs, with_vllm_options
from ..config import at_least, check_choice
from ..errors import ConfigError
from .base import Judge
from .spec import JudgeSpec
from .template import MODES, TEMPLATE_VERSION

DTYPES = ("float32", "bfloat16", "float16")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class JudgeOptions:
    """The settings a judge is built with, beyond its spec (docs/design.md, "GenRM judgment")."""

    mode: str = field(default="reasoning", metadata=_help(
        "reasoning (analysis, then verdict) or verdict (verdict-only: one forward pass)."))
    swap: bool = field(default=False, metadata=_help(
        "Judge both orders and debias (GenRM)."))
    max_new_tokens: int | None = field(default=None, metadata=_help(
        "GenRM reasoning length limit (default: the judge's, 512)."))
    force_verdict: bool = field(default=False, metadata=_help(
        "Reasoning mode: close an analysis that never reached its verdict (token limit, or prose "
        "after </analysis>) and read p(A) there; such judgments are valid, marked forced and "
        "counted apart."))
    device: str | None = field(default=None, metadata=_help(
        "Local GenRM: cpu, cuda, cuda:1... (default: cuda if available)."))
    dtype: str | None = field(default=None, metadata=_help(
        "Local GenRM: float32, bfloat16 or float16 (default: bfloat16 on a GPU that has it, "
        "else float32)."))
    backend_batch_size: int | None = field(default=None, metadata=_help(
        "Local GenRM: prompts per forward batch (default: the backend's, 8)."))
    timeout: float | None = field(default=None, metadata=_help(
        "OpenAI-compatible GenRM: seconds to wait for one request (default 40); with "
        "--attempts 3, a server that never answers fails in about 2 minutes."))
    attempts: int | None = field(default=None, metadata=_help(
        "OpenAI-compatible GenRM: tries per request, the first included (default 3)."))
    vllm_options: Mapping[str, Any] = field(default_factory=dict, metadata=_help(
        "vLLM engine options (quillrl.backends.vllm_options), for genrm:vllm judges."))

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field ``name`` (the CLI's option help)."""
        return next(f.metadata["help"] for f in fields(cls) if f.name == name)

    @classmethod
    def from_cli(cls, *, vllm_option: Sequence[str] | None = None, **options: Any) -> JudgeOptions:
        """The options from the CLI's values: ``vllm_option`` is ``--vllm-option``'s KEY=VALUE
        list, parsed and checked here."""
        return cls(**options, vllm_options=parse_cli_pairs(vllm_option or ()))

    def __post_init__(self) -> None:
        """Refuse a value no judge accepts."""
        check_choice("--mode", self.mode, MODES)
        check_choice("--dtype", self.dtype, DTYPES)
        if self.device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"--device must be cpu, cuda, cuda:N or mps; got {self.device!r}")
        at_least("--backend-batch-size", self.backend_batch_size, 1)
        at_least("--max-new-tokens", self.max_new_tokens, 1)
        at_least("--attempts", self.attempts, 1, 100)
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.force_verdict and self.mode != "reasoning":
            raise ConfigError("--force-verdict closes an unfinished analysis, so it needs --mode "
                              "reasoning (verdict-only mode writes no analysis), got --mode "
                              f"{self.mode}")

    def check_used(self, specs: Sequence[str]) -> None:
        """Refuse an option that none of the judges ``specs`` would use."""
        parsed = [JudgeSpec.parse(s) for s in specs]
        genrm = [s.backend_kind for s in parsed if s.kind == "genrm"]
        # vLLM places and batches the model itself: --device and --backend-batch-size are the
        # local backend's (vllm.LLM would refuse them as unknown arguments)
        for option, value, kinds in (
                ("--swap", self.swap or None, _GENRM),
                ("--max-new-tokens", self.max_new_tokens, _GENRM),
                ("--force-verdict", self.force_verdict or None, _GENRM),
                ("--device", self.device, ("local",)),
                ("--dtype", self.dtype, ("local", "vllm")),
                ("--backend-batch-size", self.backend_batch_size, ("local",)),
                ("--timeout", self.timeout, ("openai",)),
                ("--attempts", self.attempts, ("openai",)),
                ("--vllm-option", self.vllm_options or None, ("vllm",))):
            if value is not None and not any(kind in kinds for kind in genrm):
                raise ConfigError(f"{option} applies only to {_JUDGES_OF[kinds]}, and none is "
                                  f"given ({', '.join(specs) or 'no --judge'})")

    def named(self, spec: str) -> str:
        """``spec`` with the engine options written into it if it is a ``genrm:vllm`` judge's,
        so the spec that names the judge (in every record and on resume) says how its engine
        ran; any other spec unchanged."""
        return with_vllm_options(spec, self.vllm_options)

    def build(self, spec: str) -> Any:
        """The judge ``spec`` names, built with these options (a context manager)."""
        from . import make_judge

        if not spec.startswith("genrm:"):
            return make_judge(spec)
        options: dict[str, Any] = {}
        if self.max_new_tokens is not None:
            options["max_new_tokens"] = self.max_new_tokens
        if self.force_verdict:
            options["force_verdict"] = True
        backend = {k: v for k, v in (("device", self.device), ("dtype", self.dtype),
                                     ("batch_size", self.backend_batch_size),
                                     ("timeout", self.timeout), ("attempts", self.attempts))
                   if v is not None}
        if spec.startswith("genrm:vllm"):
            backend.update(self.vllm_options)
        return make_judge(spec, mode=self.mode, swap=self.swap, backend_options=backend, **options)

    def judge_settings(self, spec: str) -> dict[str, Any]:
        """:func:`judge_settings` of the judge :meth:`build` makes for ``spec``, known before it
        is built (a refused resume loads no model): mode, swap, template and forcing apply
        only to GenRM judges."""
        genrm = spec.startswith("genrm:")
        return {"judge": spec, "mode": self.mode if genrm else None,
                "swap": bool(self.swap) and genrm,
                "template": TEMPLATE_VERSION if genrm else None,
                "force_verdict": bool(self.force_verdict) and genrm}


def judge_settings(judge: Judge, spec: str | None = None) -> dict[str, Any]:
    """What identifies how a judge judged (for records and for resume checks): the spec it was
    built from (else its name), and mode and swap where the judge has them (baselines have one
    way of judging). The spec is preferred because a GenRM's name only names its backend kind
    (``genrm:local``), not the model."""
    from .genrm import GenRMJudge

    # a GenRM's judgments depend on its prompt: files from another template are not resumed
    genrm = isinstance(judge, GenRMJudge)
    return {"judge": spec or judge.name, "mode": getattr(judge, "mode", None),
            "swap": bool(getattr(judge, "swap", False)),
            "template": TEMPLATE_VERSION if genrm else None,
            "force_verdict": bool(getattr(judge, "force_verdict", False))}


_GENRM = ("local", "vllm", "openai")
_JUDGES_OF = {
    _GENRM: "GenRM judges (genrm:...)",
    ("local",): "local GenRM judges (genrm:local:...)",
    ("local", "vllm"): "in-process GenRM judges (genrm:local:..., genrm:vllm:...)",
    ("openai",): "OpenAI-compatible GenRM judges (genrm:openai:...)",
    ("vllm",): "vLLM GenRM judges (genrm:vllm:...)",
}
