"""Core banking: the SOAP adapter (`soap.py`) and a faithful simulator (`simulator/`).

Both are built from the contract in `contracts/core-banking/` (see `contract.py`).
"""
