"""Fault-injection scenarios: real workers, the embedded broker and the local Personalize.

Run with ``pytest -m faults tests/faults``; every scenario ends with the audit of
`tests.faults.audit` and the session prints the audit table.
"""
