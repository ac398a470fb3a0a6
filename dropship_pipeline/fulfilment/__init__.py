"""Fulfilment: status rules, planning updates from confirmations, and the outbox sender."""
