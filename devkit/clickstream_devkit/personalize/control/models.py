"""Trained models loaded for serving, kept in a small LRU cache.

A campaign update switches the version a campaign serves; the previous model stays
cached until evicted, so switching back and forth costs nothing and a request never
waits for more than one load.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Final

from clickstream_devkit.recsys.recipes import Model, load_model

CACHE_SIZE: Final = 8


class ModelCache:
    def __init__(self, models_dir: Path, size: int = CACHE_SIZE) -> None:
        self._dir = models_dir
        self._size = size
        self._models: OrderedDict[str, Model] = OrderedDict()

    def get(self, file_name: str, recipe: str) -> Model:
        """The model in `file_name` (under the models directory), trained for `recipe`."""
        model = self._models.get(file_name)
        if model is None:
            model = load_model(recipe, (self._dir / file_name).read_bytes())
            self._models[file_name] = model
            while len(self._models) > self._size:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(file_name)
        return model
