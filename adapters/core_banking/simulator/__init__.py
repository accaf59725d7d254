"""A faithful core-banking simulator (Flask + lxml + SQLite) for development, demos and tests.

It serves the same WSDL as the bank's core, validates every request against the XSD, keeps a
real ledger and can be told to misbehave (faults.py). See docs/core-banking-simulator.md.
"""

from adapters.core_banking.simulator.app import CoreBankingSimulator, SimulatorServer
from adapters.core_banking.simulator.faults import FaultRule
from adapters.core_banking.simulator.ledger import Ledger, LedgerFault

__all__ = ["CoreBankingSimulator", "FaultRule", "Ledger", "LedgerFault", "SimulatorServer"]
