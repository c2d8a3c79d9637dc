"""`make soak`: a seeded random nemesis under continuous churn, with invariants checked throughout.

    tools/env.sh python -m soak.run [--seed N] [--minutes M] [--out DIR]

Modules, one concept each: `workload` (the churning Deployments and registries), `nemesis` (the
faults), `checker` (the invariants, the timeline and the process samples), `report` (results.json,
report.md and the timeline plot), `run` (wires them together).
"""
