"""Control plane and runtime of the local Personalize (a development/test stand-in, NOT AWS).

The modules here add, on top of the ``personalize-events`` data plane, the JSON 1.1
control plane (``POST /`` + ``X-Amz-Target: AmazonPersonalize.<Op>``: schemas, dataset
groups, datasets, event trackers, import jobs, recipes, solutions, solution versions,
campaigns) and the ``personalize-runtime`` REST-JSON operations (GetRecommendations,
GetPersonalizedRanking). `plane.install` wires them into a `LocalPersonalize` server.

Layout, one concept per module:

* pure rules: `arns` (ARN formats, region), `status` (status vocabulary and
  transitions), `pagination` (nextToken), `csv_import` (CSV against a schema),
  `timing` (how long transitions take);
* state: `control_store` (resources in SQLite, loop thread only), `bulk_store`
  (imported data, written by import jobs in their own thread);
* background work: `jobs` (restart-safe asyncio drivers, daemon-thread offload),
  `training_data` + `training_runner` (CreateSolutionVersion), `s3_source`;
* operations: ``*_api`` modules, each a set of handlers ``(ctx, body) -> reply``;
* runtime: `history` (each user's current interactions), `models` (model cache),
  `runtime_api`.
"""
