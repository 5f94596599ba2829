"""What EdgeInfer's contract (docs/EDGEINFER_CONTRACT.md) holds the fleet to, for the control host's
judgments: the fleet report, the benchmark role's seed targets and the benchmarks. The EdgeInfer stand-in
keeps its own copy on purpose: it checks the contract from outside."""

# EdgeInfer's read timeout on the model backend: a slower answer becomes its random stub output.
READ_TIMEOUT_MS = 45.0
