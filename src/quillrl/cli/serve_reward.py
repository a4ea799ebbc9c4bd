"""``quillrl serve-reward``: the group-aware reward server for verl, OpenRLHF, slime and TRL."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import app
from ._common import print_summary, user_errors


@app.command("serve-reward")
@user_errors
def serve_reward(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (see configs/serve_reward.yaml)"),
    host: Optional[str] = typer.Option(None, help="override http.host (default 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, help="override http.port; 0 picks a free one"),
    token_env: Optional[str] = typer.Option(None, "--token-env", help="override http.token_env: the "
                                            "environment variable holding the bearer token"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override any key, e.g. --set group.size=8"),
) -> None:
    """Serve rewards for whole GRPO groups to engines that ask one sample at a time.

    Prints {"url", ...} as JSON once the port is bound; on Ctrl-C prints a summary of the groups
    scored (the last line).
    """
    from ..config import load_config
    from ..httpserve.http import resolve_token, run_server, warn_if_exposed
    from ..serving.reward_app import RewardService, create_app
    from ..serving.reward_config import RewardServerConfig

    overrides = list(set_ or [])
    for key, value in (("http.host", host), ("http.port", port), ("http.token_env", token_env)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(config, RewardServerConfig, overrides, require=config is not None)
    token = resolve_token(cfg.http.token_env)
    warning = warn_if_exposed(cfg.http.host, token)
    if warning:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    service = RewardService(cfg)
    # Checks load their data lazily; loaded now, before the first burst of requests arrives,
    # so the first requests are not slower than the rest (they are correct either way:
    # constraints.lazy loads under a lock).
    from ..constraints.lazy import warm

    warm()
    asgi = create_app(cfg, service, token)

    def bound(port_: int) -> None:
        print_summary({"url": f"http://{cfg.http.host}:{port_}", "judge": cfg.reward.judge,
                       "strategy": cfg.reward.strategy, "group_size": cfg.group.size,
                       "auth": token is not None,
                       "endpoints": ["/v1/rewards", "/openrlhf", "/slime", "/slime/group",
                                     "/health", "/metrics"]})

    try:
        run_server(asgi, cfg.http.host, cfg.http.port, bound)
    except KeyboardInterrupt:
        pass
    print_summary(service.metrics.summary())
