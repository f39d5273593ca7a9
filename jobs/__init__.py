"""Queue contracts: queue names, job types and their builders, and the queue itself.

Handlers publish jobs and workers consume them; both import what a job looks like from
here, so neither imports the other.
"""
