"""Control plane and runtime of the local Personalize (a development/test stand-in, NOT AWS).

The modules here add, on top of the ``personalize-events`` data plane, the JSON 1.1
control plane (``POST /`` + ``X-Amz-Target: AmazonPersonalize.<Op>``: schemas, dataset
groups, datasets, event trackers, import jobs, recipes and algorithms, solutions,
solution versions, campaigns, filters, batch inference jobs, Delete*) and the
``personalize-runtime`` REST-JSON operations (GetRecommendations,
GetPersonalizedRanking). `plane.install` wires them into a `LocalPersonalize` server.

Layout, one concept per module:

* pure rules: `arns` (ARN formats, region), `status` (status vocabulary and
  transitions), `resource` (a resource as data, the kinds), `pagination` (nextToken),
  `csv_import` (CSV against a schema), `timing` (how long transitions take), `deletion`
  (when a Delete* is refused, what goes along), `filter_expr` (the filter grammar) and
  `filter_eval` (filterValues, evaluation), `batch_io` (batch input and output lines);
* state: `control_store` (resources in SQLite, loop thread only), `bulk_store`
  (imported data, written by import jobs in their own thread);
* background work: `jobs` (restart-safe asyncio drivers, daemon-thread offload),
  `training_data` + `training_runner` (CreateSolutionVersion), `s3_source`;
* operations: ``*_api`` modules, each a set of handlers ``(ctx, body) -> reply``
  (`deletes_api` holds every Delete*);
* runtime: `history` (each user's current interactions), `catalog` (current Items and
  Users records), `filtering` (a request's filter), `models` (model cache), `serving`
  (answers shared by `runtime_api` and `batch_api`).
"""
