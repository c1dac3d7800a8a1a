"""``tdmr1 serve-reward``: serve a world's reward (or any registered one) over HTTP."""

from __future__ import annotations

import typer

from tdmr1.errors import ConfigError


def serve_reward_command(
    world: str = typer.Option("shapes", "--world", help="World whose images are scored (fixes the image size)."),
    reward: list[str] = typer.Option(
        [], "--reward", help="Reward(s) to serve: name or module:attr (repeatable; default: the world's own)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (non-loopback needs a token)."),
    port: int = typer.Option(8700, "--port", min=0, max=65535, help="Port (0: any free port)."),
    token: str | None = typer.Option(
        None, "--token", envvar="TDMR1_REWARD_TOKEN", help="Access token (random when --host is not loopback)."
    ),
    max_images: int = typer.Option(256, "--max-images", min=1, help="Most images per request."),
    max_body_mb: float = typer.Option(32.0, "--max-body-mb", min=0.01, help="Largest request body in MiB."),
    any_size: bool = typer.Option(
        False, "--any-size", help="Accept images of any size (real-image rewards such as ocr-det, geneval-det)."
    ),
    max_megapixels: float = typer.Option(
        32.0, "--max-megapixels", min=0.001, help="Most pixels per request (all images)."
    ),
    reward_timeout_s: float = typer.Option(300.0, "--reward-timeout-s", min=0.01, help="Answer 504 after this long."),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="Host name clients use for this server (repeatable; IP addresses always work)."
    ),
) -> None:
    """Serve a reward over HTTP: POST /v1/score (JSON, base64 PNG images), GET /health."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError('serve-reward needs the web extra: pip install "tdmr1[web]"') from None
    from tdmr1.rewards.registry import named_reward
    from tdmr1.rewards.server import Limits, create_reward_app, is_loopback, resolve_token
    from tdmr1.rewards.serving import display_url, run_server
    from tdmr1.worlds import get_world

    w = get_world(world)
    rewards = {name: named_reward(name) for name in reward} if reward else {}
    if not rewards:
        own = w.make_reward()
        rewards[getattr(own, "name", world)] = own
    token = resolve_token(host, token)
    limits = Limits(
        max_images=max_images,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_pixels=int(max_megapixels * 1024 * 1024),
        reward_timeout_s=reward_timeout_s,
    )
    image_size = None if any_size else w.image_size
    app = create_reward_app(
        rewards, image_size=image_size, limits=limits, token=token, allowed_hosts=(*allow_host, host)
    )
    where = display_url(host, port)
    size = "images of any size" if image_size is None else f"world {world} ({image_size[0]}x{image_size[1]})"
    print(f"serving reward(s) {', '.join(rewards)} for {size} at {where}")
    if token:
        note = "" if is_loopback(host) else " (generated: this server listens beyond this machine)"
        print(f"access token{note}: {token}  (clients: export TDMR1_REWARD_TOKEN=...)")
    print(f"train with: tdmr1 train --world {world} --set reward={where}", flush=True)
    del uvicorn  # imported above only to check the extra is installed
    run_server(app, host, port)
