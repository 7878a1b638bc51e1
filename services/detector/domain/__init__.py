"""Pure domain logic of the detector service: plain values in, plain values out; it never reads the clock."""
