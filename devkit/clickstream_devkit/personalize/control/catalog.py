"""Current Items and Users metadata per dataset, for filters (event-loop thread only).

A filter on ``Items.GENRE`` or ``CurrentUser.AGE`` reads a record's fields at request time,
so they must be current: bulk-imported records (CSV columns) overlaid with what
PutItems/PutUsers stored (camelCase ``properties`` keys mapped back to the schema's
columns), the same merge the training reads (`training_data.items_metadata`). Field names
are upper-cased: the filter grammar matches them case-insensitively.

Each dataset's records are loaded on first use and then kept current: a PutItems/PutUsers
commit updates its records in place (store record listener); a finished import job, a
deletion or a data deletion job of its group drops the dataset, which is reloaded on the
next request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from clickstream_devkit.personalize.control import bulk_store, schemas_api
from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.deps import Deps

Record = dict[str, str]


@dataclass
class _Dataset:
    #: camelCase property key -> schema column (upper case).
    keys: dict[str, str]
    bulk: dict[str, Record]
    merged: dict[str, Record] = field(default_factory=dict)


class Catalog:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._datasets: dict[str, _Dataset] = {}
        deps.store.add_record_listener(self._on_records)
        deps.on_import_done.append(self.invalidate)
        deps.on_deleted.append(lambda resource: self.invalidate(resource.arn))
        deps.on_records_erased.append(self._forget_group)

    def invalidate(self, dataset_arn: str) -> None:
        self._datasets.pop(dataset_arn, None)

    def _forget_group(self, group_arn: str) -> None:
        for dataset in self._deps.resources.all(kinds.DATASET, group_arn):
            self.invalidate(dataset.arn)

    def records(self, dataset: Resource) -> Mapping[str, Mapping[str, str]]:
        """Record ID -> {FIELD: value} of an Items or Users dataset."""
        cached = self._datasets.get(dataset.arn)
        if cached is None:
            cached = self._load(dataset)
            self._datasets[dataset.arn] = cached
        return cached.merged

    def _load(self, dataset: Resource) -> _Dataset:
        schema = schemas_api.load(self._deps, dataset.doc["schemaArn"])
        keys = {f.key: f.name.upper() for f in schema.fields}
        bulk = {
            rid: {k.upper(): str(v) for k, v in fields.items() if v is not None}
            for rid, fields in bulk_store.read_records(self._deps.bulk_path, dataset.arn).items()
        }
        loaded = _Dataset(keys, bulk, {rid: dict(fields) for rid, fields in bulk.items()})
        table = "items" if dataset.doc["datasetType"].lower() == "items" else "users"
        self._apply(loaded, self._deps.store.catalog_records(table, dataset.arn))
        return loaded

    def _on_records(self, table: str, dataset_arn: str, records: list[tuple[str, str | None]]) -> None:
        cached = self._datasets.get(dataset_arn)
        if cached is not None:
            self._apply(cached, records)

    @staticmethod
    def _apply(dataset: _Dataset, records: list[tuple[str, str | None]]) -> None:
        """A streamed record replaces the previous streamed one, over the bulk record."""
        for record_id, properties in records:
            parsed: dict[str, object] = json.loads(properties) if properties else {}
            streamed = {dataset.keys[k]: str(v) for k, v in parsed.items() if k in dataset.keys and v is not None}
            dataset.merged[record_id] = {**dataset.bulk.get(record_id, {}), **streamed}
