"""Pure domain code: money, ids, clocks, errors, states. Imports nothing else of ours."""
