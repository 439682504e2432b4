"""Training: config (YAML, strict), data stream, loop, checkpoints, run logs.

``facesr.train.loop.train(cfg, run_dir)`` runs one stage; ``facesr train`` is its command.
``steps.py`` holds the losses of one iteration (DDP-exact relativistic GAN terms).
"""

from facesr.train.config import (
    ConfigError,
    DataConfig,
    DiscConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    config_from_yaml,
    config_to_yaml,
    load_config,
)
from facesr.train.loop import World, train

__all__ = [
    "ConfigError",
    "DataConfig",
    "DiscConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "World",
    "config_from_yaml",
    "config_to_yaml",
    "load_config",
    "train",
]
