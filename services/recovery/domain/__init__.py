"""Pure domain logic of the recovery service: plain values in, plain values out; it never reads the clock."""
