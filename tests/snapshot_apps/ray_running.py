"""Ray screen: three nodes alive, two jobs (one succeeded, one failed)."""

from tests.snapshot_apps._ray import make_ray_app

app = make_ray_app(running=True)
