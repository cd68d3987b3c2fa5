"""Models: audio-only and audio-visual separation/enhancement networks, their registry and self-describing checkpoints."""

from avse.models import avnet, tasnet, unet  # noqa: F401  (importing registers the models)
from avse.models.checkpoint import count_parameters, load_checkpoint, save_checkpoint
from avse.models.registry import build_model, list_models, register_model

__all__ = ["build_model", "count_parameters", "list_models", "load_checkpoint", "register_model", "save_checkpoint"]
