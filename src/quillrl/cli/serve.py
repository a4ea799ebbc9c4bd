"""``quillrl serve``: an OpenAI-compatible HTTP server over a local model (e.g. a trained judge)."""

from __future__ import annotations

from typing import Optional

import typer

from . import app
from ..models import DEFAULT_MODEL
from ._common import print_summary, user_errors


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
) -> None:
    """Serve GET /v1/models, POST /v1/chat/completions and /v1/completions until interrupted.

    Prints {"url", "model"} as JSON once the port is bound, then serves.
    """
    from ..backends.local import LocalBackend
    from ..backends.server import OpenAIServer

    backend = LocalBackend(model, batch_size=batch_size, device=device, dtype=dtype)
    try:
        server = OpenAIServer(backend, host, port, model_name=served_model_name,
                              default_max_tokens=max_tokens)
    except OSError as exc:  # port in use, address not available
        from ..errors import ConfigError

        raise ConfigError(f"cannot bind {host}:{port}: {exc}") from None
    print_summary({"url": server.url, "model": server.model_name})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
