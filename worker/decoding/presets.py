"""Mapping presets: the field tables of the event shapes teams already publish (pure data).

A preset fills in every mapping field a topic's `mapping:` block leaves out, so
`mapping: {preset: ga4, item_id: [$item.item_sku]}` overrides one field and keeps the rest.
Field names come from each vendor's public documentation (see the per-vendor comments).
Keys starting with `$` are not the vendor's: the preset's shape (`worker.decoding.shapes`)
derives them — GA4's flattened `event_params` and current item, per-device session keys,
Snowplow's self-describing event data.
"""

from __future__ import annotations

from typing import Any, Literal

InteractionsPreset = Literal["segment", "rudderstack", "snowplow", "amplitude", "ga4", "personalize-connector"]
ItemsPreset = Literal["segment", "rudderstack", "personalize-connector"]
UsersPreset = Literal["segment", "rudderstack", "personalize-connector"]

_NONE: tuple[str, ...] = ()

#: Interactions: mapping field -> default, per preset. `segment` is the models' own defaults.
INTERACTIONS: dict[str, dict[str, Any]] = {
    "segment": {},
    # RudderStack event spec (common fields + track): same member names as Segment. Its own
    # Personalize destination takes sessionId from anonymousId and eventId from messageId.
    "rudderstack": {
        "event_id": ("messageId",),
        "user_id": ("userId",),
        "session_id": ("anonymousId", "context.sessionId"),
        "item_id": ("properties.product_id", "properties.productId", "properties.itemId", "properties.item_id",
                    "properties.sku"),
        "event_type": ("event",),
        "event_value": ("properties.value", "properties.revenue"),
        "timestamp": ("timestamp", "originalTimestamp", "sentAt"),
        "timestamp_unit": "iso8601",
        "recommendation_id": ("properties.recommendation_id", "properties.recommendationId"),
        "impression": ("properties.impression",),
        "event_attribution_source": ("properties.event_attribution_source",),
        "field_prefix": "properties",
    },
    # Snowplow enriched event (TSV, or the Analytics SDK's JSON form of it).
    "snowplow": {
        "event_id": ("event_id",),
        "user_id": ("user_id", "domain_userid"),
        "session_id": ("domain_sessionid",),
        "item_id": ("contexts_com_snowplowanalytics_snowplow_ecommerce_product_1.0.id", "ti_sku", "se_label",
                    "unstruct_event_com_snowplowanalytics_snowplow_link_click_1.targetUrl", "page_urlpath"),
        "event_type": ("se_action", "event_name", "event"),
        "event_value": ("se_value", "ti_price", "tr_total"),
        "timestamp": ("derived_tstamp", "dvce_created_tstamp", "collector_tstamp"),
        "timestamp_unit": "iso8601",
        "recommendation_id": _NONE,
        "impression": _NONE,
        "event_attribution_source": _NONE,
        "field_prefix": "$event_data",
    },
    # Amplitude HTTP API v2 event objects (the members of `events`).
    "amplitude": {
        "event_id": ("insert_id",),
        "user_id": ("user_id",),
        "session_id": ("$session_id", "device_id"),
        "item_id": ("productId", "event_properties.product_id", "event_properties.productId",
                    "event_properties.item_id", "event_properties.itemId"),
        "event_type": ("event_type",),
        "event_value": ("revenue", "price"),
        "timestamp": ("time", "event_time"),
        "timestamp_unit": "iso8601_or_milliseconds",
        "recommendation_id": ("event_properties.recommendation_id",),
        "impression": _NONE,
        "event_attribution_source": _NONE,
        "field_prefix": "event_properties",
    },
    # GA4 BigQuery export rows (one interaction per entry of `items`).
    "ga4": {
        "event_id": _NONE,
        "user_id": ("user_id", "user_pseudo_id"),
        "session_id": ("$session_id", "user_pseudo_id"),
        "item_id": ("$item.item_id",),
        "event_type": ("event_name",),
        "event_value": ("$item.price", "event_value_in_usd", "$params.value"),
        "timestamp": ("event_timestamp",),
        "timestamp_unit": "microseconds",
        "recommendation_id": _NONE,
        "impression": _NONE,
        "event_attribution_source": _NONE,
        "field_prefix": "$params",
    },
    # aws/personalize-kafka-connector: PutEvents member names; `properties` a JSON string.
    "personalize-connector": {
        "event_id": ("eventId",),
        "user_id": ("userId",),
        "session_id": ("sessionId",),
        "item_id": ("itemId",),
        "event_type": ("eventType",),
        "event_value": ("eventValue",),
        "timestamp": ("sentAt",),
        "timestamp_unit": "milliseconds",
        "recommendation_id": ("recommendationId",),
        "impression": ("impression",),
        "event_attribution_source": ("eventAttributionSource",),
        "field_prefix": "properties",
    },
}

ITEMS: dict[str, dict[str, Any]] = {
    "segment": {},
    "rudderstack": {},
    "personalize-connector": {"item_id": ("itemId",), "field_prefix": "properties"},
}

USERS: dict[str, dict[str, Any]] = {
    "segment": {},
    # RudderStack puts identify traits under context.traits.
    "rudderstack": {"user_id": ("userId",), "field_prefix": "context.traits"},
    "personalize-connector": {"user_id": ("userId",), "field_prefix": "properties"},
}

#: Identity fields per preset that logs must scrub even when the mapping does not use them.
IDENTITY_KEYS: dict[str, tuple[str, ...]] = {
    "segment": ("userId", "anonymousId", "sessionId", "context.sessionId"),
    "rudderstack": ("userId", "anonymousId", "sessionId", "context.sessionId"),
    "snowplow": ("user_id", "domain_userid", "domain_sessionid", "network_userid", "user_ipaddress",
                 "user_fingerprint", "refr_domain_userid"),
    "amplitude": ("user_id", "device_id", "$session_id", "idfa", "idfv", "adid", "android_id", "ip"),
    "ga4": ("user_id", "user_pseudo_id", "$session_id"),
    "personalize-connector": ("userId", "sessionId"),
}
