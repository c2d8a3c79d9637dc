"""`make bench`: zkregistry measured against the EndpointSlice controller on a local cluster.

    tools/env.sh python -m benchmarks.run [--pods 1000,10000]

run.py drives the phases, observe.py holds the watchers (each a process of its own, stamping
events on one clock), measure.py the arithmetic and the readings of processes, profile.py py-spy,
report.py report.md, results.json and the plots under benchmarks/results/<date>/.
"""
