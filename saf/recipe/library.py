"""Where recipes are found: a path, the user's recipe folder (<config>/recipes), or the
recipes shipped with saf (the `recipes` package, read with importlib.resources)."""

from __future__ import annotations

import contextlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from saf import paths
from saf.errors import ConfigError, SafError
from saf.recipe.model import Recipe
from saf.recipe.parse import load_recipe
from saf.renamed import OLD_RECIPES, renamed


def user_folder() -> Path:
    return paths.config_dir() / "recipes"


def shipped_folder() -> Path | None:
    with contextlib.suppress(ModuleNotFoundError, TypeError):
        folder = importlib.resources.files("saf.recipes")
        if isinstance(folder, Path) or hasattr(folder, "__fspath__"):
            return Path(folder)  # type: ignore[arg-type]  # has __fspath__: checked above
    return None


class RecipeNotFound(SafError):
    exit_code = 2
    title = "No such recipe"


@dataclass(frozen=True)
class Found:
    name: str
    path: Path
    origin: str  # "user" or "shipped"


def available() -> list[Found]:
    """Every named recipe; a user's recipe hides a shipped one of the same name."""
    found: dict[str, Found] = {}
    for origin, folder in (("shipped", shipped_folder()), ("user", user_folder())):
        if folder and folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = Found(path.stem, path, origin)
    return sorted(found.values(), key=lambda f: f.name)


def find(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.suffix == ".toml" or "/" in name_or_path:
        raise ConfigError(path, "no such recipe file")
    for item in available():
        if item.name == name_or_path:
            return item.path
    if name_or_path in OLD_RECIPES:  # a recipe of that old name (a user's own) wins, above
        return find(renamed("recipe", name_or_path, OLD_RECIPES[name_or_path]))
    names = ", ".join(f.name for f in available()) or "none"
    raise RecipeNotFound(f"no recipe {name_or_path!r}: not a file, and not in {user_folder()} or "
                   f"saf's shipped recipes ({names})")


def load(name_or_path: str) -> Recipe:
    return load_recipe(find(name_or_path))
