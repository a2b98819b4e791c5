"""`saf serve`: one hub (the fleet, one agent per node, the signal stream) and its faces.

- `saf.serve.hub`: the `Hub` and its API for faces (read its docstring first).
- `saf.serve.wire`: the frames on the hub's UNIX socket; `saf.serve.client`: a cockpit's end.
- `saf.serve.faces`: the seam a face plugs into (`async def run(hub, bind)`), and the registry.
- `saf.serve.ssh_face`, `saf.serve.authorized`: the SSH face, its keys and host key.
- `saf.serve.web_face`: the browser face (textual-serve, a hub-fed cockpit per tab).
- `saf.serve.prometheus`, `saf.serve.metrics_face`: the metrics face (a collector over the
  store, read at scrape time; `/metrics` over aiohttp).
"""
