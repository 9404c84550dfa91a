"""mmkd_core: data, models, losses and training for the mmkd multimodal knowledge-distillation notebooks."""
__version__ = "0.1.0"
