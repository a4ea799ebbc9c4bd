"""``quillrl serve``: an OpenAI-compatible HTTP server over a local model (e.g. a trained judge)."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import app
from ..models import DEFAULT_MODEL
from ._common import at_least, print_summary, user_errors


@app.command("serve")
@user_errors
def serve(
    model: str = typer.Option(DEFAULT_MODEL, "--model",
                              help="Embedded model name, model directory or PEFT adapter directory."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 serves the network)."),
    port: int = typer.Option(8000, help="Port to bind; 0 picks a free one (printed on start)."),
    served_model_name: Optional[str] = typer.Option(
        None, "--served-model-name", help="Name clients must send as `model` (default: the --model value)."),
    batch_size: int = typer.Option(8, help="Prompts per forward batch within one request."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1... (default: cuda if available, else cpu)."),
    dtype: Optional[str] = typer.Option(None, help="float32, bfloat16 or float16 "
                                        "(default: bfloat16 on a GPU that has it, else float32)."),
    max_tokens: int = typer.Option(512, help="Chat completion length when a request sets none."),
    max_tokens_cap: int = typer.Option(4096, "--max-tokens-cap", help="Largest max_tokens a request may ask for."),
    max_prompts: int = typer.Option(256, help="Most completions (prompts × n) in one request."),
    max_batch: int = typer.Option(32, help="Most prompts, across concurrent requests, in one generate call."),
    max_request_tokens: int = typer.Option(65536, "--max-request-tokens", help="Most tokens one request "
                                           "may ask for (completions × max_tokens); larger ones get 400."),
    token_env: Optional[str] = typer.Option(None, "--token-env", help="Environment variable holding the "
                                            "bearer token clients must send (default: no auth)."),
    max_body_bytes: int = typer.Option(8 * 1024 * 1024, help="Larger request bodies get 413."),
    request_timeout: float = typer.Option(600.0, help="Seconds before an unanswered request gets 504."),
    max_inflight: int = typer.Option(256, help="Requests admitted at once; the next gets 503 + Retry-After."),
) -> None:
    """Serve GET /v1/models, POST /v1/chat/completions and /v1/completions until interrupted.

    Prints {"url", "model"} as JSON once the port is bound, then serves.
    """
    from ..backends.local import LocalBackend
    from ..backends.server import OpenAIServer
    from ..config import validate_config
    from ..httpserve.http import HTTPSection, resolve_token, warn_if_exposed

    for option, value in (("--batch-size", batch_size), ("--max-tokens", max_tokens),
                          ("--max-tokens-cap", max_tokens_cap), ("--max-prompts", max_prompts),
                          ("--max-batch", max_batch), ("--max-request-tokens", max_request_tokens)):
        at_least(option, value, 1)
    limits = validate_config({"host": host, "port": port, "token_env": token_env, "max_body_bytes": max_body_bytes,
                              "request_timeout_s": request_timeout, "max_inflight": max_inflight},
                             HTTPSection, "serve options")
    token = resolve_token(token_env)
    warning = warn_if_exposed(host, token)
    if warning:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    backend = LocalBackend(model, batch_size=batch_size, device=device, dtype=dtype)
    server = OpenAIServer(backend, host, port, model_name=served_model_name, default_max_tokens=max_tokens,
                          max_tokens=max_tokens_cap, max_prompts=max_prompts, max_batch=max_batch,
                          limits=limits, token=token, max_request_tokens=max_request_tokens)
    try:
        server.serve_forever(lambda _port: print_summary({"url": server.url, "model": server.model_name}))
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
