"""Performance scenarios (not run as tests). `python -m bench` lists them; each writes its
figures to `bench/results/<scenario>.json` with the machine they were measured on."""
