"""Pure training core of the local Personalize: data preparation, recommenders, HPO, metrics.

No I/O here: the local Personalize server reads its store, calls `train.train(...)` and keeps
the returned bytes; the runtime loads them with `recipes.load_model(...)`. Nothing in this
package is imported by the production worker path.
"""
