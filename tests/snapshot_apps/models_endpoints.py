"""Models: four endpoints (vLLM, MLX, llama.cpp loading, one exited), two checked."""

from tests.snapshot_apps._models import make_models_app

app = make_models_app()
