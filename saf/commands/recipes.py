"""`saf recipes`: the recipes saf knows (shipped and the user's), with descriptions."""

from __future__ import annotations

import click

from saf.errors import ConfigError


@click.group("recipes", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per recipe.")
@click.pass_context
def recipes(ctx: click.Context, as_json: bool) -> None:
    """List recipes: the ones shipped with saf and those in your recipe folder."""
    if ctx.invoked_subcommand is not None:
        return

    from rich.table import Table
    from rich.text import Text

    from saf.recipe import library
    from saf.recipe.parse import load_recipe
    from saf.render.console import console, print_json_line

    out = console()
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "FROM", "STEPS", "DESCRIPTION"):
        table.add_column(column)
    for found in library.available():
        try:
            recipe = load_recipe(found.path)
            steps, description = str(len(recipe.steps)), recipe.description
        except ConfigError as exc:
            steps, description = "—", f"invalid: {exc}"
        if as_json:
            print_json_line({"name": found.name, "from": found.origin, "path": str(found.path),
                             "steps": steps, "description": description})
        else:
            table.add_row(found.name, found.origin, steps,
                          Text(description, style="red" if steps == "—" else ""))
    if not as_json:
        out.print(table)
        out.print(Text(f"your recipes go in {library.user_folder()}", style="dim"))


@recipes.command("show")
@click.argument("recipe")
def show(recipe: str) -> None:
    """Show RECIPE's variables and steps."""
    from rich.text import Text

    from saf.recipe import library
    from saf.render.console import console

    loaded = library.load(recipe)
    out = console()
    out.print(Text.assemble((loaded.name, "bold"), ("  " + str(loaded.path), "dim")))
    # A recipe's own words are text, never Rich markup: "ray[default]" must print as written.
    if loaded.description:
        out.print(Text(loaded.description))
    if loaded.vars:
        out.print(Text("\nvariables", style="bold"))
        for var in loaded.vars.values():
            value = "(required)" if var.required else repr(var.default)
            out.print(Text(f"  {var.name} = {value}" + (f"  # {var.description}"
                                                        if var.description else "")))
    out.print(Text("\nsteps", style="bold"))
    for step in loaded.steps:
        extras = [f"on {step.on}"] + (["serial"] if step.serial else []) + \
            (["become"] if step.become else [])
        out.print(Text.assemble((f"  {step.index + 1}. {step.name}", "bold"),
                                (f"  {step.kind.describe()}  ({', '.join(extras)})", "dim")))
