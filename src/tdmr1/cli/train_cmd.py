"""`tdmr1 train`: TDM-R1 on an embedded student or, with a backbone folder, on a scale-path backbone."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tdmr1.cli.messages import SET_HELP
from tdmr1.config import load_config
from tdmr1.models.checkpoints import resolve_checkpoint

console = Console()


def train_command(
    world: str = typer.Option("shapes", help="embedded world (prompts, reward, validation)"),
    init: Path | None = typer.Option(None, help="few-step student to reinforce [default: checkpoints/WORLD/tdm4]"),
    reward: str | None = typer.Option(None, help="reward name (default: the world's own)"),
    config: Path | None = typer.Option(None, help="YAML config (defaults: `tdmr1 config show train`)"),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    out: Path = typer.Option(Path("runs/r1"), help="run folder"),
    resume: bool = typer.Option(True, help="continue from the run folder's state if there is one"),
    iterations: int | None = typer.Option(None, min=1, help="RL iterations (default: the config's)"),
    backbone: str | None = typer.Option(
        None, help="scale path: sd3 or zimage (with --model; default: detected from the folder)"
    ),
    model: Path | None = typer.Option(None, help="scale path: local diffusers pipeline folder (nothing is downloaded)"),
    init_lora: Path | None = typer.Option(
        None, help="scale path: generator adapter to start from (the authors' order-only .ckpt or a named .safetensors)"
    ),
) -> None:
    """TDM-R1: reinforce the few-step generator with a black-box reward through a learned surrogate."""
    from tdmr1.r1.config import RLConfig
    from tdmr1.r1.trainer import TDMR1Trainer
    from tdmr1.worlds import get_world

    values: dict = {"world": world}
    if is_scale_run(config, set_, backbone, model, init_lora):
        from tdmr1.r1.scale_config import ScaleRLConfig

        cls: type[RLConfig] = ScaleRLConfig
        if init is not None:
            from tdmr1.errors import ConfigError

            raise ConfigError("--init is an embedded student; on a scale backbone start from --init-lora FILE")
        if backbone is not None:
            values["backbone.kind"] = backbone
        if model is not None:
            values["backbone.path"] = str(model)
        if init_lora is not None:
            values["init_lora"] = str(init_lora)
    else:
        cls = RLConfig
        # typed values, not override text: a path is never re-parsed as YAML; resolved here, so any cwd works
        values["init"] = str(resolve_checkpoint(init or f"checkpoints/{world}/tdm4"))
    if reward:
        values["reward"] = reward
    if iterations is not None:
        values["iterations"] = iterations
    # without a config file, the world's own reward settings (e.g. the authors' OCR column) apply
    world_defaults = list(get_world(world).rl_defaults) if config is None else []
    cfg = load_config(cls, config, [*world_defaults, *set_], values=values)
    if cls is not RLConfig and cfg.backbone.path is None:
        from tdmr1.errors import ConfigError

        raise ConfigError("scale run without a backbone folder: pass --model PATH (or --set backbone.path=PATH)")
    from tdmr1.config import to_dict
    from tdmr1.training.run_folder import check_run_folder

    check_run_folder(out, to_dict(cfg))  # before the trainer opens anything there (a reward's database)
    console.print(f"model saved to {TDMR1Trainer(cfg, out).run(resume=resume)}")


def is_scale_run(
    config: Path | None, set_: list[str], backbone: str | None, model: Path | None, init_lora: Path | None
) -> bool:
    """A scale-path run: --backbone/--model/--init-lora, a `backbone`/`init_lora` override, or a config file
    with a `backbone` section (configs/scale/*.yaml)."""
    if backbone is not None or model is not None or init_lora is not None:
        return True
    if any(item.split("=", 1)[0].strip().startswith(("backbone.", "init_lora")) for item in set_):
        return True
    if config is not None:
        from tdmr1.config import read_yaml

        data = read_yaml(config)
        return isinstance(data, dict) and ("backbone" in data or "init_lora" in data)
    return False
