"""Labels for zero-shot sorting: from a comma list or a YAML file with descriptions and sub-labels.

A labels file looks like::

    labels:
      weapon: a photo of a gun, a rifle or a knife      # name: description
      meme:
        description: an internet meme with large text
        prompts: ["a meme", "an image macro with a caption"]   # optional ensemble
        labels:                                           # optional sub-labels (hierarchy)
          cat meme: a meme with a cat
          political meme: a meme about a politician
      screenshot: a screenshot of a social media post

Each label is scored with an ensemble of prompts: its description (or its name) in the
templates below, averaged in the text space, as zero-shot papers do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from picsift.errors import PicsiftError

TEMPLATES = ("{}", "a photo of {}.", "an image of {}.")
UNSURE = "unsure"


@dataclass
class Label:
    """One label: its folder name, the prompts that describe it, and its sub-labels."""

    name: str
    prompts: list[str]
    children: list[Label] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return safe_folder(self.name)


def safe_folder(name: str) -> str:
    """A folder name from a label: no path separators or control characters."""
    cleaned = re.sub(r"[\\/\x00-\x1f:*?\"<>|]+", "_", name).strip(" .")
    return cleaned or "label"


def _prompts_for(name: str, description: str | None, prompts: list[str] | None) -> list[str]:
    if prompts:
        return [str(p) for p in prompts]
    text = description or name
    if len(text.split()) > 3:  # already a sentence: use it as written
        return [text]
    return [t.format(text) for t in TEMPLATES]


def _parse(entries: Any, where: str) -> list[Label]:
    if not isinstance(entries, dict) or not entries:
        raise PicsiftError(f"{where}: 'labels' must be a mapping of label name to description")
    labels = []
    for name, value in entries.items():
        name = str(name)
        if value is None or isinstance(value, str):
            labels.append(Label(name, _prompts_for(name, value, None)))
        elif isinstance(value, dict):
            children = _parse(value["labels"], f"{where} > {name}") if value.get("labels") else []
            labels.append(Label(name, _prompts_for(name, value.get("description"), value.get("prompts")),
                                children))
        else:
            raise PicsiftError(f"{where}: label {name!r} must be a description or a mapping")
    names = [label.folder.lower() for label in labels]
    if len(set(names)) != len(names) or UNSURE in names:
        raise PicsiftError(f"{where}: label names must be distinct and not {UNSURE!r}")
    return labels


def labels_from_text(text: str) -> list[Label]:
    """`--labels "weapon, a meme, screenshot of a tweet"`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < 2:
        raise PicsiftError("give at least two labels, separated by commas")
    return _parse({n: None for n in names}, "--labels")


def labels_from_file(path: str | Path) -> list[Label]:
    """Read a YAML labels file (see the module docstring)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PicsiftError(f"cannot read labels file {path}: {exc}") from exc
    if isinstance(data, dict) and "labels" in data:
        data = data["labels"]
    if isinstance(data, list):
        data = {str(n): None for n in data}
    labels = _parse(data, str(path))
    if len(labels) < 2:
        raise PicsiftError(f"{path}: give at least two labels")
    return labels
