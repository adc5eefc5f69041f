"""Right to be forgotten: deletion requests carried through the stream.

* `requests`: a deletion-topic record -> (user ID, request time) or a rejection (pure);
* `ledger`: requests and deletion jobs as every replica sees them (pure);
* `planner`: what the scheduler's leader does next (pure);
* `state_topic`: the compacted topic holding the ledger (I/O);
* `jobs`: the leader's steps: S3 inputs, data deletion jobs, archive purges (I/O).
"""
