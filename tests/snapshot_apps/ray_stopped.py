"""Ray screen: Ray is not running on the head; u offers ray-up."""

from tests.snapshot_apps._ray import make_ray_app

app = make_ray_app(running=False)
