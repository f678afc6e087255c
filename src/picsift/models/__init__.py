"""Models layer: packaged offline defaults (ONNX in picsift) and hub models pulled on request."""

from picsift.models.registry import MODELS, ModelSpec, get_model

__all__ = ["MODELS", "ModelSpec", "get_model"]
