"""Record decoding beyond JSON: schema-registry framings, payload readers, vendor shapes.

Pure modules (no I/O): `framing` (Confluent and Glue wire formats), `avro`, `proto_text`
(a .proto parser), `protobuf`, `readers`, `cache`, `payload` (framing + cache -> object),
`presets` and the vendor shapes (`ga4`, `snowplow`, `shapes`), `outcomes` and `fanout`.
I/O edges: `confluent_client` (registry REST), `glue_client` (glue:GetSchemaVersion),
`gate` (holds a topic's records while a schema is fetched; backoff and faults), `wiring`.
"""
