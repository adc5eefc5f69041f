"""Mapping presets against golden samples from each vendor's public documentation or examples.

Every sample below is copied from a public source (cited above it) and decoded with the
preset alone (plus a test schema whose columns show where `properties` come from); the
expected Personalize record is written out in full. Sources:

* Segment: the Track spec's complete example (segment.com/docs/connections/spec/track, "Example").
* RudderStack: the inputs of RudderStack's own Personalize destination tests
  (github.com/rudderlabs/rudder-transformer, test/integrations/destinations/personalize/processor/data.ts,
  "Test 0" and "Test 3"); their expected PutEvents output is quoted where ours agrees or differs.
* Snowplow: the enriched event of Snowplow's Python Analytics SDK tests
  (github.com/snowplow/snowplow-python-analytics-sdk, tests/test_event_transformer.py `full_event`),
  both as TSV and in the SDK's JSON form (`expected` there).
* Amplitude: the HTTP V2 API reference's example request body
  (amplitude.com/docs/apis/analytics/http-v2, "Example request") and the HTTP API quickstart's
  minimal event (amplitude.com/docs/apis/analytics/http-api-quickstart).
* GA4: Google publishes the BigQuery export schema (developers.google.com/analytics/bigquery/event-schema),
  not sample rows; the rows below follow that schema field by field, with BigQuery's JSON export
  convention of INT64 columns as strings, and item values of the public sample dataset's
  "Google Merchandise Store" kind.
* aws/personalize-kafka-connector: its converter test's event record (src/test/java/com/aws/util/
  TestConstants.java, `sampleValsForEventData`, `sampleValsForItemData`, `sampleValsForUserData`) and the
  README's "Expected Data format for events data type" with a stringified `properties`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from worker.config.mapping import parse_mapping
from worker.decoding.outcomes import Fanout
from worker.decoding.snowplow import COLUMNS, parse_tsv
from worker.mapping import EventDecoder, derived_event_id
from worker.records import CatalogUpdate, DatasetType, Interaction, Rejection, SourceRef
from worker.schemas import parse_schema
from worker.validation import ValidationLimits

INT = DatasetType.INTERACTIONS
NOW = 1_800_000_000.0
#: Documentation samples are years old: the golden tests check mapping, not the age window.
ANY_AGE = ValidationLimits(max_past_seconds=math.inf)
SRC = SourceRef("clicks", 0, 42)


def schema(*custom: dict[str, Any], kind: DatasetType = INT) -> Any:
    if kind is INT:
        fields = [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                  {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                  {"name": "EVENT_VALUE", "type": ["null", "float"]}, *custom]
        name = "Interactions"
    else:
        id_field = "ITEM_ID" if kind is DatasetType.ITEMS else "USER_ID"
        fields = [{"name": id_field, "type": "string"}, *(custom or [string_col("GENRE")])]
        name = kind.value.title()
    return parse_schema(json.dumps({"type": "record", "name": name, "fields": fields}), kind)


def decode(preset: str, value: bytes | str | dict[str, Any], *custom: dict[str, Any],
           kind: DatasetType = INT, **overrides: Any) -> Any:
    raw = value if isinstance(value, bytes) else (value if isinstance(value, str) else json.dumps(value)).encode()
    spec = parse_mapping(kind, {"preset": preset, **overrides})
    decoder = EventDecoder(kind, spec, schema(*custom, kind=kind), ANY_AGE)
    return decoder.decode(raw, SRC, NOW, key=b"k", timestamp_ms=1_700_000_000_000)


def wire(result: Any) -> dict[str, Any]:
    """An Interaction as the PutEvents members it becomes (request-level user/session included)."""
    assert isinstance(result, Interaction), result
    return {"sessionId": result.session_id, "userId": result.user_id, **result.event}


def string_col(name: str) -> dict[str, Any]:
    return {"name": name, "type": ["null", "string"], "categorical": True}


# -- Segment ----------------------------------------------------------------------------------

SEGMENT_TRACK = {
    "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
    "context": {
        "library": {"name": "analytics.js", "version": "2.11.1"},
        "page": {"path": "/academy/", "referrer": "", "search": "", "title": "Analytics Academy",
                 "url": "https://segment.com/academy/"},
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_0) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/46.0.2490.86 Safari/537.36",
        "ip": "108.0.78.21",
    },
    "event": "Course Clicked",
    "integrations": {},
    "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
    "properties": {"title": "Intro to Analytics"},
    "receivedAt": "2015-12-12T19:11:01.266Z",
    "sentAt": "2015-12-12T19:11:01.169Z",
    "timestamp": "2015-12-12T19:11:01.249Z",
    "type": "track",
    "userId": "AiUGstSDIg",
    "originalTimestamp": "2015-12-12T19:11:01.152Z",
}


def test_segment_track_spec_example() -> None:
    # The example names no item, and a Personalize interactions schema requires ITEM_ID.
    result = decode("segment", SEGMENT_TRACK, string_col("TITLE"))
    assert isinstance(result, Rejection) and (result.stage.value, result.rule, result.field) == (
        "validation", "required", "itemId")
    # One field overridden (the course is the item), the rest from the preset:
    assert wire(decode("segment", SEGMENT_TRACK, string_col("TITLE"), item_id=["properties.title"])) == {
        "sessionId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
        "userId": "AiUGstSDIg",
        "eventId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
        "eventType": "Course Clicked",
        "sentAt": 1449947461.249,
        "itemId": "Intro to Analytics",
        "properties": '{"title":"Intro to Analytics"}',
    }


# -- RudderStack ------------------------------------------------------------------------------

def _rudder(properties: dict[str, Any], event: str) -> dict[str, Any]:
    return {
        "anonymousId": "anon-id-new",
        "context": {"ip": "14.5.67.21", "library": {"name": "http"}},
        "event": event,
        "messageId": "4bb69e26-b5a6-446a-a140-dbb6263369c9",
        "originalTimestamp": "2021-03-13T01:56:46.896+05:30",
        "properties": properties,
        "receivedAt": "2021-03-13T01:56:44.340+05:30",
        "request_ip": "[::1]",
        "rudderId": "daf823fb-e8d3-413a-8313-d34cd756f968",
        "sentAt": "2021-03-13T01:56:46.896+05:30",
        "timestamp": "2020-02-02T00:23:09.544Z",
        "type": "track",
        "userId": "identified user id",
    }


def test_rudderstack_personalize_destination_test_0() -> None:
    # RudderStack's expected output: sessionId anon-id-new, userId "identified user id", eventType
    # "PRODUCT ADDED", sentAt 2020-02-02T00:23:09.544Z, properties movieWatched/numberOfRatings, and the
    # messageId as itemId because the event names no item. This preset does not invent an item: the
    # event is rejected (ITEM_ID is required) until an override names one; overriding item_id (and
    # event_value) reproduces RudderStack's record.
    sample = _rudder({"numberOfRatings": "checking with webapp change", "movieWatched": 2, "eventValue": 7.06},
                     "PRODUCT ADDED")
    columns = (string_col("NUMBER_OF_RATINGS"), {"name": "MOVIE_WATCHED", "type": ["null", "int"]})
    result = decode("rudderstack", sample, *columns)
    assert isinstance(result, Rejection) and (result.rule, result.field) == ("required", "itemId")
    assert wire(decode("rudderstack", sample, *columns, item_id=["messageId"],
                       event_value=["properties.eventValue"])) == {
        "sessionId": "anon-id-new",
        "userId": "identified user id",
        "eventId": "4bb69e26-b5a6-446a-a140-dbb6263369c9",
        "eventType": "PRODUCT ADDED",
        "sentAt": 1580602989.544,
        "itemId": "4bb69e26-b5a6-446a-a140-dbb6263369c9",
        "eventValue": 7.06,
        "properties": '{"numberOfRatings":"checking with webapp change","movieWatched":2}',
    }


def test_rudderstack_personalize_destination_test_3_with_item() -> None:
    sample = _rudder({"numberOfRatings": "checking with webapp change", "typeOfMovie": "Art Film",
                      "itemId": "item 1"}, "PRODUCT DELETED")
    result = decode("rudderstack", sample, string_col("TYPE_OF_MOVIE"), string_col("NUMBER_OF_RATINGS"))
    assert wire(result) == {
        "sessionId": "anon-id-new",
        "userId": "identified user id",
        "eventId": "4bb69e26-b5a6-446a-a140-dbb6263369c9",
        "eventType": "PRODUCT DELETED",
        "sentAt": 1580602989.544,
        "itemId": "item 1",
        "properties": '{"typeOfMovie":"Art Film","numberOfRatings":"checking with webapp change"}',
    }


def test_rudderstack_identify_sample_reads_context_traits() -> None:
    # rudderstack.com/docs/event-spec/standard-events/identify, "Sample payload".
    sample = {"type": "identify", "context": {"traits": {"name": "Richard Hendricks",
                                                         "email": "rhedricks@example.com", "logins": 2}},
              "userId": "27340af5c8819"}
    result = decode("rudderstack", sample, {"name": "LOGINS", "type": ["null", "int"]}, kind=DatasetType.USERS)
    assert isinstance(result, CatalogUpdate)
    assert result.record == {"userId": "27340af5c8819", "properties": '{"logins":2}'}


# -- Snowplow ---------------------------------------------------------------------------------

UNSTRUCT = ('{"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", "data": {"schema": '
            '"iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1", "data": {"targetUrl": '
            '"http://www.example.com", "elementClasses": ["foreground"], "elementId": "exampleLink"}}}')
CONTEXTS = (
    '{"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0", "data": [{"schema": '
    '"iglu:org.schema/WebPage/jsonschema/1-0-0", "data": {"genre": "blog", "inLanguage": "en-US", "datePublished": '
    '"2014-11-06T00:00:00Z", "author": "Fred Blundun", "breadcrumb": ["blog", "releases"], "keywords": '
    '["snowplow", "javascript", "tracker", "event"]}}, {"schema": "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0", '
    '"data": {"navigationStart": 1415358089861, "unloadEventStart": 1415358090270, "unloadEventEnd": '
    '1415358090287, "redirectStart": 0, "redirectEnd": 0, "fetchStart": 1415358089870, "domainLookupStart": '
    '1415358090102, "domainLookupEnd": 1415358090102, "connectStart": 1415358090103, "connectEnd": 1415358090183, '
    '"requestStart": 1415358090183, "responseStart": 1415358090265, "responseEnd": 1415358090265, "domLoading": '
    '1415358090270, "domInteractive": 1415358090886, "domContentLoadedEventStart": 1415358090968, '
    '"domContentLoadedEventEnd": 1415358091309, "domComplete": 0, "loadEventStart": 0, "loadEventEnd": 0}}]}'
)
DERIVED = (
    '{"schema": "iglu:com.snowplowanalytics.snowplow\\/contexts\\/jsonschema\\/1-0-1", "data": [{"schema": '
    '"iglu:com.snowplowanalytics.snowplow\\/ua_parser_context\\/jsonschema\\/1-0-0", "data": {"useragentFamily": '
    '"IE", "useragentMajor": "7", "useragentMinor": "0", "useragentPatch": null, "useragentVersion": "IE 7.0", '
    '"osFamily": "Windows XP", "osMajor": null, "osMinor": null, "osPatch": null, "osPatchMinor": null, '
    '"osVersion": "Windows XP", "deviceFamily": "Other"}}]}'
)
#: The SDK's `full_event`, in its order (names listed once; empty columns are "").
_SDK_NAMES = (
    "app_id platform etl_tstamp collector_tstamp dvce_created_tstamp event event_id txn_id name_tracker v_tracker "
    "v_collector v_etl user_id user_ipaddress user_fingerprint domain_userid domain_sessionidx network_userid "
    "geo_country geo_region geo_city geo_zipcode geo_latitude geo_longitude geo_region_name ip_isp ip_organization "
    "ip_domain ip_netspeed page_url page_title page_referrer page_urlscheme page_urlhost page_urlport page_urlpath "
    "page_urlquery page_urlfragment refr_urlscheme refr_urlhost refr_urlport refr_urlpath refr_urlquery "
    "refr_urlfragment refr_medium refr_source refr_term mkt_medium mkt_source mkt_term mkt_content mkt_campaign "
    "contexts se_category se_action se_label se_property se_value unstruct_event tr_orderid tr_affiliation "
    "tr_total tr_tax tr_shipping tr_city tr_state tr_country ti_orderid ti_sku ti_name ti_category ti_price "
    "ti_quantity pp_xoffset_min pp_xoffset_max pp_yoffset_min pp_yoffset_max useragent br_name br_family "
    "br_version br_type br_renderengine br_lang br_features_pdf br_features_flash br_features_java "
    "br_features_director br_features_quicktime br_features_realplayer br_features_windowsmedia br_features_gears "
    "br_features_silverlight br_cookies br_colordepth br_viewwidth br_viewheight os_name os_family "
    "os_manufacturer os_timezone dvce_type dvce_ismobile dvce_screenwidth dvce_screenheight doc_charset doc_width "
    "doc_height tr_currency tr_total_base tr_tax_base tr_shipping_base ti_currency ti_price_base base_currency "
    "geo_timezone mkt_clickid mkt_network etl_tags dvce_sent_tstamp refr_domain_userid refr_device_tstamp "
    "derived_contexts domain_sessionid derived_tstamp event_vendor event_name event_format event_version "
    "event_fingerprint true_tstamp"
)
SDK_COLUMNS = _SDK_NAMES.split()
SDK_VALUES = {
    "app_id": "angry-birds", "platform": "web", "etl_tstamp": "2017-01-26 00:01:25.292",
    "collector_tstamp": "2013-11-26 00:02:05", "dvce_created_tstamp": "2013-11-26 00:03:57.885",
    "event": "page_view", "event_id": "c6ef3124-b53a-4b13-a233-0088f79dcbcb", "txn_id": "41828",
    "name_tracker": "cloudfront-1", "v_tracker": "js-2.1.0", "v_collector": "clj-tomcat-0.1.0",
    "v_etl": "serde-0.5.2", "user_id": "jon.doe@email.com", "user_ipaddress": "92.231.54.234",
    "user_fingerprint": "2161814971", "domain_userid": "bc2e92ec6c204a14", "domain_sessionidx": "3",
    "network_userid": "ecdff4d0-9175-40ac-a8bb-325c49733607", "geo_country": "US", "geo_region": "TX",
    "geo_city": "New York", "geo_zipcode": "94109", "geo_latitude": "37.443604", "geo_longitude": "-122.4124",
    "geo_region_name": "Florida", "ip_isp": "FDN Communications", "ip_organization": "Bouygues Telecom",
    "ip_domain": "nuvox.net", "ip_netspeed": "Cable/DSL", "page_url": "http://www.snowplowanalytics.com",
    "page_title": "On Analytics", "page_urlscheme": "http", "page_urlhost": "www.snowplowanalytics.com",
    "page_urlport": "80", "page_urlpath": "/product/index.html", "page_urlquery": "id=GTM-DLRG",
    "page_urlfragment": "4-conclusion", "contexts": CONTEXTS, "unstruct_event": UNSTRUCT,
    "br_features_pdf": "1", "br_features_flash": "0", "derived_contexts": DERIVED,
    "domain_sessionid": "2b15e5c8-d3b1-11e4-b9d6-1681e6b88ec1", "derived_tstamp": "2013-11-26 00:03:57.886",
    "event_vendor": "com.snowplowanalytics.snowplow", "event_name": "link_click", "event_format": "jsonschema",
    "event_version": "1-0-0", "event_fingerprint": "e3dbfa9cca0412c3d4052863cefb547f",
    "true_tstamp": "2013-11-26 00:03:57.886",
}
SNOWPLOW_TSV = "\t".join(SDK_VALUES.get(name, "") for name in SDK_COLUMNS)
SNOWPLOW_EXPECTED = {
    "sessionId": "2b15e5c8-d3b1-11e4-b9d6-1681e6b88ec1",
    "userId": "jon.doe@email.com",
    "eventId": "c6ef3124-b53a-4b13-a233-0088f79dcbcb",
    "eventType": "link_click",
    "sentAt": 1385424237.886,
    "itemId": "http://www.example.com",
    "properties": '{"elementId":"exampleLink"}',
}


def test_snowplow_column_list_is_the_sdks() -> None:
    assert list(COLUMNS) == SDK_COLUMNS and len(COLUMNS) == 131


def test_snowplow_tsv_reads_into_the_sdks_json_form() -> None:
    event = parse_tsv(SNOWPLOW_TSV)
    # Spot checks against the SDK's `expected`; the whole dict is compared in the JSON-form test below.
    assert event["geo_location"] == "37.443604,-122.4124"
    assert event["txn_id"] == 41828 and event["br_features_pdf"] is True and event["br_features_flash"] is False
    assert event["derived_tstamp"] == "2013-11-26T00:03:57.886Z" and event["collector_tstamp"] == "2013-11-26T00:02:05Z"
    assert event["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"]["elementId"] == "exampleLink"
    assert event["contexts_org_w3_performance_timing_1"][0]["navigationStart"] == 1415358089861
    assert event["contexts_org_schema_web_page_1"][0]["author"] == "Fred Blundun"
    assert event["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"][0]["useragentFamily"] == "IE"
    assert "se_value" not in event and "page_referrer" not in event


def test_snowplow_enriched_tsv() -> None:
    assert wire(decode("snowplow", SNOWPLOW_TSV, string_col("ELEMENT_ID"))) == SNOWPLOW_EXPECTED


def test_snowplow_json_form_gives_the_same_record() -> None:
    json_form = parse_tsv(SNOWPLOW_TSV)  # equals the SDK's `expected` (asserted field by field above)
    assert wire(decode("snowplow", json_form, string_col("ELEMENT_ID"))) == SNOWPLOW_EXPECTED


def test_snowplow_wrong_column_count_is_a_mapping_rejection() -> None:
    result = decode("snowplow", "two\tfields")
    assert isinstance(result, Rejection) and (result.stage.value, result.rule) == ("mapping", "snowplow_tsv")


# -- Amplitude --------------------------------------------------------------------------------

AMPLITUDE_EVENT = {
    "user_id": "datamonster@gmail.com",
    "device_id": "C8F9E604-F01A-4BD9-95C6-8E5357DF265D",
    "event_type": "watch_tutorial",
    "time": 1396381378123,
    "event_properties": {"load_time": 0.8371, "source": "notification", "dates": ["monday", "tuesday"]},
    "user_properties": {"age": 25, "gender": "female", "interests": ["chess", "football", "music"]},
    "groups": {"team_id": "1", "company_name": ["Amplitude", "DataMonster"]},
    "app_version": "2.1.3", "platform": "iOS", "os_name": "Android", "os_version": "4.2.2",
    "device_brand": "Verizon", "device_manufacturer": "Apple", "device_model": "iPhone 9,1", "carrier": "Verizon",
    "country": "United States", "region": "California", "city": "San Francisco",
    "dma": "San Francisco-Oakland-San Jose, CA", "language": "English", "price": 4.99, "quantity": 3,
    "revenue": -1.99, "productId": "Google Pay Store Product Id", "revenueType": "Refund", "location_lat": 37.77,
    "location_lng": -122.39, "ip": "127.0.0.1", "idfa": "AEBE52E7-03EE-455A-B3C4-E57283966239",
    "idfv": "BCCE52E7-03EE-321A-B3D4-E57123966239", "adid": "AEBE52E7-03EE-455A-B3C4-E57283966239",
    "android_id": "BCCE52E7-03EE-321A-B3D4-E57123966239", "event_id": 23, "session_id": 1396381378123,
    "insert_id": "5f0adeff-6668-4427-8d02-57d803a2b841",
}


def test_amplitude_http_v2_example_event() -> None:
    load_time = {"name": "LOAD_TIME", "type": ["null", "float"]}
    result = decode("amplitude", AMPLITUDE_EVENT, string_col("SOURCE"), load_time)
    assert wire(result) == {
        "sessionId": "C8F9E604-F01A-4BD9-95C6-8E5357DF265D-1396381378123",
        "userId": "datamonster@gmail.com",
        "eventId": "5f0adeff-6668-4427-8d02-57d803a2b841",
        "eventType": "watch_tutorial",
        "sentAt": 1396381378.123,
        "itemId": "Google Pay Store Product Id",
        "eventValue": -1.99,
        "properties": '{"source":"notification","loadTime":0.8371}',
    }


def test_amplitude_quickstart_event_without_time_is_rejected() -> None:
    # Amplitude stamps an event without `time` with its upload time; Personalize needs sentAt, and
    # this worker does not invent one.
    sample = {"user_id": "203201202", "device_id": "C8F9E604-F01A-4BD9-95C6-8E5357DF265D",
              "event_type": "watch_tutorial"}
    result = decode("amplitude", sample)
    assert isinstance(result, Rejection) and (result.rule, result.field) == ("missing", "sentAt")


def test_amplitude_no_session_minus_one_falls_back_to_the_device() -> None:
    sample = {**AMPLITUDE_EVENT, "session_id": -1}
    assert wire(decode("amplitude", sample))["sessionId"] == "C8F9E604-F01A-4BD9-95C6-8E5357DF265D"


# -- GA4 --------------------------------------------------------------------------------------

GA4_PURCHASE = {
    "event_date": "20210131",
    "event_timestamp": "1612069510766593",
    "event_name": "purchase",
    "event_params": [
        {"key": "ga_session_id", "value": {"string_value": None, "int_value": "1612069446",
                                           "float_value": None, "double_value": None}},
        {"key": "page_title", "value": {"string_value": "Checkout Confirmation", "int_value": None,
                                        "float_value": None, "double_value": None}},
        {"key": "engagement_time_msec", "value": {"int_value": "4302"}},
    ],
    "event_value_in_usd": 75.0,
    "user_id": None,
    "user_pseudo_id": "1166526666.1612069446",
    "device": {"category": "desktop", "operating_system": "Windows", "web_info": {"browser": "Chrome"}},
    "geo": {"country": "United States", "region": "California", "city": "Sunnyvale"},
    "ecommerce": {"transaction_id": "T-31041", "purchase_revenue_in_usd": 75.0, "total_item_quantity": "3"},
    "items": [
        {"item_id": "9195184", "item_name": "Google Navy Speckled Tee", "item_category": "Apparel",
         "price_in_usd": 24.0, "price": 24.0, "quantity": "2", "item_revenue_in_usd": 48.0},
        {"item_id": "9180838", "item_name": "Google Laptop and Cell Phone Stickers", "item_category": "Office",
         "price_in_usd": 27.0, "price": 27.0, "quantity": "1", "item_revenue_in_usd": 27.0},
    ],
}
GA4_PAGE_VIEW = {
    "event_date": "20210131",
    "event_timestamp": "1612069446137312",
    "event_name": "page_view",
    "event_params": [{"key": "ga_session_id", "value": {"int_value": "1612069446"}},
                     {"key": "page_title", "value": {"string_value": "Home"}}],
    "user_pseudo_id": "1166526666.1612069446",
    "items": [],
}


def test_ga4_purchase_row_is_one_interaction_per_item() -> None:
    result = decode("ga4", GA4_PURCHASE, string_col("PAGE_TITLE"))
    assert isinstance(result, Fanout)
    base = derived_event_id(SRC, 1_700_000_000_000, b"k", json.dumps(GA4_PURCHASE).encode())
    common = {"sessionId": "1166526666.1612069446-1612069446", "userId": "1166526666.1612069446",
              "eventType": "purchase", "sentAt": 1612069510.767,
              "properties": '{"pageTitle":"Checkout Confirmation"}'}
    assert [wire(i) for i in result.interactions] == [
        {**common, "eventId": f"{base}-0", "itemId": "9195184", "eventValue": 24.0},
        {**common, "eventId": f"{base}-1", "itemId": "9180838", "eventValue": 27.0},
    ]


def test_ga4_page_view_without_items_is_one_interaction() -> None:
    # No items, so no ITEM_ID: rejected with the preset alone (a Personalize schema requires it) ...
    result = decode("ga4", GA4_PAGE_VIEW, string_col("PAGE_TITLE"))
    assert isinstance(result, Rejection) and (result.rule, result.field) == ("required", "itemId")
    # ... and one interaction (not exploded: no -0 suffix) once an override names the page as the item.
    result = decode("ga4", GA4_PAGE_VIEW, string_col("PAGE_TITLE"), item_id=["$item.item_id", "$params.page_title"])
    assert wire(result) == {
        "sessionId": "1166526666.1612069446-1612069446",
        "userId": "1166526666.1612069446",
        "eventId": derived_event_id(SRC, 1_700_000_000_000, b"k", json.dumps(GA4_PAGE_VIEW).encode()),
        "eventType": "page_view",
        "sentAt": 1612069446.137,
        "itemId": "Home",
        "properties": '{"pageTitle":"Home"}',
    }


def test_ga4_item_ids_are_deterministic_and_distinct_across_records() -> None:
    first = decode("ga4", GA4_PURCHASE)
    again = decode("ga4", GA4_PURCHASE)
    assert isinstance(first, Fanout) and isinstance(again, Fanout)
    ids = [i.event_id for i in first.interactions]
    assert ids == [i.event_id for i in again.interactions] and len(set(ids)) == 2
    spec = parse_mapping(INT, {"preset": "ga4"})
    other = EventDecoder(INT, spec, schema(), ANY_AGE).decode(json.dumps(GA4_PURCHASE).encode(),
                                                               SourceRef("clicks", 0, 43), NOW)
    assert isinstance(other, Fanout) and not set(ids) & {i.event_id for i in other.interactions}


def test_ga4_one_bad_item_rejects_the_whole_row() -> None:
    row = {**GA4_PURCHASE, "items": [GA4_PURCHASE["items"][0], {"item_id": {"nested": 1}}]}
    result = decode("ga4", row)
    assert isinstance(result, Rejection) and result.field == "itemId"
    assert "1166526666.1612069446" in result.identities


# -- aws/personalize-kafka-connector ----------------------------------------------------------

def test_connector_converter_test_event() -> None:
    sample = {"userId": "test-user1", "itemId": "test-item1", "eventType": "test-event1",
              "sessionId": "test-session1", "sentAt": 123456789}
    result = decode("personalize-connector", sample)
    assert wire(result) == {
        "sessionId": "test-session1",
        "userId": "test-user1",
        "eventId": derived_event_id(SRC, 1_700_000_000_000, b"k", json.dumps(sample).encode()),
        "eventType": "test-event1",
        "sentAt": 123456.789,
        "itemId": "test-item1",
    }


def test_connector_readme_event_with_stringified_properties() -> None:
    sample = {"eventId": "e-1", "eventType": "click", "eventValue": 1.5, "impression": ["i1", "i2"],
              "itemId": "i2", "eventAttributionSource": "email", "properties": "{\"device\": \"ios\"}",
              "recommendationId": "RID-1", "sentAt": "1700000000000", "sessionId": "s-1", "userId": "u-1"}
    result = decode("personalize-connector", sample, string_col("DEVICE"))
    assert wire(result) == {
        "sessionId": "s-1", "userId": "u-1", "eventId": "e-1", "eventType": "click", "sentAt": 1700000000.0,
        "itemId": "i2", "eventValue": 1.5, "properties": '{"device":"ios"}', "recommendationId": "RID-1",
        "impression": ["i1", "i2"], "metricAttribution": {"eventAttributionSource": "email"},
    }


@pytest.mark.parametrize(("kind", "sample", "expected"), [
    (DatasetType.ITEMS, {"itemId": "test-item1", "properties": "{\"genre\": \"drama\"}"},
     {"itemId": "test-item1", "properties": '{"genre":"drama"}'}),
    (DatasetType.USERS, {"userId": "test-user1", "properties": "{}"}, {"userId": "test-user1"}),
])
def test_connector_catalog_records(kind: DatasetType, sample: dict[str, Any], expected: dict[str, Any]) -> None:
    result = decode("personalize-connector", sample, kind=kind)
    assert isinstance(result, CatalogUpdate) and result.record == expected


def test_connector_properties_that_are_not_json_are_a_mapping_rejection() -> None:
    result = decode("personalize-connector", {"eventType": "x", "sessionId": "s", "sentAt": 1, "properties": "{"})
    assert isinstance(result, Rejection) and (result.rule, result.field) == ("bad_properties", "properties")


# -- overrides --------------------------------------------------------------------------------

def test_a_preset_field_can_be_overridden_alone() -> None:
    spec = parse_mapping(INT, {"preset": "ga4", "item_id": ["$item.item_name"]})
    assert spec.item_id == ("$item.item_name",) and spec.timestamp_unit == "microseconds"
    result = EventDecoder(INT, spec, schema(), ANY_AGE).decode(json.dumps(GA4_PURCHASE).encode(), SRC, NOW)
    assert isinstance(result, Fanout)
    assert [i.event["itemId"] for i in result.interactions] == ["Google Navy Speckled Tee",
                                                                 "Google Laptop and Cell Phone Stickers"]


def test_presets_are_limited_to_the_kinds_they_describe() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="preset"):
        parse_mapping(DatasetType.ITEMS, {"preset": "ga4"})
