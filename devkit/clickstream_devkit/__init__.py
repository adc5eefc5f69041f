"""clickstream-devkit: development stand-ins for clickstream-worker — NOT for production.

The local Personalize (an HTTP server speaking the Personalize wire protocols) and its
recommenders (`recsys`), the synthetic clickstream generator, the embedded Kafka-compatible
broker launcher (Tansu) and `dev`, the whole loop on one machine. Installed next to
clickstream-worker it adds `dev`, `generate`, `local-personalize` and `evaluate` to the
`clickstream-worker` command line. The production worker never imports this package.
"""
