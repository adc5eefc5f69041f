"""Snowplow enriched events: the 131-column TSV, read into the Analytics SDKs' JSON form.

Column order and types follow Snowplow's Analytics SDK (snowplow-python-analytics-sdk,
`event_transformer.py`; `se_value` is a double as in the current SDKs). Empty columns are
left out; timestamps "2013-11-26 00:03:57.885" become "2013-11-26T00:03:57.885Z";
`contexts`/`derived_contexts` are shredded into `contexts_<vendor>_<name>_<model>` lists and
`unstruct_event` into `unstruct_event_<vendor>_<name>_<model>`, exactly as the SDK does, so
a mapping written for the JSON form reads the TSV unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from worker.decoding.outcomes import ShapeError

COLUMNS = (
    "app_id", "platform", "etl_tstamp", "collector_tstamp", "dvce_created_tstamp", "event", "event_id", "txn_id",
    "name_tracker", "v_tracker", "v_collector", "v_etl", "user_id", "user_ipaddress", "user_fingerprint",
    "domain_userid", "domain_sessionidx", "network_userid", "geo_country", "geo_region", "geo_city", "geo_zipcode",
    "geo_latitude", "geo_longitude", "geo_region_name", "ip_isp", "ip_organization", "ip_domain", "ip_netspeed",
    "page_url", "page_title", "page_referrer", "page_urlscheme", "page_urlhost", "page_urlport", "page_urlpath",
    "page_urlquery", "page_urlfragment", "refr_urlscheme", "refr_urlhost", "refr_urlport", "refr_urlpath",
    "refr_urlquery", "refr_urlfragment", "refr_medium", "refr_source", "refr_term", "mkt_medium", "mkt_source",
    "mkt_term", "mkt_content", "mkt_campaign", "contexts", "se_category", "se_action", "se_label", "se_property",
    "se_value", "unstruct_event", "tr_orderid", "tr_affiliation", "tr_total", "tr_tax", "tr_shipping", "tr_city",
    "tr_state", "tr_country", "ti_orderid", "ti_sku", "ti_name", "ti_category", "ti_price", "ti_quantity",
    "pp_xoffset_min", "pp_xoffset_max", "pp_yoffset_min", "pp_yoffset_max", "useragent", "br_name", "br_family",
    "br_version", "br_type", "br_renderengine", "br_lang", "br_features_pdf", "br_features_flash",
    "br_features_java", "br_features_director", "br_features_quicktime", "br_features_realplayer",
    "br_features_windowsmedia", "br_features_gears", "br_features_silverlight", "br_cookies", "br_colordepth",
    "br_viewwidth", "br_viewheight", "os_name", "os_family", "os_manufacturer", "os_timezone", "dvce_type",
    "dvce_ismobile", "dvce_screenwidth", "dvce_screenheight", "doc_charset", "doc_width", "doc_height",
    "tr_currency", "tr_total_base", "tr_tax_base", "tr_shipping_base", "ti_currency", "ti_price_base",
    "base_currency", "geo_timezone", "mkt_clickid", "mkt_network", "etl_tags", "dvce_sent_tstamp",
    "refr_domain_userid", "refr_device_tstamp", "derived_contexts", "domain_sessionid", "derived_tstamp",
    "event_vendor", "event_name", "event_format", "event_version", "event_fingerprint", "true_tstamp",
)
_INTS = frozenset((
    "txn_id", "domain_sessionidx", "page_urlport", "refr_urlport", "ti_quantity", "pp_xoffset_min",
    "pp_xoffset_max", "pp_yoffset_min", "pp_yoffset_max", "br_viewwidth", "br_viewheight", "dvce_screenwidth",
    "dvce_screenheight", "doc_width", "doc_height",
))
_DOUBLES = frozenset((
    "geo_latitude", "geo_longitude", "se_value", "tr_total", "tr_tax", "tr_shipping", "ti_price", "tr_total_base",
    "tr_tax_base", "tr_shipping_base", "ti_price_base",
))
_BOOLS = frozenset(name for name in COLUMNS if name.startswith("br_features_")) | {"br_cookies", "dvce_ismobile"}
_TSTAMPS = frozenset(name for name in COLUMNS if name.endswith("_tstamp"))
_SCHEMA = re.compile(r".+:([a-zA-Z0-9_.]+)/([a-zA-Z0-9_]+)/[^/]+/(.*)")
_LAT, _LON = COLUMNS.index("geo_latitude"), COLUMNS.index("geo_longitude")


def shred_key(prefix: str, schema: Any) -> str:
    """`iglu:com.acme/link_click/jsonschema/1-0-1` -> `<prefix>_com_acme_link_click_1` (the SDK's rule)."""
    match = _SCHEMA.match(schema) if type(schema) is str else None
    if match is None:
        raise ShapeError("snowplow_schema", prefix, "self-describing JSON without an Iglu schema URI", schema)
    vendor = match.group(1).replace(".", "_").lower()
    name = re.sub(r"([^A-Z_])([A-Z])", r"\1_\2", match.group(2)).lower()
    return f"{prefix}_{vendor}_{name}_{match.group(3).split('-')[0]}"


def _contexts(name: str, raw: str) -> list[tuple[str, Any]]:
    doc = json.loads(raw)
    grouped: dict[str, list[Any]] = {}
    for context in doc["data"]:
        grouped.setdefault(shred_key("contexts", context["schema"]), []).append(context["data"])
    return list(grouped.items())


def _unstruct(name: str, raw: str) -> list[tuple[str, Any]]:
    inner = json.loads(raw)["data"]
    return [(shred_key("unstruct_event", inner["schema"]), inner["data"])]


def _bool(name: str, raw: str) -> list[tuple[str, Any]]:
    if raw not in ("0", "1"):
        raise ValueError(f"{raw!r} is not 0 or 1")
    return [(name, raw == "1")]


def _converter(name: str) -> Callable[[str, str], list[tuple[str, Any]]]:
    if name in ("contexts", "derived_contexts"):
        return _contexts
    if name == "unstruct_event":
        return _unstruct
    if name in _INTS:
        return lambda n, raw: [(n, int(raw))]
    if name in _DOUBLES:
        return lambda n, raw: [(n, float(raw))]
    if name in _BOOLS:
        return _bool
    if name in _TSTAMPS:
        return lambda n, raw: [(n, raw.replace(" ", "T") + "Z")]
    return lambda n, raw: [(n, raw)]


_CONVERTERS = [(name, _converter(name)) for name in COLUMNS]


def parse_tsv(line: str) -> dict[str, Any]:
    """One enriched-event TSV line -> the SDK's JSON form (geo_location included)."""
    values = line.split("\t")
    if len(values) != len(COLUMNS):
        raise ShapeError("snowplow_tsv", None, f"expected {len(COLUMNS)} tab-separated Snowplow enriched-event "
                         f"fields, got {len(values)}")
    out: dict[str, Any] = {}
    if values[_LAT] and values[_LON]:
        out["geo_location"] = f"{values[_LAT]},{values[_LON]}"
    for (name, convert), raw in zip(_CONVERTERS, values, strict=True):
        if not raw:
            continue
        try:
            out.update(convert(name, raw))
        except ShapeError:
            raise
        except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise ShapeError("snowplow_field", name, f"cannot read column {name}: {str(exc)[:100]}") from None
    return out


def event_data(event: dict[str, Any]) -> dict[str, Any]:
    """Add `$event_data`: the self-describing event's own data (where custom columns are read)."""
    for key, value in event.items():
        if key.startswith("unstruct_event_") and type(value) is dict:
            event["$event_data"] = value
            break
    return event
