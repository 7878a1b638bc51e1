"""``dealwatch import``: CRM history files (JSONL of generic events, CSV) onto ``crm.deal-changes.v1``."""
