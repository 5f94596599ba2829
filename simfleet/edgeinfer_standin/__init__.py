"""EdgeInfer TEST STAND-IN (not EdgeInfer): imitates EdgeInfer's backend behaviour for the simulated fleet."""
