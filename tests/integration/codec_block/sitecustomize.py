"""Hide the zstd codec from kafka-python while a flag file exists (test-only; on PYTHONPATH).

Why not a real missing library: the worker process must lose the codec and get it back
*while running* to show that the paused partition resumes by itself. Uninstalling a
package under a live process is impossible, so this hides it the way a missing install
looks to kafka-python (`kafka.codec.zstd is None`, which makes `poll()` raise
UnsupportedCodecError), and restores it when the test deletes the flag file.
"""

import os
import threading
import time

_FLAG = os.environ.get("CLICKSTREAM_TEST_BLOCK_ZSTD_FLAG")

if _FLAG:
    import kafka.codec
    import zstandard

    def _apply() -> None:
        kafka.codec.zstd = None if os.path.exists(_FLAG) else zstandard

    def _watch() -> None:
        while True:
            _apply()
            time.sleep(0.1)

    _apply()
    threading.Thread(target=_watch, name="test-codec-block", daemon=True).start()
