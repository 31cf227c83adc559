"""The scenario library, one module per scenario, by theme: ``costs`` (the three costs of
superposition and their ledger), ``constructions`` (the hand-built constructions of the
literature), ``trained`` (trained networks). The framework they run on is the rest of
``scenarios``; ``scenarios.engine.catalog`` names each one."""
