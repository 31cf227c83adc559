"""The costs of superposition: sparsity, boolean-ish values, compounding noise, the ledger."""
