"""Pure domain logic of the ingest service: plain values in, plain values out; it never reads the clock."""
