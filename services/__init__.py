"""dealwatch's services. Each meets the others only through ``schemas``; ``common`` holds shared plumbing."""
