"""Re-export: the signer now lives in the worker (worker/ingest/sigv4.py)."""

from worker.ingest.sigv4 import ALGORITHM, sign_post_json, signing_key

__all__ = ["ALGORITHM", "sign_post_json", "signing_key"]
