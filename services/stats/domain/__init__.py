"""Pure domain logic of the stats service: plain values in, plain values out; it never reads the clock."""
