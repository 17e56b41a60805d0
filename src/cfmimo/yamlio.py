"""The one YAML reader of cfmimo: safe, bounded, and every error names its file.

Every YAML that cfmimo reads (scenario files, dataset specs, training configs, positions files,
``--set key=value`` override values) goes through :func:`load_yaml_file` or :func:`load_yaml_text`.
On top of ``yaml.SafeLoader`` (no Python objects) they reject:

* files larger than :data:`MAX_YAML_BYTES` (16 MiB) and text that is not UTF-8;
* anchors and aliases (``&a`` / ``*a``) and hence merge keys (``<<: *a``): an alias "bomb" of a
  few hundred bytes expands to billions of nodes once a reader walks it, and no cfmimo file needs
  them;
* duplicate keys in a mapping (PyYAML silently keeps the last one, so a typo'd second ``K:`` would
  win unseen);
* nesting deeper than :data:`MAX_YAML_DEPTH` (the composer recurses, deep nesting would end in a
  RecursionError).

Every problem is a ``ValueError`` whose message starts with the file (or the source name given).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent, CollectionStartEvent

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "load_yaml_file", "load_yaml_text", "read_utf8"]

#: largest YAML file read (bytes); configs are a few kB
MAX_YAML_BYTES = 16 << 20
#: deepest nesting of sequences/mappings accepted
MAX_YAML_DEPTH = 64


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases, without duplicate keys, with a nesting limit."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise ComposerError(
                None, None, f"aliases are not allowed (found *{event.anchor})", event.start_mark
            )
        if getattr(event, "anchor", None) is not None:
            raise ComposerError(
                None, None, f"anchors are not allowed (found &{event.anchor})", event.start_mark
            )
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_YAML_DEPTH:
                raise ComposerError(
                    None, None, f"nesting deeper than {MAX_YAML_DEPTH} levels", event.start_mark
                )
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str, source: str) -> Any:
    """Parse one YAML document with the rules of the module docstring; ``source`` names it in errors."""
    if len(text) > MAX_YAML_BYTES:
        raise ValueError(f"{source}: YAML text of {len(text)} characters exceeds {MAX_YAML_BYTES}")
    loader = _SafeLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ValueError(f"{source}: invalid YAML: {err}") from None
    except RecursionError:
        raise ValueError(f"{source}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def read_utf8(path: str | os.PathLike, what: str = "file", max_bytes: int = MAX_YAML_BYTES) -> str:
    """The text of ``path``: ValueError naming the file if it is missing, a folder, larger than
    ``max_bytes`` or not UTF-8 (with the offset of the first bad byte)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ValueError(f"{what} {path} is a directory, not a file")
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} is larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{what} {path} is not UTF-8 text (byte {err.start}: {data[err.start]:#04x})"
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark is allowed


def load_yaml_file(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """Read and parse a YAML file; every error is a ValueError naming ``what`` and the file."""
    path = Path(path)
    return load_yaml_text(read_utf8(path, what), f"{what} {path}")
