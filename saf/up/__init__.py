"""The declared cluster brought up: saf.toml's `[up]`, `[ray]`, `[[services]]` and `[[models]]`
read as one checked model (`declared`), the order its parts come up in (`order`), and what
`saf up`, `saf down` and `saf status` make of it. It composes recipes, so it sits above the
runner; what it drives on the nodes (services, placement) is saf.cluster's, below."""
