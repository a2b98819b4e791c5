"""Serving: four endpoints (vLLM, MLX, llama.cpp loading, one exited), two checked."""

from tests.snapshot_apps._serving import make_serving_app

app = make_serving_app()
