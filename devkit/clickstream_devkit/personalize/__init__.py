"""Local Personalize: a development/test stand-in for Amazon Personalize, NOT the real service.

One HTTP server speaking the real wire protocols (see
``shared/reference/personalize-api-contract.md``) so unmodified boto3/aiobotocore
clients talk to it through ``endpoint_url``. It serves the ``personalize-events`` data
plane (PutEvents, PutItems, PutUsers), the control plane (schemas, dataset groups,
datasets, event trackers, S3 import jobs, recipes and algorithms, solutions with HPO,
solution versions with real training and the documented offline metrics, campaigns,
filters, batch inference jobs, and every Delete*; see `control`) and the runtime
(GetRecommendations, GetPersonalizedRanking, with filters), with model-driven validation,
durable SQLite storage, fault injection and an inspection API under ``/_local/``.
Run it with ``python -m clickstream_devkit.personalize --help`` (``--fast`` for tests).
"""
