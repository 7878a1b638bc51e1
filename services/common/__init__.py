"""Plumbing shared by the services: settings, broker, database, metrics. No domain logic."""
