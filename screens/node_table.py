"""The dashboard's table of nodes: a `ScrollView` on Textual's line API, one cached strip per
row, so a sample of one node re-renders that row only and 64 (or 256) nodes at 1 Hz cost
little. Scrolling and its scrollbar come from `ScrollView`; what a row says (its columns and
cells) from node_rows.py. It tells its screen a node was opened by a message,
`NodeTable.Opened`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from rich.segment import Segment
from rich.style import Style
from saf.screens.contrast import blurred_cursor_style, cursor_style
from saf.screens.node_rows import NodeTableColumn, clip, fit_columns, row_parts
from saf.screens.widgets import palette
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

if TYPE_CHECKING:
    from saf.screens.app import SafApp


class NodeTable(ScrollView, can_focus=True, inherit_bindings=False):
    """The dashboard's table of nodes. Its screen calls `set_rows` when the list or the
    filter changes and `update_nodes` with the nodes that changed."""

    BINDING_GROUP_TITLE = "Nodes"
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", id="dashboard.up", show=False,
                tooltip="Select the node above"),
        Binding("down,j", "cursor(1)", "Down", id="dashboard.down", show=False,
                tooltip="Select the node below"),
        Binding("home,g", "cursor_to(0)", "First", id="dashboard.first", show=False,
                tooltip="Select the first node"),
        Binding("end,G", "cursor_to(-1)", "Last", id="dashboard.last", show=False,
                tooltip="Select the last node"),
        Binding("pageup", "page(-1)", "Page up", id="dashboard.page_up", show=False,
                tooltip="Move the selection a page up"),
        Binding("pagedown", "page(1)", "Page down", id="dashboard.page_down", show=False,
                tooltip="Move the selection a page down"),
        Binding("enter", "open", "Open", id="dashboard.open",
                tooltip="Open the selected node: cores, NUMA, GPUs, interfaces, disks"),
    ]

    DEFAULT_CSS = """
    NodeTable {
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    """

    cursor: reactive[int] = reactive(0, layout=False)

    class Opened(Message):
        def __init__(self, node: str) -> None:
            super().__init__()
            self.node = node

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[str] = []
        self._position: dict[str, int] = {}  # node -> its row
        self.filter = ""
        self._cache: dict[str, Strip] = {}  # node -> its row's line
        self._header_line: Strip | None = None
        self._columns: list[NodeTableColumn] = []
        self._layout_width = 0  # the width columns are fitted to (render_lines)
        self._columns_width = -1  # the width self._columns were fitted to
        self._row_length = 0  # the cells of self._columns, with their spaces
        self._width = 0  # the width lines are drawn at (render_lines)
        self._styles: dict[str, Style] = {}

    @property
    def source(self) -> SafApp:
        """The app: its nodes, their views, the store and its context (the thresholds)."""
        return cast("SafApp", self.app)

    # -- data -------------------------------------------------------------------------------
    def set_rows(self) -> None:
        selected = self.selected
        names = self.source.node_names
        if self.filter:
            names = [n for n in names if self._matches(n, self.filter)]
        self.rows = names
        self._position = {name: i for i, name in enumerate(names)}
        self.virtual_size = Size(self.size.width, len(names) + 1)  # + the header
        self.cursor = self.rows.index(selected) if selected in self.rows else min(
            self.cursor, max(0, len(self.rows) - 1))
        self._forget_lines()
        self._columns_width = -1
        self._scroll_to_cursor()
        self.refresh()

    def _matches(self, name: str, text: str) -> bool:
        view = self.source.view(name)
        node = self.source.node_info(name)
        words = [name, view.status.value, view.os, view.reason]
        if node is not None:
            words += list(node.roles) + list(node.tags) + [node.host]
        return any(text.lower() in w.lower() for w in words if w)

    @property
    def selected(self) -> str | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def update_nodes(self, names: Iterable[str]) -> None:
        """Re-render these nodes' rows (and nothing else)."""
        lines = []
        position = self._position
        top, height = self.scroll_offset.y, self.size.height
        for name in names:
            self._cache.pop(name, None)
            row = position.get(name)
            if row is None:  # filtered out, or a node the table has not heard of
                if name in self.source.node_names:
                    self.set_rows()
                    return
                continue
            y = row - top + 1
            if 1 <= y < height:
                lines.append(y)
        # Only the changed lines, with runs of adjacent lines as one region (fewer regions
        # for the compositor to cut; a whole-table refresh draws more than it saves).
        lines.sort()
        regions: list[list[int]] = []
        for y in lines:
            if regions and regions[-1][1] == y:
                regions[-1][1] = y + 1
            else:
                regions.append([y, y + 1])
        width = self.size.width
        if regions:
            self.refresh(*(Region(0, first, width, end - first) for first, end in regions))

    def invalidate(self) -> None:
        """Draw every row again (the theme changed)."""
        self._forget_lines()
        self._styles.clear()
        self.refresh()

    # -- navigation -------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        for row in (old, new):
            if 0 <= row < len(self.rows):
                self._cache.pop(self.rows[row], None)
        self._scroll_to_cursor()
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        """Scroll so the cursor's row shows below the header."""
        visible = max(1, self.size.height - 1)
        top = self.scroll_offset.y
        if self.cursor < top:
            top = self.cursor
        elif self.cursor >= top + visible:
            top = self.cursor - visible + 1
        self.scroll_to(y=top, animate=False)

    def action_cursor(self, step: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + step))

    def action_cursor_to(self, row: int) -> None:
        if self.rows:
            self.cursor = row % len(self.rows)

    def action_page(self, pages: int) -> None:
        self.action_cursor(pages * max(1, self.size.height - 2))

    def action_open(self) -> None:
        if self.selected:
            self.post_message(self.Opened(self.selected))

    def on_click(self, event: events.Click) -> None:
        row = self.scroll_offset.y + event.y - 1
        if event.y >= 1 and 0 <= row < len(self.rows):
            if row == self.cursor and event.chain >= 2:
                self.action_open()
            self.cursor = row

    def on_resize(self, event: events.Resize) -> None:
        self._forget_lines()
        self.virtual_size = Size(event.size.width, len(self.rows) + 1)
        self._scroll_to_cursor()

    def on_focus(self) -> None:
        self._drop_cursor_row()

    def on_blur(self) -> None:
        self._drop_cursor_row()

    def _drop_cursor_row(self) -> None:
        if self.selected:
            self._cache.pop(self.selected, None)
            self.refresh()

    # -- drawing ----------------------------------------------------------------------------
    def _style(self, name: str) -> Style:
        """A cell style by name, from the theme's variables (made once per theme).

        Not COMPONENT_CLASSES, yet: through CSS, the ANSI themes' colours stay ANSI and the
        cursor's variables that are not plain colours ("#2bb3a3 35%" in saf's themes, "auto
        87%" in Textual's) start to apply, which changes the table in most themes; that is
        a change of its own, with its snapshots."""
        if not self._styles:
            v = palette(self.app)
            # Every cell in the theme's own text and background colours first: this table
            # hands its lines to the compositor without the widget's styles (render_lines),
            # and a cell left without colours is drawn in the terminal's defaults, which the
            # theme knows nothing of (saf-light's rows were light grey on a dark terminal).
            base = self.rich_style
            self._styles = {name: base + style for name, style in {
                "ok": Style(), "warn": Style(color=v["warning"], bold=True),
                "alert": Style(color=v["error"], bold=True),
                "dim": Style(color=v.get("foreground-muted", v["foreground"]), dim=True),
                "title": Style(color=v["primary"], bold=True),
                "good": Style(color=v["success"]),
                "spark": Style(color=v["primary"]),
                "spark2": Style(color=v["secondary"]),
                "cursor": cursor_style(self.app.theme_variables),
                "cursor-blur": blurred_cursor_style(self.app.theme_variables),
            }.items()}
        return self._styles[name]

    def render_lines(self, crop: Region) -> list[Strip]:
        """The lines the compositor asks for (once per screen update).

        The table hands over its own lines rather than going through the widget's styles
        cache, which would copy each into a new strip every update only to add what the
        table does not have (a border, padding, tint or opacity). A line is the row's cached
        strip, as wide as the room left of the scrollbar, so the compositor need not cut the
        scrollbar's column off it, with the app's line filters applied (cached on the strip
        too). A table that CSS gives a gutter or an effect is drawn the usual way."""
        size = self.size  # read once: `size` is a look-up in the compositor
        self._layout_width = size.width
        styles = self.styles
        if (styles.gutter or styles.tint.a or styles.text_opacity != 1.0
                or self.opacity != 1.0 or styles.outline):
            self._set_width(size.width)
            return super().render_lines(crop)
        self._set_width(self.scrollable_size.width)
        filters = self.app.get_line_filters()
        background = self.background_colors[1]
        strips = []
        for y in crop.line_range:
            strip = self.render_line(y)
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            strips.append(strip)
        x1, x2 = crop.column_span
        if x1 or x2 < self._width:
            strips = [strip.crop(x1, x2) for strip in strips]
        return strips

    def _set_width(self, width: int) -> None:
        """The width lines are drawn at; cached rows of another width are dropped (the
        scrollbar comes and goes with the number of rows, not only with a resize)."""
        if width != self._width:
            self._width = width
            self._forget_lines()

    def _forget_lines(self) -> None:
        """Draw every line again when next asked (the rows, the widths or the theme
        changed)."""
        self._cache.clear()
        self._header_line = None

    def _layout(self) -> list[NodeTableColumn]:
        """The columns, fitted to the table's whole width: each cell's trailing space is
        counted, and the last one may fall under the scrollbar."""
        width = self._layout_width
        if width != self._columns_width:
            longest = max((len(n) for n in self.source.node_names), default=4)
            self._columns = fit_columns(width, max(6, min(longest + 1, 16)))
            self._columns_width = width
            self._row_length = sum(c.width + 1 for c in self._columns)
        return self._columns

    def render_line(self, y: int) -> Strip:
        width = self._width
        columns = self._layout()
        if y == 0:  # the header stays on top however far the rows are scrolled
            if self._header_line is None:
                self._header_line = self._header(columns, width)
            return self._header_line
        row = self.scroll_offset.y + y - 1
        if row >= len(self.rows):
            if not self.rows and y == 2:
                text = "no node matches the filter" if self.filter else "no nodes"
                # Measured, then padded to the width: a strip told it is `width` long is
                # not padded, and the row drawn there before showed through its end.
                return Strip([Segment(f"  {text}", self._style("dim"))]).extend_cell_length(
                    width, self._style("ok")).crop(0, width)
            return Strip.blank(width, self._style("ok"))
        name = self.rows[row]
        strip = self._cache.get(name)
        if strip is None:
            strip = self._render_row(name, width, row == self.cursor)
            self._cache[name] = strip
        return strip

    def _header(self, columns: list[NodeTableColumn], width: int) -> Strip:
        style = self._style("title")
        segments = []
        for col in columns:
            title = clip(col.title, col.width)
            cell = title.ljust(col.width) if col.align == "left" else title.rjust(col.width)
            segments.append(Segment(cell + " ", style))
        return Strip(segments).extend_cell_length(width, self._style("ok")).crop(0, width)

    def _render_row(self, name: str, width: int, selected: bool) -> Strip:
        """A node's row, in the columns `_layout` fitted last."""
        source = self.source
        parts, narrow = row_parts(source.view(name), source.node_info(name),
                                  source.setup.settings.thresholds, self._columns,
                                  source.store.values)
        if narrow:  # cells are padded to their widths: no need to measure every segment
            length = self._row_length
            while length > width:  # the last cells' ends fall under the scrollbar
                text, style = parts.pop()
                keep = max(0, len(text) - (length - width))
                if keep:
                    parts.append((text[:keep], style))
                length -= len(text) - keep
            segments = [Segment(text, self._style(style)) for text, style in parts]
            if length < width:
                segments.append(Segment(" " * (width - length), self._style("ok")))
            strip = Strip(segments, width)
        else:
            segments = [Segment(text, self._style(style)) for text, style in parts]
            strip = Strip(segments).extend_cell_length(width, self._style("ok")).crop(0, width)
        if selected:
            strip = self._cursor_row(strip)
        return strip

    def _cursor_row(self, strip: Strip) -> Strip:
        """The selected row, drawn in one pair of colours over every cell's (a cell's colour
        could be the cursor's, and vanish): the cursor's own while the table has the focus,
        the theme's text on its panel colour while it has not (the filter is being typed,
        or the window or browser tab lost focus); both read at WCAG AA (contrast.py)."""
        style = self._style("cursor" if self.has_focus else "cursor-blur")
        return Strip(Segment.apply_style(strip, post_style=style), strip.cell_length)
